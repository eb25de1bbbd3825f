"""SMPP 3.4 SMSC side of one TCP session: framing, bind states, timers, window.

The protocol only speaks SMPP; what a bind or a submit means is asked of an
``ISmscBackend`` (as twisted.mail's SMTP asks IMessageDelivery).  Framing never
trusts a length it has not checked: a command_length below 16 or above
``max_pdu`` gets generic_nack ESME_RINVCMDLEN and the session ends, before any byte
of that body is buffered.  Timers (SMPP 3.4 §7.2): a partial PDU must complete
within ``read_timeout``; a session silent for ``inactivity_timeout`` is closed;
a deliver_sm unanswered within ``response_timeout`` fails so the backend retries.
"""

from __future__ import annotations

import calendar
import time

import attrs
from twisted.internet import defer, protocol
from twisted.logger import Logger
from zope.interface import Interface

from goip_tw.sms.model import EncodeError, decode_data_coding
from goip_tw.smpp import pdu as P


class SmppError(Exception):
    """A refusal the backend wants the client to see as ``status``."""

    def __init__(self, status: int, reason: str = ""):
        super().__init__(reason or f"status {status:#x}")
        self.status = status


@attrs.frozen
class SmppSettings:
    max_pdu: int = 8192
    window: int = 100  # submits awaiting their durable write, per session
    deliver_window: int = 10
    read_timeout: float = 10.0
    inactivity_timeout: float = 120.0
    response_timeout: float = 10.0
    default_alphabet: str = "gsm7"


@attrs.frozen
class Account:
    system_id: str
    mode: str  # transmitter, receiver, transceiver
    line: int | None = None  # 1+N ids: 101 -> line 1


@attrs.frozen
class ShortMessage:
    """A decoded submit_sm, as the backend sees it."""

    source_addr: str
    destination_addr: str
    text: str
    registered_delivery: int
    validity: float | None
    fragment: tuple[int, int, int] | None
    data_coding: int
    delay: float | None = None  # schedule_delivery_time, seconds from now


class ISmscBackend(Interface):
    def bind(system_id, password, mode, host):
        """Deferred[Account]; fails with SmppError(ESME_RINVPASWD / ESME_RBINDFAIL)."""

    def submit(account, message):
        """Deferred[str] message_id, fired after the durable write."""

    def query(account, message_id):
        """Deferred[(final_date, message_state, error_code)]."""

    def cancel(account, message_id):
        """Deferred[None]; fails with SmppError."""

    def session_bound(session):
        """A receiver/transceiver session may now get deliver_sm."""

    def session_lost(session):
        """The session is gone."""


