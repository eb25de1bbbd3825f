"""One call: the data it carries and one class per state (as sippy's UA.py does).

A ``Call`` joins at most one SIP leg and one or two mobile calls on one line (two
with call waiting, F-465).  Events from the legs, media detectors and timers are
dispatched to ``call.state``; a state changes the call by ``call.goto(NewState())``
and ends it with ``call.end(...)``.  The controller (controller.py) creates calls
and owns the policy lookups (config, routing, selection).

States, and the F-304 line state each shows:

==================  ==========  ====================================================
state               line        what is going on
==================  ==========  ====================================================
OutCollecting       ACTIVE      VoIP call answered; dial tone; second-stage digits
OutDialing          DIALING     the module dials; 180 per ringback mode (F-422)
OutAlerting         ALERTING    the remote phone rings; 183 + early media (F-422)
InCollecting        ACTIVE      mobile call answered; dial tone; digits (F-460)
InForwarding        INCOMING    INVITE sent to VoIP, mobile caller waiting
Talking             CONNECTED   media bridged both ways; DTMF, hold, call waiting
CwForwarding        (kept)      waiting.py: a waiting caller's own INVITE is out
CwTalking           (kept)      waiting.py: the waiting caller talks, the first held
CwHeld              (kept)      waiting.py: mode 3 swapped back, the waiting call held
Ended               IDLE        everything released, CDR written (IDLE only when no
                                other call is left on the line)
==================  ==========  ====================================================
"""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.calls import cdr as cdrmod
from goip_tw.calls.interfaces import IMobileCallListener, ISipLegListener, MediaStats
from goip_tw.calls.linestate import LineState

log = Logger()


class State:
    """Default reactions shared by every state; subclasses override what differs."""

    name = "?"
    line_state: LineState | None = None

    def enter(self, call):
        pass

    # SIP leg events
    def leg_ringing(self, call, leg):
        pass

    def leg_early_media(self, call, leg):
        pass

    def leg_answered(self, call, leg):
        pass

    def leg_dtmf(self, call, leg, digit, source="signal"):
        pass

    def leg_hold(self, call, leg, held):
        pass

    def leg_ended(self, call, leg, code, reason):
        call.end("sip", sip_code=code, sip_reason=reason)

    # mobile events
    def mobile_alerting(self, call, mcall):
        pass

    def mobile_connected(self, call, mcall):
        pass

    def mobile_dtmf(self, call, mcall, digit, source="signal"):
        pass

    def mobile_ended(self, call, mcall, cause, text):
        call.end("mobile", cause=cause, cause_text=text)

    def mobile_waiting(self, call, mcall, caller):
        mcall.hangup()

    def timeout(self, call, name):
        pass

    def parent_gone(self, call):
        """Call waiting (waiting.py): the first call on the line ended."""


