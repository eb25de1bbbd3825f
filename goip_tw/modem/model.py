"""Values and events of the modem API (frozen attrs).  No AT, no I/O.

Callers (calls/, sms/, sim/, web/) see only these types: they never parse AT.
"""

from __future__ import annotations

from datetime import datetime

import attrs

# --------------------------------------------------------------------------- state values


@attrs.frozen
class Identity:
    manufacturer: str
    model: str
    firmware: str
    imei: str


@attrs.frozen
class SimIdentity:
    iccid: str | None
    imsi: str | None
    own_number: str | None


#: +CREG/+CEREG <stat> (TS 27.007 §7.2) → our words
REG_STATES = {0: "not_registered", 1: "registered", 2: "searching", 3: "denied",
              4: "unknown", 5: "roaming"}


@attrs.frozen
class Registration:
    state: str                 # registered | roaming | searching | denied | not_registered | unknown
    technology: str | None     # "2G" | "3G" | "4G" | None
    lac: str | None = None
    cell: str | None = None

    @property
    def registered(self) -> bool:
        return self.state in ("registered", "roaming")


@attrs.frozen
class Signal:
    rssi: int                  # 0-31, 99 = unknown (TS 27.007 §8.5)
    dbm: int | None

    @classmethod
    def from_rssi(cls, rssi: int) -> "Signal":
        return cls(rssi, None if not 0 <= rssi <= 31 else -113 + 2 * rssi)


@attrs.frozen
class Operator:
    mode: str                  # "auto" | "manual" | "deregistered" | "unknown"
    name: str | None
    mccmnc: str | None


#: +CLCC <stat> (TS 27.007 §7.18)
CALL_STATES = {0: "active", 1: "held", 2: "dialing", 3: "alerting", 4: "incoming", 5: "waiting"}


@attrs.frozen
class CallInfo:
    """One call as AT+CLCC lists it.  ``id`` is the module's call index (for
    AT+CHLD=1x / 2x); modules reuse it as soon as a call is released, so callers
    tell calls apart by ``serial``: unique in the process, fixed for the life of one
    call, 0 for a placeholder (a dial the module accepted but has not listed yet)."""
    id: int
    direction: str             # "out" | "in"
    state: str                 # active | held | dialing | alerting | incoming | waiting
    number: str | None
    multiparty: bool = False
    serial: int = 0


@attrs.frozen
class UssdReply:
    status: int                # +CUSD <m>: 0 done, 1 more input wanted, 2 ended by network, 4 unsupported, 5 timeout
    text: str

    @property
    def session_open(self) -> bool:
        return self.status == 1


@attrs.frozen
class HttpResult:
    status: int
    length: int | None


@attrs.frozen
class IncomingSms:
    """One received SMS, reassembled.  ``dedupe_key`` (IMSI + sender + timestamp +
    concat reference) is stable across module restarts: store it and drop repeats.
    ``missing`` lists part numbers that never arrived (reassembly timeout)."""
    sender: str
    text: str
    timestamp: datetime
    smsc: str | None
    encoding: str
    data: bytes | None
    parts: int
    missing: tuple[int, ...]
    imsi: str | None
    dedupe_key: str
    message_class: int | None = None


@attrs.frozen
class DeliveryReport:
    """An SMS-STATUS-REPORT for a message we sent (``message_ref`` from send_sms)."""
    message_ref: int
    recipient: str
    status: int                # TP-ST (TS 23.040 §9.2.3.15)
    delivered: bool
    final: bool
    scts: datetime
    discharge_time: datetime
    imsi: str | None
    dedupe_key: str


# --------------------------------------------------------------------------- events

@attrs.frozen
class IncomingCall:
    call: CallInfo
    waiting: bool = False      # a second call while one is active (call waiting)


@attrs.frozen
class CallStateChanged:
    call: CallInfo
    previous: str | None


@attrs.frozen
class CallEnded:
    call: CallInfo
    cause: int | None          # TS 24.008 §10.5.4.11 cause value when the module tells
    text: str = ""


@attrs.frozen
class DtmfReceived:
    digit: str


@attrs.frozen
class RegistrationChanged:
    registration: Registration


@attrs.frozen
class SignalChanged:
    signal: Signal


@attrs.frozen
class UssdNotification:
    reply: UssdReply           # network-initiated, or a reply nobody was waiting for


@attrs.frozen
class SmsStoreFull:
    storage: str


@attrs.frozen
class PortLost:
    reason: str


@attrs.frozen
class SimStatusChanged:
    status: str                # READY | SIM PIN | SIM PUK | NOT INSERTED | ...


@attrs.frozen
class LineStateChanged:
    """Published by the line service (F-304/F-305): absent, initialising, sim_locked,
    searching, registered, failed; ``reason`` says why in words for the event log."""
    line: int
    state: str
    previous: str
    reason: str = ""
