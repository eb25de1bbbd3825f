"""Session changes inside an established call: re-INVITE both ways (RFC 3261 §14).

Each call leg (``goip_tw.sip.ua``) owns one ``SessionUpdates``.  It

- answers a re-INVITE from the peer: with an SDP offer, our SDP with the direction
  answered per RFC 3264 §6.1 (sendonly -> recvonly, inactive -> inactive); without
  one (a late offer, §14.2), our current SDP as the offer, the answer then arriving
  in the ACK.  The 2xx is retransmitted until the ACK (§13.3.1.4).  When the
  peer's SDP moves between hold (``sendonly``/``inactive``/``c=0.0.0.0``) and not,
  the leg emits ``ua.Hold(held, sdp)``; any other change of the peer's SDP emits
  ``ua.MediaChanged(sdp)`` so media can re-target;
- sends our own re-INVITE for ``leg.hold()`` / ``leg.resume()`` (RFC 3264 §8.4):
  our SDP with ``a=sendonly`` (or ``inactive``) / ``a=sendrecv`` and the ``o=``
  version raised, ACK for the 2xx, and a Deferred firing with the final status;
- resolves glare: a re-INVITE from the peer while ours is pending gets 491 (§14.2);
  our re-INVITE answered 491 is retried after the §14.1 random wait (2.1-4 s when
  we own the Call-ID, i.e. we placed the call, else 0-2 s, in 10 ms steps) on the
  injected clock, at most ``MAX_GLARE_RETRIES`` times;
- ends the dialog with a BYE when our re-INVITE gets 408 or 481 (§14.1) or the
  peer never ACKs our 2xx (§13.3.1.4).

A failed re-INVITE (any other non-2xx) leaves the session as it was (§14.1).
"""

from __future__ import annotations

import random

from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sip.callheaders import with_direction
from goip_tw.sip.dialog import hold_direction, is_hold
from goip_tw.sip.sdp import SdpError, answer_direction, parse_audio

log = Logger(namespace="goip.sip.reinvite")

SDP = "application/sdp"
#: 491 retries before ``hold()``/``resume()`` gives up with 491.
MAX_GLARE_RETRIES = 3
HOLD_MODES = ("sendonly", "inactive")


def glare_delay(owner: bool, rng=random) -> float:
    """RFC 3261 §14.1: the wait before retrying a re-INVITE answered 491."""
    if owner:
        return rng.randint(210, 400) / 100.0
    return rng.randint(0, 200) / 100.0


