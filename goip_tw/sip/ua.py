"""The SIP side of a call, as the call layer sees it (RFC 3261 UA core, §13-15).

This module is the boundary between SIP and gateway logic: ``goip_tw/calls``
never sees a SIP message.  It gets *call legs* that emit *events* (frozen attrs
values) and accept a few commands.  The API below is stable.

Getting calls and messages (set once, by the calls/SMS services)::

    sip = gateway.subsystem("sip")          # goip_tw.sip.service.SipService
    sip.set_call_handler(handler)           # handler.incoming_call(leg: InboundLeg)
    sip.set_message_handler(handler)        # handler.message_received(msg: InboundMessage)
                                            #   -> int | Deferred[int]  (SIP status to answer)

VoIP -> GSM (an INVITE arrived and passed admission, F-425)::

    leg.caller, leg.callee          # user parts of From / Request-URI (str; the number
                                    #   of a tel: URI)
    leg.call_id                     # SIP Call-ID (for the CDR)
    leg.caller_display              # From display name ("" if none)
    leg.route                       # goip_tw.sip.routing.Route (never None: an INVITE
                                    #   no prefix matches was already answered 603, F-412)
    leg.own_number                  # True when the callee is one of our own account
                                    #   numbers: two-stage dialing (manual §4 terms (i))
    leg.remote_sdp                  # the offer (bytes, b"" when the INVITE had none)
    leg.identity                    # who was admitted: "address:<ip>" / "user:<id>"
    leg.account                     # registration key the call came in on ("main",
                                    #   "line3", "group:cm", "trunk", "proxy:<user>")
    leg.listener = fn               # fn(event) for every event below
    leg.ringing()                   # 180 (fake ringback, F-422)
    leg.early_media(local_sdp)      # 183 with SDP (color ring, F-422)
    leg.answer(local_sdp)           # 200 with SDP; Answered event when the ACK comes
    leg.reject(code, reason=None)   # final non-2xx, e.g. 503 no free line (F-424),
                                    #   486, 408 no answer (F-431), mapped causes (F-432)
    leg.hangup()                    # BYE after answer; before answer a 480 reply
    leg.send_dtmf(digit, ms=100)    # SIP INFO application/dtmf-relay (F-427)
    leg.hold(mode="sendonly")       # re-INVITE a=sendonly|inactive -> Deferred[int status]
    leg.resume()                    # re-INVITE a=sendrecv -> Deferred[int status]
                                    #   (both directions; goip_tw/sip/reinvite.py)

GSM -> VoIP (a mobile call to be forwarded, F-463)::

    leg = sip.place_call(target, caller=..., caller_display="", line=1,
                         local_sdp=b"...", caller_id_mode="from")
        # target: "101", "101@192.168.2.2:6060" or "sip:..."; a bare name that is a
        #   softphone registered at the embedded proxy (F-415) goes to it; another
        #   bare number to the proxy/registrar of the line's account (its backup
        #   while failed over), or to trunk gateway 1.  Digest challenges are
        #   answered with the account's credentials.
        # caller_id_mode (F-461): "off" (From = the account's number), "rpid"
        #   (Remote-Party-ID), "from" (From user = caller), "pai" (P-Asserted-Identity)
    leg.listener = fn
    leg.cancel()                    # before answer (CANCEL)
    leg.hangup()                    # after answer (BYE); before answer = cancel()
    leg.send_dtmf(digit, ms=100)

Events (``leg.listener(event)``), all carry ``leg``:

    Ringing()                        outbound: 180 arrived
    EarlyMedia(sdp)                  outbound: 183 (or 18x) with SDP
    Answered(sdp)                    outbound: 200 OK (ACK sent); inbound: ACK arrived
    Dtmf(digit, duration_ms)         INFO from the SIP side (RFC 4733 digits are media's)
    Hold(held, sdp)                  a re-INVITE (or the ACK of a late offer) moved the
                                     peer's SDP into hold (True) or out of it (False)
    MediaChanged(sdp)                any other new SDP from the peer (re-target media)
    HungUp(by, reason)               by = "remote" | "local"; after answer
    Failed(code, reason)             outbound final non-2xx / timeout (408) /
                                     transport error or DNS failure (503) / local
                                     cancel (487); inbound CANCEL (487)

``Offered`` is not an event: ``incoming_call(leg)`` *is* the offer.

Messages (F-496, F-1801)::

    msg.sender, msg.recipient       # From user, Request-URI user
    msg.body (bytes), msg.content_type, msg.call_id, msg.identity, msg.account
    d = sip.send_message(target, body, from_user=None,
                         content_type="text/plain;charset=UTF-8", line=None)
        # Deferred[int]: the final status code (200/202; 408 on timeout, 503 on a
        #   transport error); errback only for a target that cannot be resolved

Status for the UI (F-304)::

    sip.line_voip_registered(line) -> bool        # the VOIP Y/N column
    sip.registration_status() -> list[dict]       # key, lines, user, state, server, ...
    event bus topic "sip.registration"            # key, lines, state, server, registered
    sip.set_line_network(line, registered)        # build_service wires line.state to it
"""

