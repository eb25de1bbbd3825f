"""The SMSC inside a real GatewayService on the simulator: an smpplib transceiver
submits a UCS2 3-part message to the SMS-echo phone, gets its receipt, and the
phone's reply comes back as deliver_sm (issue 8 "done when", without Kannel)."""

import socket

import pytest_twisted
import smpplib.client
import smpplib.consts as C
import smpplib.gsm
from twisted.internet import defer, reactor, threads

from goip_tw.config.manager import ConfigManager
from goip_tw.gateway import GatewayService
from goip_tw.smpp import pdu as P
from tests.modem.simhelp import wait_until

SUBSYSTEMS = (
    ("simulator", "goip_tw.simulator.service"),
    ("modems", "goip_tw.modem.service"),
    ("sms", "goip_tw.sms.service"),
    ("sms_inbound", "goip_tw.sms.inbound_service"),
    ("smpp", "goip_tw.smpp.service"),
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_twisted.inlineCallbacks
def test_smpplib_to_simulated_phone_receipt_and_reply(tmp_path):
    port = free_port()
    overrides = {"simulator": {"enabled": "on", "modules": 2, "slots": 1, "reg_delay": 0.05},
                 "smpp": {"enabled": "on", "port": port, "interface": "127.0.0.1",
                          "system_id": "1", "password": "pw123"}}
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    gw = GatewayService(manager, str(tmp_path / "data"), reactor=reactor, subsystems=SUBSYSTEMS)
    gw.startService()
    try:
        modems = gw.subsystem("modems")
        yield wait_until(lambda: modems.lines and all(ln.state == "registered"
                                                      for ln in modems.lines),
                         timeout=30, what="lines registered")
        yield gw.subsystem("sms").queue.ready
        echo = gw.config.simulator.sms_echo_number
        text = "Grüße 😀 " * 20  # 140 characters of UCS2: 3 parts

        def esme():
            c = smpplib.client.Client("127.0.0.1", port, timeout=20,
                                      allow_unknown_opt_params=True)
            c.connect()
            c.bind_transceiver(system_id="1", password="pw123")
            ids = []
            # The 3-part message tests the way there and back.  The simulator sends one
            # status report per concatenated message (for its last part; reported), so
            # such a message never gets all its reports there: the receipt is checked
            # on a 1-part message.
            for t, rd in ((text, False), ("receipt please", True)):
                parts, coding, esm = smpplib.gsm.make_parts(t)
                for part in parts:
                    c.send_message(source_addr="+100", destination_addr=echo,
                                   short_message=part, data_coding=coding, esm_class=esm,
                                   registered_delivery=rd, dest_addr_ton=C.SMPP_TON_INTL)
                    while True:
                        p = c.read_pdu()
                        if p.command == "submit_sm_resp":
                            ids.append(p.message_id.decode())
                            break
            receipts, mo = [], []
            while not receipts or len(mo) < 2:
                p = c.read_pdu()
                if p.command == "deliver_sm":
                    resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=c)
                    resp.sequence = p.sequence
                    c.send_pdu(resp)
                    (receipts if p.esm_class & P.ESM_DELIVERY_RECEIPT else mo).append(p)
            c.unbind()
            c.disconnect()
            return ids, receipts, mo
        ids, receipts, mo = yield threads.deferToThread(esme)
        assert len(ids) == 4 and ids[0].endswith(".1") and "." not in ids[3]
        assert [p.receipted_message_id.decode() for p in receipts] == [ids[3]]
        assert b"stat:DELIVRD" in receipts[0].short_message
        assert {m.source_addr.decode() for m in mo} == {echo}
        long = next(m for m in mo if m.data_coding == 8)
        payload = long.short_message or long.message_payload  # long: message_payload TLV
        assert payload.decode("utf-16-be") == text
    finally:
        yield defer.maybeDeferred(gw.stopService)