class SessionUpdates:
    """The re-INVITE state of one leg (see the module docstring)."""

    def __init__(self, leg, rng=None):
        self.leg = leg
        self.rng = rng or random.Random()
        self.remote_held = False     # the peer's SDP puts the call on hold
        self.local_hold = None       # what the peer last accepted from us: None/mode
        self.wanted = None           # what hold()/resume() asked for
        self._waiters: list[defer.Deferred] = []
        self._client = None          # our pending re-INVITE transaction
        self._retry = None           # the glare back-off timer
        self._tries = 0
        self._ack = None             # our last ACK for a re-INVITE 2xx (retransmits)
        self._server = None          # (cseq, data, dest) of a 2xx awaiting its ACK
        self._server_timer = None
        self._server_interval = 0.0
        self._server_deadline = 0.0
        self._late_offer = False

    @property
    def core(self):
        return self.leg.core

    @property
    def pending(self) -> bool:
        return self._client is not None or self._server is not None or (
            self._retry is not None and self._retry.active())

    # -- our re-INVITE -----------------------------------------------------------------

    def change(self, mode: str | None) -> defer.Deferred:
        """Ask for hold (``mode`` sendonly/inactive) or resume (None); Deferred[int]."""
        if mode is not None and mode not in HOLD_MODES:
            raise ValueError(f"hold mode must be one of {HOLD_MODES}, not {mode!r}")
        d = defer.Deferred()
        if self.leg.ended or self.leg.dialog is None or not self.leg.local_sdp:
            d.callback(481)
            return d
        self.wanted = mode
        self._tries = 0
        self._waiters.append(d)
        self.kick()
        return d

    def kick(self) -> None:
        """Send the re-INVITE now if one is wanted and none is in progress (§14.1)."""
        if not self._waiters or self.pending or self.leg.state != "confirmed":
            return
        if self.wanted == self.local_hold:
            self._fire(200)
            return
        self._send(self.wanted)

    def _send(self, mode) -> None:
        leg = self.leg
        offer = with_direction(leg.local_sdp, mode or "sendrecv")
        req = leg.dialog.request("INVITE", self.core.contact(leg.account), offer, SDP)
        req.headers.add("Allow", self.core.ALLOW)
        self._start(req, offer, mode, auth_tried=False)

    def _start(self, req, offer, mode, auth_tried) -> None:
        dest = self.leg.dialog.destination()
        log.info("call {call_id}: re-INVITE ({what})", call_id=self.leg.call_id,
                 what=mode or "resume")
        txn = self.core.transactions.start_client(req, dest, on_2xx=self._again_2xx)
        self._client = txn
        txn.result.addCallback(self._final, req, offer, mode, auth_tried)
        txn.result.addErrback(self._failed)

    def _final(self, resp, req, offer, mode, auth_tried) -> None:
        self._client = None
        leg = self.leg
        status = resp.status
        if leg.ended:
            self._fire(481)
            return
        if 200 <= status < 300:
            self._ack = leg.dialog.ack(req, resp)
            self.core.transactions.send_ack(self._ack, leg.dialog.destination())
            leg.local_sdp = offer
            self.local_hold = mode
            if resp.body and (resp.headers.get("content-type") or "").lower(
            ).startswith(SDP):
                leg.remote_sdp = resp.body
            self._tries = 0
            if self.wanted == self.local_hold:
                self._fire(status)
            else:
                self.kick()
            return
        creds = getattr(leg, "credentials", None)
        if status in (401, 407) and creds and not auth_tried:
            retry = self.core.authorized_retry(req, resp, *creds)
            if retry is not None:
                leg.dialog.local_cseq = max(leg.dialog.local_cseq, retry.cseq[0])
                self._start(retry, offer, mode, auth_tried=True)
                return
        if status == 491 and self._tries < MAX_GLARE_RETRIES:
            self._tries += 1
            delay = glare_delay(leg.direction == "outbound", self.rng)
            log.info("call {call_id}: re-INVITE glare (491); retry in {delay}s",
                     call_id=leg.call_id, delay=delay)
            self._retry = self.core.clock.callLater(delay, self._retry_now)
            return
        if status in (408, 481):
            # §14.1: the dialog is gone or the peer is unreachable: end the call
            log.info("call {call_id}: re-INVITE answered {status}; ending the call",
                     call_id=leg.call_id, status=status)
            self._fire(status)
            leg.drop(f"re-INVITE {status}")
            return
        log.info("call {call_id}: re-INVITE refused with {status}; session unchanged",
                 call_id=leg.call_id, status=status)
        self.wanted = self.local_hold
        self._fire(status)

    def _failed(self, failure) -> None:
        self._client = None
        log.failure("call {call_id}: re-INVITE failed", failure, call_id=self.leg.call_id)
        self._fire(500)

    def _retry_now(self) -> None:
        self._retry = None
        if self.leg.ended:
            self._fire(481)
            return
        if self.wanted == self.local_hold:
            self._fire(200)
            return
        self._send(self.wanted)

    def _again_2xx(self, response) -> None:
        if self._ack is not None and self.leg.dialog is not None:
            self.core.transport.send(self._ack, self.leg.dialog.destination())

    def _fire(self, status: int) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(status)

    # -- the peer's re-INVITE ----------------------------------------------------------

    def reinvite_received(self, txn) -> None:
        """An in-dialog INVITE that passed the §12.2.2 checks."""
        leg = self.leg
        req = txn.request
        if self._client is not None:
            txn.respond(req.make_response(491))        # §14.2: glare
            return
        if self._server is not None or leg.state != "confirmed":
            # §14.2: an earlier INVITE is still open; try again in a moment
            resp = req.make_response(500, "Server Internal Error (INVITE pending)")
            resp.headers.add("Retry-After", str(self.rng.randint(0, 10)))
            txn.respond(resp)
            return
        if not leg.local_sdp:
            txn.respond(req.make_response(488))
            return
        offer = req.body if (req.headers.get("content-type") or "").lower(
        ).startswith(SDP) else b""
        if offer and not self._usable(offer, "re-INVITE"):
            txn.respond(req.make_response(488))   # §14.2: the session stays as it was
            return
        ours = self.local_hold or "sendrecv"
        if offer:
            body = with_direction(leg.local_sdp, answer_direction(hold_direction(offer), ours))
        else:
            body = with_direction(leg.local_sdp, ours)   # late offer: the ACK answers
        leg.local_sdp = body
        resp = req.make_response(200)
        resp.headers.add("Contact", self.core.contact(leg.account))
        resp.headers.add("Allow", self.core.ALLOW)
        resp.headers.add("Content-Type", SDP)
        resp.body = body
        txn.respond(resp)
        self._late_offer = not offer
        self._server = (req.cseq[0], resp.to_bytes(), txn.dest)
        if txn.reliable:
            self._server_timer = None
        else:
            t = self.core.transactions.timers
            self._server_interval = t.t1
            self._server_deadline = self.core.clock.seconds() + 64 * t.t1
            self._server_timer = self.core.clock.callLater(t.t1, self._retransmit_2xx)
        if offer:
            self.remote_changed(offer)

    def _retransmit_2xx(self) -> None:
        self._server_timer = None
        if self._server is None or self.leg.ended:
            return
        if self.core.clock.seconds() >= self._server_deadline:
            log.info("call {call_id}: no ACK for the re-INVITE 200; ending the call",
                     call_id=self.leg.call_id)
            self._server = None
            self.leg.drop("no ACK for re-INVITE")
            return
        self.core.transport.send(self._server[1], self._server[2])
        self._server_interval = min(self._server_interval * 2,
                                    self.core.transactions.timers.t2)
        self._server_timer = self.core.clock.callLater(self._server_interval,
                                                       self._retransmit_2xx)

    def ack_received(self, request) -> bool:
        """The ACK of a re-INVITE 2xx (True) or not ours (False)."""
        if self._server is None or request.cseq[0] != self._server[0]:
            return self._server is None and self.leg.state == "confirmed"
        self._stop_server()
        late, self._late_offer = self._late_offer, False
        if late:
            if request.body and self._usable(request.body, "ACK"):
                self.remote_changed(request.body)
            else:
                log.info("call {call_id}: ACK without the SDP answer to our offer",
                         call_id=self.leg.call_id)
        self.kick()
        return True

    def _usable(self, body: bytes, where: str) -> bool:
        """An SDP with an audio stream we can read; bad ones are logged by field."""
        try:
            parse_audio(body)
        except SdpError as e:
            log.info("call {call_id}: unusable SDP in {where}: {field}: {error}",
                     call_id=self.leg.call_id, where=where,
                     field=getattr(e, "field", "sdp"), error=str(e))
            return False
        return True

    def _stop_server(self) -> None:
        self._server = None
        if self._server_timer is not None and self._server_timer.active():
            self._server_timer.cancel()
        self._server_timer = None

    def remote_changed(self, sdp: bytes) -> None:
        """New SDP from the peer: Hold when it crosses hold/resume, else MediaChanged."""
        from goip_tw.sip import ua

        leg = self.leg
        changed = sdp != leg.remote_sdp
        leg.remote_sdp = sdp
        held = is_hold(sdp)
        if held != self.remote_held:
            self.remote_held = held
            log.info("call {call_id}: {what} by the SIP side", call_id=leg.call_id,
                     what="held" if held else "resumed")
            leg._emit(ua.Hold(leg, held=held, sdp=sdp))
        elif changed:
            leg._emit(ua.MediaChanged(leg, sdp=sdp))

    # -- the end -----------------------------------------------------------------------

    def stop(self) -> None:
        """The leg ended: no timers left, every waiter answered."""
        self._stop_server()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._fire(481)