from __future__ import annotations

from typing import Any, Callable

import attrs


# --- events -----------------------------------------------------------------------


@attrs.frozen
class Ringing:
    leg: Any = attrs.field(repr=False, eq=False)


@attrs.frozen
class EarlyMedia:
    leg: Any = attrs.field(repr=False, eq=False)
    sdp: bytes = b""


@attrs.frozen
class Answered:
    leg: Any = attrs.field(repr=False, eq=False)
    sdp: bytes = b""


@attrs.frozen
class Dtmf:
    leg: Any = attrs.field(repr=False, eq=False)
    digit: str = ""
    duration_ms: int = 100


@attrs.frozen
class HungUp:
    leg: Any = attrs.field(repr=False, eq=False)
    by: str = "remote"
    reason: str = ""


@attrs.frozen
class Failed:
    leg: Any = attrs.field(repr=False, eq=False)
    code: int = 500
    reason: str = ""


@attrs.frozen
class Hold:
    leg: Any = attrs.field(repr=False, eq=False)
    held: bool = True
    sdp: bytes = b""


@attrs.frozen
class MediaChanged:
    leg: Any = attrs.field(repr=False, eq=False)
    sdp: bytes = b""


CallEvent = Ringing | EarlyMedia | Answered | Dtmf | Hold | MediaChanged | HungUp | Failed
Listener = Callable[[Any], None]


@attrs.frozen
class InboundMessage:
    """A SIP MESSAGE that passed admission (for the SMS layer, F-1801)."""

    sender: str
    recipient: str
    body: bytes
    content_type: str
    call_id: str
    identity: str
    account: str
    source: tuple[str, int]


# --- implementation ------------------------------------------------------------------
#
# Dialog state (§12) comes from goip_tw.sip.dialog; transactions from
# goip_tw.sip.transaction.

import os  # noqa: E402

from twisted.internet import defer  # noqa: E402
from twisted.logger import Logger  # noqa: E402

from goip_tw.sip.callheaders import (CALLER_ID_MODES, caller_id_headers,  # noqa: E402,F401
                                     is_ip, mirror_direction, parse_dtmf_info,
                                     uri_user)
from goip_tw.sip.dialog import Dialog, DialogTable, uri_address  # noqa: E402,F401
from goip_tw.sip.message import NameAddr, Request, Response, SipParseError, SipURI  # noqa: E402
from goip_tw.sip.reinvite import SessionUpdates  # noqa: E402
from goip_tw.sip.transport import Address  # noqa: E402

log = Logger(namespace="goip.sip.ua")

SDP = "application/sdp"
from goip_tw.sip.callheaders import DTMF_CHARS as _DTMF_CHARS  # noqa: E402


