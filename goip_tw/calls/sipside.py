"""ISipSide / ISipLeg on top of ``goip_tw.sip`` (see goip_tw/sip/ua.py for its API).

The SIP service hands every admitted INVITE to ``SipSide.incoming_call(leg)`` (it
is the service's call handler); ``originate`` places GSM -> VoIP calls with
``sip.place_call``.  SDP comes from the media side: ``media.local_sdp(leg, offer)``
builds our offer (offer None) or answer, ``media.remote_sdp(leg, sdp)`` takes the
far end's answer, and ``media.release(leg)`` frees the RTP ports when the leg ends.

Session changes (RFC 3261 §14): every new SDP from the far end -- a re-INVITE
(``ua.Hold`` / ``ua.MediaChanged``), the answer in the ACK of a late offer
(INVITE without SDP: our 200 carries the offer) or the answer to our own
re-INVITE -- goes to ``media.remote_sdp`` so RTP follows it; ``hold()`` /
``resume()`` send our re-INVITE (call waiting, F-465).
"""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.calls.interfaces import ISipLeg, ISipSide, SipOffer

log = Logger()


@implementer(ISipLeg)
class SipLeg:
    """Wraps an InboundLeg or OutboundLeg; turns its events into listener calls."""

    def __init__(self, media, leg=None, inbound: bool = True):
        self.media = media
        self.inbound = inbound
        self.listener = None
        self.sip_leg = None
        self._local_sdp = None
        self._late_offer = False
        self._done = False
        if leg is not None:
            self.attach(leg)

    def attach(self, leg):
        self.sip_leg = leg
        leg.listener = self._event

    @property
    def call_id(self):
        return getattr(self.sip_leg, "call_id", None)

    @property
    def codec(self):
        return getattr(self.media, "codec_of", lambda leg: None)(self)

    def set_listener(self, listener):
        self.listener = listener

    def _answer_sdp(self):
        if self._local_sdp is None:
            offer = self.sip_leg.remote_sdp or None
            self._late_offer = offer is None     # we offer in the 200; the ACK answers
            self._local_sdp = self.media.local_sdp(self, offer)
        return self._local_sdp

    # -- commands ----------------------------------------------------------------------

    def ringing(self):
        self.sip_leg.ringing()

    def early_media(self):
        self.sip_leg.early_media(self._answer_sdp())

    def answer(self):
        self.sip_leg.answer(self._answer_sdp())

    def reject(self, code, reason=None):
        self.sip_leg.reject(code, reason)
        self._release()

    def hangup(self):
        self.sip_leg.hangup()
        self._release()

    def send_dtmf(self, digit, duration_ms=100):
        self.sip_leg.send_dtmf(digit, duration_ms)

    def hold(self, mode="sendonly"):
        """re-INVITE putting the far end on hold (RFC 3264 §8.4); Deferred[status]."""
        return self._reinvite(self.sip_leg.hold(mode))

    def resume(self):
        return self._reinvite(self.sip_leg.resume())

    def _reinvite(self, d):
        def done(status):
            if 200 <= status < 300 and not self._done and self.sip_leg.remote_sdp:
                self._remote(self.sip_leg.remote_sdp)
            return status
        return d.addCallback(done)

    def _remote(self, sdp):
        if self.media.remote_sdp(self, sdp) is not False:
            return
        log.warn("call {call_id}: the far end's new SDP is unusable; media unchanged",
                 call_id=self.call_id)

    def _release(self):
        if not self._done:
            self._done = True
            self.media.release(self)

    # -- events ------------------------------------------------------------------------

    def _event(self, event):
        from goip_tw.sip import ua

        listener = self.listener
        if listener is None:
            return
        if isinstance(event, ua.Ringing):
            listener.leg_ringing(self)
        elif isinstance(event, ua.EarlyMedia):
            if event.sdp and not self.inbound:
                self.media.remote_sdp(self, event.sdp)
            listener.leg_early_media(self)
        elif isinstance(event, ua.Answered):
            if self.inbound:
                # the ACK of our 200: the controller already counts it answered; after
                # a late offer it carries the far end's answer (RFC 3261 §13.2.1)
                if self._late_offer and event.sdp:
                    self._remote(event.sdp)
                elif self._late_offer:
                    log.info("call {call_id}: ACK without an SDP answer to our offer",
                             call_id=self.call_id)
                return
            if event.sdp:
                self.media.remote_sdp(self, event.sdp)
            listener.leg_answered(self)
        elif isinstance(event, ua.Dtmf):
            listener.leg_dtmf(self, event.digit)
        elif isinstance(event, ua.Hold):
            if event.sdp:
                self._remote(event.sdp)                # stop/start sending as asked
            listener.leg_hold(self, bool(event.held))  # re-INVITE sendonly/inactive
        elif isinstance(event, ua.MediaChanged):
            self._remote(event.sdp)
        elif isinstance(event, ua.HungUp):
            self._release()
            listener.leg_ended(self, None, event.reason or "BYE")
        elif isinstance(event, ua.Failed):
            self._release()
            listener.leg_ended(self, event.code, event.reason)


@implementer(ISipSide)
class SipSide:
    def __init__(self, sip_service, media):
        self.sip = sip_service
        self.media = media
        self.controller = None

    def incoming_call(self, leg):
        """The SIP service's call handler: an admitted INVITE (F-425)."""
        wrapper = SipLeg(self.media, leg, inbound=True)
        if self.controller is None:
            leg.reject(503, "Calls not ready")
            return
        route = leg.route
        own = bool(getattr(leg, "own_number", False))
        lines = tuple(route.lines) if route is not None and route.lines else None
        number = None if own or route is None else (route.number or None)
        self.controller.offer(wrapper, SipOffer(leg.caller, leg.callee, leg.call_id,
                                                own_number=own, lines=lines, number=number))

    def originate(self, target, caller_id, cid_mode, line, listener):
        wrapper = SipLeg(self.media, inbound=False)
        wrapper.set_listener(listener)
        if self.controller is not None:
            self.controller.set_leg_dtmf_mode(wrapper, line)  # before our offer (F-427)
        sdp = self.media.local_sdp(wrapper, None)
        wrapper._local_sdp = sdp
        leg = self.sip.place_call(target, caller=caller_id or "", line=line, local_sdp=sdp,
                                  caller_id_mode=cid_mode)
        wrapper.attach(leg)
        return wrapper