@implementer(ISipLegListener, IMobileCallListener)
class Call:
    """Context of one call; the controller is its policy source."""

    def __init__(self, controller, direction: str, line: int | None = None):
        self.controller = controller
        self.clock = controller.clock
        self.direction = direction
        self.line = line
        self.leg = None
        self.mcall = None
        self.other_mcalls: list = []      # held/waiting mobile calls (F-465)
        self.state: State = State()
        self.timers: dict = {}
        self.bridge = None
        self.tone = None
        self.detector = None
        self.digits = ""
        self.last_digit = None
        self.sip_answered = False
        self.mobile_answered = False
        self.ended = False
        self.setup_time = self.clock.seconds()
        self.ring_time = None
        self.answer_time = None
        self.slot = self.iccid = None
        self.caller_before = self.caller_after = None
        self.callee_before = self.callee_after = None
        self.two_stage = False
        self.test_call = False
        self.m1_digits: str | None = None
        self.waiting: dict = {}           # waiting mobile call -> [setup, caller, answer]
        self.mobile_held = False          # the SIP side holds the call (AT+CHLD=2)
        self.parent = None                # waiting.py: the call this one waited on
        self.waiting_child = None         # waiting.py: the waiting call's own Call
        self.waiting_mode = None
        self.switched_out = False         # our re-INVITE holds the leg for another call
        self.stats = MediaStats()
        self.on_end = None                # callback(call), used by the call test tool

    # -- plumbing ----------------------------------------------------------------------

    @property
    def call_id(self):
        return getattr(self.leg, "call_id", None)

    @property
    def config(self):
        return self.controller.line_config(self.line)

    def goto(self, state: State) -> None:
        if self.ended:
            return
        log.debug("call {call_id} line {line}: {old} -> {new}", call_id=self.call_id,
                  line=self.line, old=self.state.name, new=state.name)
        self.state = state
        if state.line_state is not None and self.line is not None:
            self.controller.line_states.set(self.line, state.line_state, self.call_id)
        state.enter(self)

    def start_timer(self, name: str, seconds: float) -> None:
        self.cancel_timer(name)
        if seconds and seconds > 0:
            self.timers[name] = self.clock.callLater(seconds, self._fire, name)

    def cancel_timer(self, name: str) -> None:
        t = self.timers.pop(name, None)
        if t is not None and t.active():
            t.cancel()

    def _fire(self, name):
        self.timers.pop(name, None)
        if not self.ended:
            self.state.timeout(self, name)

    def play(self, tone: str | None, to: str = "line") -> None:
        """Replace the current tone (None = silence) toward the line or the leg."""
        if self.tone is not None:
            self.tone.stop()
            self.tone = None
        if tone is None:
            return
        media = self.controller.media
        self.tone = (media.tone_to_line(self.line, tone) if to == "line"
                     else media.tone_to_leg(self.leg, tone))

    def connect_media(self) -> None:
        if self.bridge is None and self.leg is not None and self.line is not None:
            self.play(None)
            self.bridge = self.controller.media.bridge(self.line, self.leg)

    def stop_detector(self) -> None:
        if self.detector is not None:
            self.detector.stop()
            self.detector = None

    # -- listener entry points (ISipLegListener, IMobileCallListener) ------------------

    def _dispatch(self, event, *args):
        if self.ended:
            return
        try:
            getattr(self.state, event)(self, *args)
        except Exception:
            log.failure("call {call_id}: {event} failed in {state}", call_id=self.call_id,
                        event=event, state=self.state.name)
            self.end("gateway", sip_code=500, sip_reason="Internal error")

    def leg_ringing(self, leg):
        self._dispatch("leg_ringing", leg)

    def leg_early_media(self, leg):
        self._dispatch("leg_early_media", leg)

    def leg_answered(self, leg):
        self.sip_answered = True
        self._dispatch("leg_answered", leg)

    def leg_dtmf(self, leg, digit):
        self._dispatch("leg_dtmf", leg, digit)

    def leg_hold(self, leg, held):
        self._dispatch("leg_hold", leg, held)

    def leg_ended(self, leg, code, reason):
        self._dispatch("leg_ended", leg, code, reason)

    def mobile_alerting(self, mcall):
        self._dispatch("mobile_alerting", mcall)

    def mobile_connected(self, mcall):
        self._dispatch("mobile_connected", mcall)

    def mobile_dtmf(self, mcall, digit):
        self._dispatch("mobile_dtmf", mcall, digit)

    def mobile_ended(self, mcall, cause, text):
        self._dispatch("mobile_ended", mcall, cause, text)

    def mobile_waiting(self, mcall, caller):
        self._dispatch("mobile_waiting", mcall, caller)

    # -- call waiting (F-465): each extra mobile call gets its own CDR -----------------

    def waiting_started(self, mcall, caller, answered: bool) -> None:
        now = self.clock.seconds()
        self.waiting[mcall] = [now, caller, now if answered else None]

    def waiting_answered(self, mcall) -> None:
        entry = self.waiting.get(mcall)
        if entry is not None and entry[2] is None:
            entry[2] = self.clock.seconds()

    def waiting_ended(self, mcall, side="mobile", cause=None, text=None) -> None:
        entry = self.waiting.pop(mcall, None)
        if entry is None:
            return
        setup, caller, answer = entry
        self.controller.record(cdrmod.Cdr(
            direction=cdrmod.INCOMING, setup_time=setup, end_time=self.clock.seconds(),
            line=self.line, slot=self.slot, iccid=self.iccid, caller_before=caller,
            caller_after=caller, callee_before=self.caller_after or self.callee_after,
            callee_after=self.callee_after, sip_call_id=self.call_id, answer_time=answer,
            end_side=side, mobile_cause=cause, mobile_cause_text=text,
            sip_reason="call waiting",
            billing_period=self.controller.calls_config().billing_period))

    # -- the end -----------------------------------------------------------------------

    def end(self, side: str, *, sip_code: int | None = None, sip_reason: str | None = None,
            cause: int | None = None, cause_text: str | None = None) -> None:
        """Release everything exactly once, tell the other side, write the CDR.

        ``side`` is who ended it: "sip", "mobile" or "gateway" (timeouts, policy).
        ``sip_code`` is the final response sent (or received) when the SIP leg never
        answered; for a mobile-side failure before answer it is looked up from the
        cause map (F-432) when not given.
        """
        if self.ended:
            return
        self.ended = True
        for name in list(self.timers):
            self.cancel_timer(name)
        self.stop_detector()
        self.play(None)
        if self.bridge is not None:
            stats = self.bridge.stop()
            if stats is not None and hasattr(stats, "one_way"):
                self.stats = MediaStats(stats.codec, stats.loss, stats.jitter_ms,
                                        bool(stats.one_way))
            self.bridge = None
        ctl = self.controller
        if side == "mobile" and sip_code is None and not self.sip_answered:
            sip_code = ctl.sip_code_for(cause, cause_text)
        if self.leg is not None and side != "sip":
            if self.sip_answered or self.direction == cdrmod.INCOMING:
                self.leg.hangup()
            else:
                self.leg.reject(sip_code or 500, sip_reason)
        for mcall in [self.mcall] + self.other_mcalls:
            if mcall is not None and not (side == "mobile" and mcall is self.mcall):
                mcall.hangup()
        for mcall in list(self.waiting):
            self.waiting_ended(mcall, side=side if side != "mobile" else "gateway")
        others = [c for c in ctl.calls if c is not self and c.line == self.line
                  and not c.ended]
        if self.line is not None and not others:
            ctl.line_states.set(self.line, LineState.IDLE)
        log.info("call {call_id} line {line} {direction} ended by {side} "
                 "(sip {sip_code}, cause {cause})", call_id=self.call_id, line=self.line,
                 direction=self.direction, side=side, sip_code=sip_code, cause=cause)
        record = cdrmod.Cdr(
            direction=self.direction, setup_time=self.setup_time,
            end_time=self.clock.seconds(), line=self.line, slot=self.slot,
            iccid=self.iccid, caller_before=self.caller_before,
            caller_after=self.caller_after, callee_before=self.callee_before,
            callee_after=self.callee_after, sip_call_id=self.call_id,
            ring_time=self.ring_time, answer_time=self.answer_time, end_side=side,
            mobile_cause=cause, mobile_cause_text=cause_text, sip_code=sip_code,
            sip_reason=sip_reason, codec=self.stats.codec or getattr(self.leg, "codec", None),
            rtp_loss=self.stats.loss, rtp_jitter_ms=self.stats.jitter_ms,
            one_way_audio=self.stats.one_way, two_stage=self.two_stage,
            test_call=self.test_call, billing_period=ctl.calls_config().billing_period)
        self.state = Ended()
        ctl.call_ended(self, record)
        if self.on_end is not None:
            self.on_end(self, record)
        if self.parent is not None and self.parent.waiting_child is self:
            self.parent.waiting_child = None
        child, self.waiting_child = self.waiting_child, None
        if child is not None and not child.ended:
            child._dispatch("parent_gone")


class Ended(State):
    name = "Ended"

    def leg_ended(self, call, leg, code, reason):
        pass

    def mobile_ended(self, call, mcall, cause, text):
        pass