class _Leg:
    """What both directions share: listener, dialog, BYE/INFO handling."""

    direction = ""

    def __init__(self, core: "UaCore", account: str, line: int | None):
        self.core = core
        self.account = account
        self.line = line
        self.listener: Listener = lambda event: None
        self.dialog: Dialog | None = None
        self.state = "new"
        self.local_sdp = b""
        self.remote_sdp = b""
        self.updates = SessionUpdates(self)

    def hold(self, mode: str = "sendonly") -> defer.Deferred:
        """Put the peer on hold by re-INVITE (RFC 3264 §8.4); Deferred[final status]."""
        return self.updates.change(mode)

    def resume(self) -> defer.Deferred:
        return self.updates.change(None)

    def drop(self, reason: str) -> None:
        """End an established call from the SIP layer itself (BYE, HungUp local)."""
        self._stop_2xx()
        self._send_bye()
        self._end(HungUp(self, by="local", reason=reason))

    def _emit(self, event) -> None:
        try:
            self.listener(event)
        except Exception:
            log.failure("call listener failed on {event}", event=type(event).__name__)

    @property
    def ended(self) -> bool:
        return self.state in ("ended", "failed")

    def send_dtmf(self, digit: str, ms: int = 100) -> defer.Deferred | None:
        """SIP INFO application/dtmf-relay (F-427 out-of-band)."""
        if self.state != "confirmed" or self.dialog is None or digit not in _DTMF_CHARS:
            return None
        req = self.dialog.request("INFO", self.core.contact(self.account),
                                  f"Signal={digit}\r\nDuration={int(ms)}\r\n".encode(),
                                  "application/dtmf-relay")
        return self.core.transactions.send_request(req, self.dialog.destination())

    def _send_bye(self) -> None:
        if self.dialog is None:
            return
        req = self.dialog.request("BYE", self.core.contact(self.account))
        self.core.transactions.send_request(req, self.dialog.destination())

    def _end(self, event) -> None:
        if self.ended:
            return
        self.state = "failed" if isinstance(event, Failed) else "ended"
        self.updates.stop()
        self.core._forget(self)
        self._emit(event)

    # in-dialog requests from the peer
    def in_dialog_request(self, txn) -> None:
        req: Request = txn.request
        method = req.method
        error = self.dialog.check_incoming(req) if self.dialog is not None else None
        if error is not None:
            txn.respond(error)
            return
        if method == "BYE":
            txn.respond(req.make_response(200))
            self._stop_2xx()
            self._end(HungUp(self, by="remote", reason="BYE"))
        elif method == "INFO":
            found = parse_dtmf_info(req.headers.get("content-type") or "", req.body)
            txn.respond(req.make_response(200))
            if found:
                self._emit(Dtmf(self, digit=found[0], duration_ms=found[1]))
        elif method == "INVITE":
            self.updates.reinvite_received(txn)   # hold/resume, refresh (reinvite.py)
        elif method in ("OPTIONS", "UPDATE", "NOTIFY"):
            txn.respond(req.make_response(200))
        else:
            txn.respond(req.make_response(405))

    def _stop_2xx(self) -> None:
        pass


class InboundLeg(_Leg):
    """VoIP -> GSM: an INVITE we received (see the module docstring)."""

    direction = "inbound"

    def __init__(self, core, txn, *, account: str, identity: str, route, own_number: bool,
                 line: int | None = None):
        super().__init__(core, account, line)
        self.txn = txn
        req: Request = txn.request
        self.request = req
        self.identity = identity
        self.route = route
        self.own_number = own_number
        self.caller = uri_user(req.from_.uri)
        self.caller_display = req.from_.display or ""
        self.callee = uri_user(req.uri)
        self.call_id = req.call_id
        self.remote_sdp = req.body if (req.headers.get("content-type") or "").lower(
        ).startswith(SDP) else b""
        self.local_tag = core.transactions.new_tag()
        self.state = "offered"
        self._2xx_timer = None
        self._2xx_data = b""
        self._2xx_interval = 0.0
        self._2xx_deadline = 0.0
        txn.on_cancel = self._cancelled

    def _response(self, status: int, reason: str | None = None, sdp: bytes = b"") -> Response:
        resp = self.request.make_response(status, reason, to_tag=self.local_tag)
        if 100 < status < 300:
            resp.headers.add("Contact", self.core.contact(self.account))
        if status >= 200:
            resp.headers.add("Allow", self.core.ALLOW)
        if sdp:
            resp.headers.add("Content-Type", SDP)
            resp.body = sdp
        return resp

    def ringing(self) -> None:
        if self.state in ("offered", "early"):
            self.txn.respond(self._response(180))

    def early_media(self, local_sdp: bytes) -> None:
        if self.state in ("offered", "early"):
            self.local_sdp = local_sdp
            self.state = "early"
            self.txn.respond(self._response(183, sdp=local_sdp))

    def answer(self, local_sdp: bytes) -> None:
        if self.state not in ("offered", "early"):
            return
        self.local_sdp = local_sdp
        resp = self._response(200, sdp=local_sdp)
        try:
            self.dialog = Dialog.from_uas(self.request, self.local_tag,
                                          self.txn.source.transport)
        except SipParseError:
            # no usable Contact: answer towards the From URI (lenient, §8.1.1.8)
            req = self.request
            self.dialog = Dialog(self.call_id, req.to.with_tag(self.local_tag), req.from_,
                                 req.from_.uri, list(req.headers.get_all("record-route")),
                                 0, self.txn.source.transport, remote_cseq=req.cseq[0])
        self.state = "answered"
        self.core._remember(self)
        self.txn.respond(resp)
        # §13.3.1.4: the UAS core retransmits the 2xx until the ACK arrives
        if not self.txn.reliable:
            self._2xx_data = resp.to_bytes()
            t = self.core.transactions.timers
            self._2xx_interval = t.t1
            self._2xx_deadline = self.core.clock.seconds() + 64 * t.t1
            self._2xx_timer = self.core.clock.callLater(t.t1, self._retransmit_2xx)

    def _retransmit_2xx(self) -> None:
        self._2xx_timer = None
        if self.state != "answered":
            return
        if self.core.clock.seconds() >= self._2xx_deadline:
            log.info("no ACK for 200 OK on {call_id}: hanging up", call_id=self.call_id)
            self._send_bye()
            self._end(HungUp(self, by="local", reason="no ACK"))
            return
        self.core.transport.send(self._2xx_data, self.txn.dest)
        t2 = self.core.transactions.timers.t2
        self._2xx_interval = min(self._2xx_interval * 2, t2)
        self._2xx_timer = self.core.clock.callLater(self._2xx_interval, self._retransmit_2xx)

    def _stop_2xx(self) -> None:
        if self._2xx_timer is not None and self._2xx_timer.active():
            self._2xx_timer.cancel()
        self._2xx_timer = None

    def ack_received(self, request: Request) -> None:
        if self.state == "answered":
            self._stop_2xx()
            self.state = "confirmed"
            if request.body and not self.remote_sdp:
                self.remote_sdp = request.body    # late offer: the ACK has the answer
            self._emit(Answered(self, sdp=self.remote_sdp))
            self.updates.kick()

    def reject(self, code: int, reason: str | None = None) -> None:
        if self.state in ("offered", "early"):
            code = code if 300 <= code <= 699 else 500
            self.txn.respond(self._response(code, reason))
            self.state = "failed"
            self.core._forget(self)

    def hangup(self) -> None:
        if self.state in ("offered", "early"):
            self.reject(480, "Hung up")
        elif self.state in ("answered", "confirmed"):
            self._stop_2xx()
            self._send_bye()
            self._end(HungUp(self, by="local", reason="hangup"))

    def _cancelled(self) -> None:
        if self.state in ("offered", "early"):
            self.txn.respond(self._response(487))
            self._end(Failed(self, code=487, reason="cancelled by caller"))


