"""SMPP 3.4 SMSC (F-407): pdu (wire format), protocol (one session), service (accounts, receipts)."""
