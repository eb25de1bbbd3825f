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

    leg.caller, leg.callee          # user parts of From / Request-URI (str)
    leg.caller_display              # From display name ("" if none)
    leg.route                       # goip_tw.sip.routing.Route, or None when prefix
                                    #   matching found nothing (the UA already sent 603)
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
    leg.hangup()                    # BYE (or CANCEL-like 487 before answer)
    leg.send_dtmf(digit, ms=100)    # SIP INFO application/dtmf-relay (F-427)

GSM -> VoIP (a mobile call to be forwarded, F-463)::

    leg = sip.place_call(target, caller=..., caller_display="", line=1,
                         local_sdp=b"...", caller_id_mode="from")
        # target: "101", "101@192.168.2.2:6060" or "sip:..."; a bare number goes
        #   to the registrar/proxy of the line's account, or to trunk gateway 1.
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
    HungUp(by, reason)               by = "remote" | "local"; after answer
    Failed(code, reason)             outbound final non-2xx / timeout (408) /
                                     transport error (503); inbound CANCEL (487)

``Offered`` is not an event: ``incoming_call(leg)`` *is* the offer.

Messages (F-496, F-1801)::

    msg.sender, msg.recipient       # From user, Request-URI user
    msg.body (bytes), msg.content_type, msg.call_id, msg.identity, msg.account
    d = sip.send_message(target, body, from_user=None, content_type="text/plain;charset=UTF-8")
        # Deferred[int]: final status code (e.g. 200/202), errback on timeout
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


CallEvent = Ringing | EarlyMedia | Answered | Dtmf | HungUp | Failed
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