class OutboundLeg(_Leg):
    """GSM -> VoIP: an INVITE we send (see the module docstring)."""

    direction = "outbound"

    def __init__(self, core, *, request: Request, dest: Address, account: str,
                 line: int | None, credentials: tuple[str, str] | None):
        super().__init__(core, account, line)
        self.request = request
        self.dest = dest
        self.call_id = request.call_id
        self.local_sdp = request.body
        self.credentials = credentials
        self.txn = None
        self._auth_tries = 0
        self.state = "calling"

    def start(self) -> None:
        if not is_ip(self.dest.host):
            # a host name: resolve it first (A record); failure ends the leg with 503
            d = self.core.clock.resolve(self.dest.host) if hasattr(
                self.core.clock, "resolve") else defer.fail(OSError("no resolver"))

            def resolved(ip):
                self.dest = Address(self.dest.transport, ip, self.dest.port)
                if self.state == "calling":
                    self.start()

            def failed(f):
                log.info("cannot resolve {host}: {error}", host=self.dest.host,
                         error=f.getErrorMessage())
                self._end(Failed(self, code=503, reason="DNS failure"))

            d.addCallbacks(resolved, failed)
            return
        self.txn = self.core.transactions.start_client(
            self.request, self.dest, on_provisional=self._provisional, on_2xx=self._again_2xx)
        self.txn.result.addCallback(self._final)

    def _provisional(self, response: Response) -> None:
        if self.ended:
            return
        if response.status == 180 and not response.body:
            self._emit(Ringing(self))
        elif response.body and (response.headers.get("content-type") or "").lower(
        ).startswith(SDP):
            self.remote_sdp = response.body
            self._emit(EarlyMedia(self, sdp=response.body))
        elif response.status in (180, 181, 182):
            self._emit(Ringing(self))

    def _final(self, response: Response) -> None:
        status = response.status
        if 200 <= status < 300:
            self._confirm(response)
            return
        if status in (401, 407) and self.credentials and self._auth_tries == 0 \
                and self.state == "calling":
            retry = self.core.authorized_retry(self.request, response, *self.credentials)
            if retry is not None:
                self._auth_tries += 1
                self.request = retry
                self.start()
                return
        if self.state == "cancelling" or status == 487:
            self._end(Failed(self, code=487, reason="cancelled"))
        else:
            self._end(Failed(self, code=status, reason=response.reason))

    def _confirm(self, response: Response) -> None:
        try:
            self.dialog = Dialog.from_uac(self.request, response)
        except SipParseError:
            self.dialog = Dialog(self.call_id, self.request.from_, response.to,
                                 self.request.uri, [], self.request.cseq[0])
        self.dialog.transport = self.dest.transport
        self._send_ack(response)
        if self.state == "cancelling":
            # the 200 crossed our CANCEL: confirm then end at once (§9.1)
            self._send_bye()
            self._end(Failed(self, code=487, reason="cancelled"))
            return
        self.state = "confirmed"
        self.core._remember(self)
        if response.body:
            self.remote_sdp = response.body
        self._emit(Answered(self, sdp=self.remote_sdp))

    def _send_ack(self, response: Response) -> None:
        self._ack = self.dialog.ack(self.request, response)
        self.core.transactions.send_ack(self._ack, self.dialog.destination())

    def _again_2xx(self, response: Response) -> None:
        if self.dialog is not None and getattr(self, "_ack", None) is not None:
            self.core.transport.send(self._ack, self.dialog.destination())

    def cancel(self) -> None:
        if self.state == "calling" and self.txn is None:
            self._end(Failed(self, code=487, reason="cancelled"))
            return
        if self.state == "calling" and self.txn is not None:
            self.state = "cancelling"
            d = self.txn.cancel()
            d.addCallback(lambda r: None)

    def hangup(self) -> None:
        if self.state == "calling":
            self.cancel()
        elif self.state == "confirmed":
            self._send_bye()
            self._end(HungUp(self, by="local", reason="hangup"))


