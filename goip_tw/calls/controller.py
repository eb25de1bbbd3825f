"""The call controller: where a new call comes in, which line it takes, which number
is dialled, and what happens when it ends.

Entry points (called by the protocol adapters):

- ``offer(leg, SipOffer)``: an admitted INVITE, VoIP -> mobile (issue 7 item 1),
  or two-stage dialing, outgoing direction (item 3) when it is for our own number;
- ``mobile_incoming(line, mcall, caller)``: RING/+CLIP, mobile -> VoIP (item 2);
- ``mobile_waiting(line, mcall, caller)``: +CCWA during a call (F-465);
- ``test_call(line, number, seconds)``: F-508 (calltest.py wraps it).

Every call ends in ``call_ended``: the CDR is written and ``call.ended`` published
(fields: line, iccid, direction, answered, duration, billed_periods, short,
sip_code, mobile_cause) for SIM statistics and the live UI.
"""

from __future__ import annotations

import functools
import re

from twisted.logger import Logger

from goip_tw.calls import cdr as cdrmod
from goip_tw.calls import states
from goip_tw.calls.call import Call
from goip_tw.calls.dialrules import DialRuleError, NumberRejected, parse_dial_rules
from goip_tw.calls.forward import parse_in_forward, parse_out_forward, sip_code_for
from goip_tw.calls.linestate import LineState
from goip_tw.calls.selection import LineInfo, LineSelector
from goip_tw.config.sections.calls import CallsConfig

log = Logger()

#: What a module can dial (3GPP TS 27.007 ATD dial string, voice subset).
DIALLABLE = re.compile(r"^\+?[0-9*#]{1,40}$")


@functools.lru_cache(maxsize=256)
def _rules(text: str):
    return parse_dial_rules(text)


def rewrite_number(text: str, number: str, strict: bool = False) -> str:
    """Dial rules that fail to parse (config validation should stop them) leave the
    number alone and say so, rather than dropping the call."""
    try:
        return _rules(text).rewrite(number, strict)
    except DialRuleError as e:
        log.error("ignoring bad dial rules: {error}", error=str(e))
        return number