def parse_smpp_time(value: str, now: float, field: str = "validity_period",
                    status: int = P.ESME_RINVEXPIRY) -> float | None:
    """SMPP time format ``YYMMDDhhmmsstnnp`` (§7.1.1) as seconds from ``now``:
    absolute (+/- quarter hours from UTC) or relative (R)."""
    if not value:
        return None
    if len(value) != 16 or not value[:13].isdigit() or value[15] not in "+-R":
        raise P.PduError(status, field, f"{value!r} is not YYMMDDhhmmsstnnp")
    yy, mo, dd, hh, mi, ss = (int(value[i:i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        return float((((yy * 365 + mo * 30 + dd) * 24 + hh) * 60 + mi) * 60 + ss)
    try:
        utc = calendar.timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0))
    except (ValueError, OverflowError):
        raise P.PduError(status, field, f"{value!r} is not a date")
    offset = int(value[13:15]) * 900
    utc += -offset if value[15] == "+" else offset
    return max(0.0, utc - now)


def format_smpp_date(ts: float) -> str:
    """YYMMDDhhmm as used in delivery receipt texts (SMPP 3.4 Appendix B)."""
    return time.strftime("%y%m%d%H%M", time.gmtime(ts))


class SmscProtocol(protocol.Protocol):
    log = Logger()

    def __init__(self, backend, clock, settings: SmppSettings | None = None):
        self.backend = backend
        self.clock = clock
        self.settings = settings or SmppSettings()
        self.account: Account | None = None
        self._buf = bytearray()
        self._need = 0
        self._read_timer = None
        self._idle_timer = None
        self._submits = 0
        self._seq = 0
        self._waiting: dict[int, tuple[defer.Deferred, object]] = {}
        self._binding = False
        self.closed = False
        self.host = ""

    # -- connection ------------------------------------------------------------------

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.host = getattr(peer, "host", "")
        self._reset_idle()

    def connectionLost(self, reason=None):
        self.closed = True
        for timer in (self._read_timer, self._idle_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._read_timer = self._idle_timer = None
        waiting, self._waiting = self._waiting, {}
        for d, timer in waiting.values():
            if timer.active():
                timer.cancel()
            d.errback(ConnectionError("smpp session closed"))
        if self.account is not None:
            self.backend.session_lost(self)

    def _close(self, why: str) -> None:
        self.log.info("smpp {host} {system_id}: closing: {why}", host=self.host,
                      system_id=self.account.system_id if self.account else "-", why=why)
        self.transport.loseConnection()

    def _reset_idle(self):
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.reset(self.settings.inactivity_timeout)
        elif not self.closed:
            self._idle_timer = self.clock.callLater(self.settings.inactivity_timeout,
                                                    self._close, "inactivity timer")

    def _read_expired(self):
        self._read_timer = None
        self._close("partial PDU not completed within the read timer")

    def _send(self, p: P.Pdu) -> None:
        if not self.closed:
            self.transport.write(P.encode(p))

    # -- framing -----------------------------------------------------------------------

    def dataReceived(self, data: bytes):
        self._buf += data
        while not self.closed:
            if len(self._buf) < P.HEADER_LEN:
                break
            length = int.from_bytes(self._buf[:4], "big")
            if length < P.HEADER_LEN or length > self.settings.max_pdu:
                seq = int.from_bytes(self._buf[12:16], "big")
                self.log.warn("smpp {host}: command_length {length} refused", host=self.host,
                              length=length)
                self.transport.write(P.generic_nack(seq, P.ESME_RINVCMDLEN))
                self._buf.clear()
                self._close("invalid command_length")
                return
            if len(self._buf) < length:
                break
            raw = bytes(self._buf[:length])
            del self._buf[:length]
            self._reset_idle()
            self._handle_raw(raw)
        if self._buf and not self.closed:
            if self._read_timer is None:
                self._read_timer = self.clock.callLater(self.settings.read_timeout,
                                                        self._read_expired)
        elif self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _handle_raw(self, raw: bytes) -> None:
        _, command_id, status, seq = P.HEADER.unpack_from(raw)
        if command_id not in P.BODIES:
            self.log.warn("smpp {host}: unknown command_id {cid:#010x}", host=self.host,
                          cid=command_id)
            self.transport.write(P.generic_nack(seq, P.ESME_RINVCMDID))
            return
        try:
            p = P.decode(raw)
        except P.PduError as e:
            self.log.warn("smpp {host}: bad {cid:#010x}: {field}: {reason}", host=self.host,
                          cid=command_id, field=e.field, reason=e.reason)
            if command_id & P.RESP:
                return
            if command_id == P.GENERIC_NACK:
                return
            self._send(P.Pdu(command_id | P.RESP, seq, e.status))
            return
        handler = getattr(self, f"_on_{command_id:08x}", None)
        if p.is_response:
            self._on_response(p)
        elif handler is None:
            self.transport.write(P.generic_nack(seq, P.ESME_RINVCMDID))
        else:
            handler(p)

    # -- binds ---------------------------------------------------------------------------

    def _on_bind(self, p: P.Pdu):
        mode = P.BINDS[p.command_id]
        if self.account is not None or self._binding:
            self._send(P.response(p, P.ESME_RALYBND))
            return
        self._binding = True
        d = self.backend.bind(p["system_id"], p["password"], mode, self.host)

        def ok(account):
            self._binding = False
            self.account = account
            resp = P.response(p, system_id="goip-tw")
            resp.tlvs[P.TAG_SC_INTERFACE_VERSION] = 0x34
            self._send(resp)
            self.log.info("smpp {host}: {system_id} bound as {mode}", host=self.host,
                          system_id=account.system_id, mode=mode)
            self.backend.session_bound(self)

        def refused(f):
            self._binding = False
            status = f.value.status if f.check(SmppError) else P.ESME_RBINDFAIL
            self._send(P.response(p, status))
            if status == P.ESME_RBINDFAIL:
                self._close("bind refused")
        d.addCallbacks(ok, refused)

    _on_00000001 = _on_00000002 = _on_00000009 = _on_bind

    def _on_00000006(self, p):  # unbind
        self._send(P.response(p))
        self._close("unbind")

    def _on_00000015(self, p):  # enquire_link, allowed in any state (§4.11)
        self._send(P.response(p))

    def _require(self, p: P.Pdu, *modes) -> bool:
        if self.account is None or self.account.mode not in modes:
            self._send(P.response(p, P.ESME_RINVBNDSTS))
            return False
        return True

    # -- submit / query / cancel -----------------------------------------------------------

    def _on_00000004(self, p: P.Pdu):  # submit_sm
        if not self._require(p, "transmitter", "transceiver"):
            return
        if self._submits >= self.settings.window:
            self._send(P.response(p, P.ESME_RTHROTTLED))
            return
        try:
            sm = self._short_message(p)
        except (P.PduError, EncodeError) as e:
            status = e.status if isinstance(e, P.PduError) else P.ESME_RINVPARLEN
            self.log.warn("smpp {system_id} submit_sm refused: {error}",
                          system_id=self.account.system_id, error=str(e))
            self._send(P.response(p, status))
            return
        self._submits += 1
        d = self.backend.submit(self.account, sm)

        def done(message_id):
            self._submits -= 1
            self._send(P.response(p, message_id=message_id))

        def failed(f):
            self._submits -= 1
            status = f.value.status if f.check(SmppError) else P.ESME_RSUBMITFAIL
            if not f.check(SmppError):
                self.log.failure("smpp submit_sm failed", f)
            self._send(P.response(p, status))
        d.addCallbacks(done, failed)

    def _short_message(self, p: P.Pdu) -> ShortMessage:
        payload = p["short_message"]
        if P.TAG_MESSAGE_PAYLOAD in p.tlvs:
            if payload:
                raise P.PduError(P.ESME_RINVPARLEN, "message_payload",
                                 "sm_length must be 0 when message_payload is present")
            payload = p.tlvs[P.TAG_MESSAGE_PAYLOAD]
        fragment = None
        if p["esm_class"] & P.ESM_UDHI:
            fragment, payload = P.parse_udh(payload)
        ref = P.tlv_int(p.tlvs, P.TAG_SAR_MSG_REF_NUM)
        if ref is not None:
            total = P.tlv_int(p.tlvs, P.TAG_SAR_TOTAL_SEGMENTS)
            seq = P.tlv_int(p.tlvs, P.TAG_SAR_SEGMENT_SEQNUM)
            if total is None or seq is None:
                raise P.PduError(P.ESME_RINVOPTPARAMVAL, "sar_total_segments",
                                 "sar_msg_ref_num without total/seqnum")
            fragment = (ref, total, seq)
        if fragment is not None and not 1 <= fragment[2] <= fragment[1]:
            raise P.PduError(P.ESME_RINVOPTPARAMVAL, "sar_segment_seqnum",
                             f"part {fragment[2]} of {fragment[1]}")
        if fragment is not None and fragment[1] == 1:
            fragment = None
        text = decode_data_coding(payload, p["data_coding"], self.settings.default_alphabet)
        if not p["destination_addr"]:
            raise P.PduError(P.ESME_RINVDSTADR, "destination_addr", "empty")
        return ShortMessage(
            source_addr=p["source_addr"], destination_addr=p["destination_addr"], text=text,
            registered_delivery=p["registered_delivery"],
            validity=parse_smpp_time(p["validity_period"], self.clock.seconds()),
            fragment=fragment, data_coding=p["data_coding"],
            delay=parse_smpp_time(p["schedule_delivery_time"], self.clock.seconds(),
                                  "schedule_delivery_time", P.ESME_RINVSCHED))

    def _on_00000003(self, p: P.Pdu):  # query_sm
        if not self._require(p, "transmitter", "transceiver"):
            return
        d = self.backend.query(self.account, p["message_id"])

        def done(result):
            final_date, state, error = result
            self._send(P.response(p, message_id=p["message_id"], final_date=final_date,
                                  message_state=state, error_code=error))

        def failed(f):
            self._send(P.response(p, f.value.status if f.check(SmppError) else P.ESME_RQUERYFAIL))
        d.addCallbacks(done, failed)

    def _on_00000008(self, p: P.Pdu):  # cancel_sm
        if not self._require(p, "transmitter", "transceiver"):
            return
        d = self.backend.cancel(self.account, p["message_id"])
        d.addCallbacks(lambda _: self._send(P.response(p)),
                       lambda f: self._send(P.response(
                           p, f.value.status if f.check(SmppError) else P.ESME_RCANCELFAIL)))

    # -- deliver_sm (server -> client) -----------------------------------------------------

    @property
    def can_deliver(self) -> bool:
        return (not self.closed and self.account is not None
                and self.account.mode in ("receiver", "transceiver")
                and len(self._waiting) < self.settings.deliver_window)

    def deliver(self, params: dict, tlvs: dict | None = None) -> defer.Deferred:
        """Send one deliver_sm; fires with the response status, fails on timeout/close."""
        if not self.can_deliver:
            return defer.fail(ConnectionError("session cannot take a deliver_sm now"))
        self._seq = self._seq % 0x7FFFFFFF + 1
        seq = self._seq
        d = defer.Deferred()
        timer = self.clock.callLater(self.settings.response_timeout, self._timeout, seq)
        self._waiting[seq] = (d, timer)
        self._send(P.Pdu(P.DELIVER_SM, seq, P.ESME_ROK, params, dict(tlvs or {})))
        return d

    def unbind(self) -> defer.Deferred:
        """Server-initiated unbind (SMPP 3.4 §4.2): fires when the peer answered, timed
        out or the session is gone; the connection is closed either way."""
        if self.closed:
            return defer.succeed(None)
        self._seq = self._seq % 0x7FFFFFFF + 1
        seq = self._seq
        d = defer.Deferred()
        self._waiting[seq] = (d, self.clock.callLater(self.settings.response_timeout,
                                                      self._timeout, seq))
        self._send(P.Pdu(P.UNBIND, seq))
        def close(result):
            if not self.closed:
                self._close("unbound by the SMSC")
            return result
        return d.addBoth(close)

    def _timeout(self, seq: int):
        d, _ = self._waiting.pop(seq, (None, None))
        if d is not None:
            d.errback(TimeoutError(f"no deliver_sm_resp for sequence {seq}"))

    def _on_response(self, p: P.Pdu):
        entry = self._waiting.pop(p.sequence, None)
        if entry is None:
            return
        d, timer = entry
        if timer.active():
            timer.cancel()
        d.callback(p.status)


class SmscFactory(protocol.Factory):
    def __init__(self, backend, clock, settings: SmppSettings | None = None):
        self.backend = backend
        self.clock = clock
        self.settings = settings or SmppSettings()

    def buildProtocol(self, addr):
        p = SmscProtocol(self.backend, self.clock, self.settings)
        p.factory = self
        return p