class UaCore:
    """Owns the legs and matches in-dialog requests and ACKs to them.

    ``contact_for(account) -> str`` gives our Contact per account;
    ``authorize(request, challenge, user, password) -> Request | None`` answers
    digest challenges (``goip_tw.sip.auth`` client side).
    """

    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, UPDATE"

    def __init__(self, transactions, transport, clock, contact_for, authorize=None):
        self.transactions = transactions
        self.transport = transport
        self.clock = clock
        self._contact_for = contact_for
        self._authorize = authorize
        self.dialogs = DialogTable()

    def contact(self, account: str) -> str:
        return self._contact_for(account)

    def authorized_retry(self, request: Request, challenge: Response, user: str,
                         password: str) -> Request | None:
        """``request`` (as sent) answering ``challenge``: no Via, CSeq +1."""
        if self._authorize is None:
            return None
        retry = self._authorize(request, challenge, user, password)
        if retry is None:
            return None
        num, method = request.cseq
        retry.headers.set("CSeq", f"{num + 1} {method}")
        return retry

    @property
    def legs(self) -> dict:
        """Established legs by dialog id (call_id, local_tag, remote_tag)."""
        return dict(self.dialogs._dialogs)

    def _remember(self, leg: _Leg) -> None:
        if leg.dialog is not None:
            self.dialogs.add(leg.dialog, owner=leg)

    def _forget(self, leg: _Leg) -> None:
        if leg.dialog is not None:
            self.dialogs.remove(leg.dialog)

    def find(self, request: Request) -> _Leg | None:
        return self.dialogs.match(request)

    def in_dialog(self, txn) -> bool:
        """Handle a request with a To tag; 481 when no dialog matches (§12.2.2)."""
        leg = self.find(txn.request)
        if leg is None:
            txn.respond(txn.request.make_response(481))
            return False
        leg.in_dialog_request(txn)
        return True

    def ack_received(self, request: Request, source) -> None:
        leg = self.find(request)
        if leg is None or leg.updates.ack_received(request):
            return
        if isinstance(leg, InboundLeg):
            leg.ack_received(request)

    def offer(self, txn, **kw) -> InboundLeg:
        return InboundLeg(self, txn, **kw)

    def call(self, *, target: SipURI, dest: Address, account: str, line: int | None,
             from_: NameAddr, local_sdp: bytes, extra_headers=(),
             credentials: tuple[str, str] | None = None) -> OutboundLeg:
        """Send an INVITE (gateway-originated call); returns the leg at once."""
        req = Request("INVITE", target)
        h = req.headers
        h.add("Max-Forwards", "70")
        h.add("From", str(from_.with_tag(self.transactions.new_tag())))
        h.add("To", str(NameAddr(uri=target)))
        h.add("Call-ID", f"{os.urandom(10).hex()}@{dest.host}")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact(account))
        h.add("Allow", self.ALLOW)
        for name, value in extra_headers:
            h.add(name, value)
        if local_sdp:
            h.add("Content-Type", SDP)
            req.body = local_sdp
        leg = OutboundLeg(self, request=req, dest=dest, account=account, line=line,
                          credentials=credentials)
        leg.start()
        return leg

    def stop(self) -> None:
        """Hang up every leg (shutdown)."""
        for leg in list(self.legs.values()):
            leg.hangup()