class CallController:
    def __init__(self, *, clock, sip, lines, media, line_states, calls_config,
                 dtmf_mode=lambda: "rfc4733", router=None, cdrs=None, events=None):
        """``calls_config()`` returns the current CallsConfig (reconfig is picked up
        per call); ``router(caller, callee)`` returns an object with ``lines`` and
        ``number`` (goip_tw.sip.routing.Route) or None for 603 (F-412)."""
        self.clock = clock
        self.sip = sip
        self.lines = lines
        self.media = media
        self.line_states = line_states
        self.calls_config = calls_config
        self.dtmf_mode = dtmf_mode
        self.router = router
        self.cdrs = cdrs
        self.events = events
        self.selector = LineSelector(calls_config().selection)
        self.calls: set[Call] = set()
        self.pending_cdrs: list = []
        #: talk seconds per ICCID (loaded from the CDRs at start, then kept up to date)
        #: for least-talk-time selection when the SIM layer gives no figure
        self.talk_seconds: dict[str, float] = {}

    # -- helpers -----------------------------------------------------------------------

    def line_config(self, line):
        cfg: CallsConfig = self.calls_config()
        return cfg.line(line or 1)

    def dtmf_mode_of(self, line) -> str:
        """F-427 for one line: its ``[[calls.lines]]`` ``dtmf_mode``, else the global
        ``dtmf_mode()`` (media.dtmf_mode)."""
        return getattr(self.line_config(line), "dtmf_mode", "") or self.dtmf_mode()

    def set_leg_dtmf_mode(self, leg, line) -> None:
        """Tell the media engine the leg's line mode before it writes any SDP (it
        offers telephone-event only in rfc4733 mode)."""
        set_mode = getattr(self.media, "set_dtmf_mode", None)
        if set_mode is not None and leg is not None:
            set_mode(leg, self.dtmf_mode_of(line))

    def sip_code_for(self, cause, text):
        return sip_code_for(self.calls_config().cause_map, cause, text)

    def call_on_line(self, line: int) -> Call | None:
        """The line's call (the first one, not a waiting call's own, waiting.py)."""
        for call in self.calls:
            if call.line == line and not call.ended and call.parent is None:
                return call
        for call in self.calls:
            if call.line == line and not call.ended:
                return call
        return None

    def _line_infos(self, candidates):
        out = []
        for n in candidates:
            st = self.lines.status(n)
            out.append(LineInfo(
                number=n, enabled=st.enabled, registered=st.registered,
                idle=(self.line_states.is_idle(n) and self.call_on_line(n) is None
                      and not st.busy),
                allow_pstn=self.line_config(n).allow_pstn, within_limits=st.within_limits,
                talk_seconds=st.talk_seconds or int(self.talk_seconds.get(st.iccid, 0))))
        return out

    def _take_line(self, call, candidates) -> bool:
        """Select a line (F-421) and bind it to the call; False = none free (F-424)."""
        self.selector.mode = self.calls_config().selection
        infos = self._line_infos(candidates)
        chosen = self.selector.choose(infos)
        if chosen is None:
            code = self.calls_config().no_line_code
            log.info("call {call_id}: no free line ({why}); replying {code}",
                     call_id=call.call_id, why=LineSelector.why_none(infos), code=code)
            call.end("gateway", sip_code=code, sip_reason="No line available")
            return False
        call.line = chosen.number
        self.set_leg_dtmf_mode(call.leg, call.line)
        st = self.lines.status(chosen.number)
        call.slot, call.iccid = st.slot, st.iccid
        return True

    # -- VoIP -> mobile ----------------------------------------------------------------

    def offer(self, leg, offer) -> Call:
        call = Call(self, cdrmod.OUTGOING)
        call.leg = leg
        call.caller_before = call.caller_after = offer.caller
        call.callee_before = offer.callee
        leg.set_listener(call)
        self.calls.add(call)
        if offer.own_number:
            candidates = offer.lines or tuple(self.lines.line_numbers())
            number = None
        elif offer.lines:
            candidates, number = offer.lines, offer.number or offer.callee
        else:
            route = (self.router(offer.caller, offer.callee) if self.router is not None
                     else _AllLines(tuple(self.lines.line_numbers()), offer.callee))
            if route is None:
                log.info("call {call_id}: {caller} -> {callee} matches no line prefix; 603",
                         call_id=leg.call_id, caller=offer.caller, callee=offer.callee)
                call.end("gateway", sip_code=603, sip_reason="Decline")
                return call
            candidates, number = route.lines, route.number
        if not self._take_line(call, candidates):
            return call
        if number is not None:
            self._dial(call, number)
            return call
        call.two_stage = True
        forward = parse_out_forward(call.config.forward_number)
        call.leg.answer()
        call.sip_answered = True
        if forward.kind == "plain":
            call.callee_before = forward.number
            self._dial(call, forward.number, rules=False)
        else:
            call.goto(states.OutCollecting())
        return call

    def dial_second_stage(self, call):
        call.callee_before = call.digits
        self._dial(call, call.digits)

    def _dial(self, call, number, rules=True):
        cfg = call.config
        if rules:
            try:
                number = rewrite_number(cfg.dial_rules, number, cfg.strict_dial_rules)
            except NumberRejected:
                log.info("call {call_id}: {number} refused by strict dial rules",
                         call_id=call.call_id, number=number)
                call.end("gateway", sip_code=403, sip_reason="Forbidden by dial rules")
                return
        call.callee_after = number
        if not DIALLABLE.match(number):
            log.info("call {call_id}: callee {number!r} is not a dialable number; 484",
                     call_id=call.call_id, number=number)
            call.end("gateway", sip_code=484, sip_reason="Address Incomplete")
            return
        forward = parse_out_forward(cfg.forward_number)
        if forward.kind == "m1":
            call.m1_digits, number = number, forward.number
        if not self._start_dial(call, number):
            return
        call.goto(states.OutDialing())

    def _start_dial(self, call, number) -> bool:
        """ATD through the line; a line that cannot dial at all ends the call (503)."""
        try:
            call.mcall = self.lines.dial(call.line, number, call)
        except Exception as e:
            log.error("line {line}: cannot dial: {error}", line=call.line, error=str(e))
            call.end("gateway", sip_code=503, sip_reason="Line unavailable")
            return False
        return True

    # -- mobile -> VoIP ----------------------------------------------------------------

    def mobile_incoming(self, line, mcall, caller) -> Call | None:
        existing = self.call_on_line(line)
        if existing is not None:
            existing.mobile_waiting(mcall, caller)
            return existing
        call = Call(self, cdrmod.INCOMING, line)
        call.mcall = mcall
        mcall.set_listener(call)
        self.calls.add(call)
        st = self.lines.status(line)
        call.slot, call.iccid = st.slot, st.iccid
        cfg = call.config
        call.caller_before = caller or ""
        call.caller_after = rewrite_number(cfg.cid_rules, caller) if caller else ""
        if not cfg.allow_voip:
            log.info("line {line}: incoming call from {caller} rejected (VoIP calls off)",
                     line=line, caller=caller)
            call.end("gateway", sip_reason="Calls to VoIP disabled")
            return call
        forward = parse_in_forward(cfg.incoming_forward, caller or "")
        if forward.two_stage:
            call.two_stage = True
            mcall.answer()
            call.mobile_answered = True
            call.goto(states.InCollecting())
        elif forward.target is None:
            log.info("line {line}: no forward entry for caller {caller}; rejected",
                     line=line, caller=caller)
            call.end("gateway", sip_reason="No forward target")
        else:
            call.callee_before = call.callee_after = forward.target
            self._originate(call, forward.target)
        return call

    def forward_second_stage(self, call):
        call.callee_before = call.digits
        target = rewrite_number(call.config.incoming_dial_rules, call.digits)
        call.callee_after = target
        self._originate(call, target)

    def _originate(self, call, target):
        cfg = call.config
        try:
            call.leg = self.sip.originate(target, call.caller_after or None, cfg.cid_mode,
                                          call.line, call)
        except Exception as e:
            log.error("line {line}: cannot call {target}: {error}", line=call.line,
                      target=target, error=str(e))
            call.end("gateway", sip_code=None, sip_reason=f"bad target {target!r}")
            return
        call.goto(states.InForwarding())

    def mobile_waiting(self, line, mcall, caller):
        call = self.call_on_line(line)
        if call is None:
            return self.mobile_incoming(line, mcall, caller)
        call.mobile_waiting(mcall, caller)
        return call

    # -- F-508 -------------------------------------------------------------------------

    def test_call(self, line, number, on_end=None) -> Call:
        """Dial ``number`` on ``line`` with no SIP leg; the caller ends it (calltest.py)."""
        call = Call(self, cdrmod.TEST, line)
        call.test_call = True
        call.on_end = on_end
        call.callee_before = call.callee_after = number
        st = self.lines.status(line)
        call.slot, call.iccid = st.slot, st.iccid
        eligible = self._line_infos([line])[0].eligible
        self.calls.add(call)
        if not eligible:
            call.end("gateway", sip_reason="Line not available")
            return call
        if self._start_dial(call, number):
            call.goto(_TestDialing())
        return call

    # -- the end -----------------------------------------------------------------------

    def call_ended(self, call, record: cdrmod.Cdr):
        self.calls.discard(call)
        self.record(record)

    def record(self, record: cdrmod.Cdr):
        """Publish ``call.ended`` and write the CDR (also used for waiting calls)."""
        if record.iccid and record.duration:
            self.talk_seconds[record.iccid] = (self.talk_seconds.get(record.iccid, 0.0)
                                               + record.duration)
        if self.events is not None:
            self.events.publish(
                "call.ended", line=record.line, iccid=record.iccid,
                direction=record.direction, answered=record.answered,
                duration=record.duration, sip_code=record.sip_code,
                mobile_cause=record.mobile_cause,
                short=record.answered and record.duration < self.calls_config().short_call_seconds,
                billed_periods=cdrmod.billed(record.duration,
                                             record.billing_period)[0])
        if self.cdrs is not None:
            d = self.cdrs.record(record)
            self.pending_cdrs.append(d)

            def done(result):
                self.pending_cdrs.remove(d)
                return result

            def failed(f):
                log.failure("CDR for call {call_id} not written", f, call_id=record.sip_call_id)

            d.addBoth(done).addErrback(failed)

    def hangup_line(self, line: int, reason: str = "limit reached") -> bool:
        """End the call on ``line`` now (F-470 "hang up now", F-1202 switch triggers,
        the web UI); False when the line has no call."""
        calls = [c for c in self.calls if c.line == line and not c.ended]
        if not calls:
            return False
        log.info("line {line}: hanging up ({reason})", line=line, reason=reason)
        for call in calls:       # with call waiting (F-465) a line has two calls
            call.end("gateway", sip_code=503, sip_reason=reason)
        return True

    def hangup_all(self, reason="gateway stopping"):
        for call in list(self.calls):
            call.end("gateway", sip_code=503, sip_reason=reason)


class _AllLines:
    """Route used without a prefix router: every line, number unchanged."""

    def __init__(self, lines, number):
        self.lines, self.number = lines, number


class _TestDialing(states.OutDialing):
    """F-508: like OutDialing but with no SIP leg to ring or answer."""

    name = "TestDialing"

    def enter(self, call):
        cfg = call.config
        call.start_timer("no_ring", cfg.no_ring_timeout)
        call.start_timer("answer", cfg.call_timeout)

    def mobile_alerting(self, call, mcall):
        if call.ring_time is None:
            call.ring_time = call.clock.seconds()
        call.cancel_timer("no_ring")
        call.controller.line_states.set(call.line, LineState.ALERTING)

    def mobile_connected(self, call, mcall):
        call.cancel_timer("no_ring")
        call.cancel_timer("answer")
        call.answer_time = call.clock.seconds()
        call.mobile_answered = True
        call.goto(_TestTalking())

    def timeout(self, call, name):
        call.end("gateway", sip_reason=name)


class _TestTalking(states.State):
    name = "TestTalking"
    line_state = LineState.CONNECTED
