"""The call states (see the table in call.py).  Each reacts only to the events that
matter in it; the rest fall to ``State``'s defaults (a hang-up on either side ends
the call, anything else is ignored)."""

from __future__ import annotations

from twisted.logger import Logger

from goip_tw.calls.call import State
from goip_tw.calls.linestate import LineState

log = Logger()

#: F-451 M1 mode: "1 s after it connects" (manual §4.6).
M1_DELAY = 1.0
#: F-465 mode 3: "after 2 s hold the new one and resume the old" (manual §4.7).
CW3_DELAY = 2.0


class _Collecting(State):
    """Second-stage digits ending in '#' (F-404 dial tone, F-460 digit timeout).

    A digit timeout with digits collected dials what was collected (a caller who
    forgets '#' still gets through); with none it ends the call.
    """

    line_state = LineState.ACTIVE
    tone_to = "line"

    def enter(self, call):
        call.play("dial", to=self.tone_to)
        call.start_timer("digits", call.config.digit_timeout)

    #: The same digit reported by a second source (module URC and in-band detector
    #: both hear one key press) within this time is one key press.
    DUPLICATE_WINDOW = 0.3

    def digit(self, call, digit, source="signal"):
        now = call.clock.seconds()
        last = getattr(call, "last_digit", None)
        call.last_digit = (digit, now, source)
        if last is not None and last[0] == digit and last[2] != source and (
                now - last[1] < self.DUPLICATE_WINDOW):
            return
        if digit == "#":
            self.finish(call)
            return
        call.digits += digit
        call.play(None)
        call.start_timer("digits", call.config.digit_timeout)

    def timeout(self, call, name):
        if name != "digits":
            return
        if call.digits:
            self.finish(call)
        else:
            call.end("gateway", sip_code=484, sip_reason="Address Incomplete")

    def finish(self, call):
        call.cancel_timer("digits")
        call.stop_detector()
        call.play(None)
        self.done(call)


class OutCollecting(_Collecting):
    """Two-stage dialing, outgoing direction: the VoIP caller dials after our answer."""

    name = "OutCollecting"
    tone_to = "leg"

    def enter(self, call):
        ctl = call.controller
        if ctl.dtmf_mode_of(call.line) == "inband":
            call.detector = ctl.media.detect_leg_dtmf(
                call.leg, lambda d: call._dispatch("leg_dtmf", call.leg, d, "inband"))
        super().enter(call)

    def leg_dtmf(self, call, leg, digit, source="signal"):
        self.digit(call, digit, source)

    def done(self, call):
        call.controller.dial_second_stage(call)


class OutDialing(State):
    """The module dials; F-422 ringback and the F-450/F-431 timers start here."""

    name = "OutDialing"
    line_state = LineState.DIALING

    def enter(self, call):
        cfg, ccfg = call.config, call.controller.calls_config()
        if call.sip_answered:
            call.connect_media()  # two-stage: the caller hears the network's tones
        elif ccfg.ringback in ("color_fake", "fake"):
            call.leg.ringing()
        call.start_timer("no_ring", cfg.no_ring_timeout)
        limits = [t for t in (cfg.call_timeout, ccfg.no_answer_timeout) if t > 0]
        call.start_timer("answer", min(limits) if limits else 0)

    def mobile_alerting(self, call, mcall):
        if call.ring_time is None:
            call.ring_time = call.clock.seconds()
        call.cancel_timer("no_ring")
        call.goto(OutAlerting())

    def mobile_connected(self, call, mcall):
        call.cancel_timer("no_ring")
        call.cancel_timer("answer")
        call.answer_time = call.clock.seconds()
        call.mobile_answered = True
        if not call.sip_answered:
            call.leg.answer()
            call.sip_answered = True
        call.connect_media()
        call.goto(Talking())
        if call.m1_digits is not None:
            call.start_timer("m1", M1_DELAY)

    def leg_dtmf(self, call, leg, digit, source="signal"):
        call.mcall.send_dtmf(digit, call.controller.calls_config().dtmf_digit_ms)

    def timeout(self, call, name):
        if name == "no_ring":
            call.end("gateway", sip_code=call.controller.sip_code_for(18, None),
                     sip_reason="No ringing")
        elif name == "answer":
            call.end("gateway", sip_code=408, sip_reason="Request Timeout")


class OutAlerting(OutDialing):
    name = "OutAlerting"
    line_state = LineState.ALERTING

    def enter(self, call):
        if not call.sip_answered and call.controller.calls_config().ringback in (
                "color_fake", "color"):
            call.leg.early_media()
            call.connect_media()

    def mobile_alerting(self, call, mcall):
        pass


class InCollecting(_Collecting):
    """Two-stage dialing, incoming direction: the mobile caller dials after our answer."""

    name = "InCollecting"

    def enter(self, call):
        call.detector = call.controller.media.detect_line_dtmf(
            call.line, lambda d: call._dispatch("mobile_dtmf", call.mcall, d, "inband"))
        super().enter(call)

    def mobile_dtmf(self, call, mcall, digit, source="signal"):
        self.digit(call, digit, source)

    def done(self, call):
        call.controller.forward_second_stage(call)


class InForwarding(State):
    """INVITE sent to VoIP for a mobile call (F-463); the mobile side waits."""

    name = "InForwarding"
    line_state = LineState.INCOMING

    def enter(self, call):
        call.start_timer("answer", call.controller.calls_config().no_answer_timeout)

    def leg_ringing(self, call, leg):
        if call.ring_time is None:
            call.ring_time = call.clock.seconds()
        if call.mobile_answered:
            call.play("ringback")

    leg_early_media = leg_ringing

    def leg_answered(self, call, leg):
        call.cancel_timer("answer")
        if not call.mobile_answered:
            call.mcall.answer()
            call.mobile_answered = True
        call.answer_time = call.clock.seconds()
        call.connect_media()
        call.goto(Talking())

    def timeout(self, call, name):
        if name == "answer":
            call.end("gateway", sip_code=408, sip_reason="Request Timeout")


class Talking(State):
    """Media bridged both ways.  DTMF from VoIP goes to the module (F-427); SIP hold
    maps to AT+CHLD=2; a waiting mobile call is handled per F-465."""

    name = "Talking"
    line_state = LineState.CONNECTED

    def __init__(self):
        self.pending_key = False     # mode 2: a '3' waiting for its second key
        self.released = []           # mobile calls we ended ourselves (mode 2 '31')

    def _send(self, call, digits):
        call.mcall.send_dtmf(digits, call.controller.calls_config().dtmf_digit_ms)

    def leg_dtmf(self, call, leg, digit, source="signal"):
        if call.config.call_waiting == "2" and call.other_mcalls:
            if self.pending_key:
                self.pending_key = False
                if digit == "2":
                    self._swap(call)
                elif digit == "1":
                    self.released.append(call.mcall)
                    call.waiting_ended(call.mcall, side="sip")
                    call.controller.lines.chld(call.line, "1")
                    call.mcall = call.other_mcalls.pop(0)
                    call.waiting_answered(call.mcall)
                else:
                    self._send(call, "3" + digit)
                return
            if digit == "3":
                self.pending_key = True
                return
        self._send(call, digit)

    def leg_hold(self, call, leg, held):
        """AT+CHLD=2 holds the only call or retrieves it; with a second mobile call
        around it would switch calls instead, so then the hold stays SIP-only."""
        if call.other_mcalls or call.waiting_child is not None or call.switched_out \
                or held == call.mobile_held:
            return
        call.mobile_held = held
        call.controller.lines.chld(call.line, "2")

    def mobile_dtmf(self, call, mcall, digit, source="signal"):
        """A key the module detected (F-427 both ways): RFC 4733 through the media
        engine, else SIP INFO.  In-band mode needs nothing: the tone is in the audio."""
        ctl = call.controller
        mode = ctl.dtmf_mode_of(call.line)
        if source == "inband" or mcall is not call.mcall or mode == "inband":
            return
        send = getattr(ctl.media, "send_dtmf", None)
        if mode == "rfc4733" and send is not None and send(call.leg, digit):
            return
        if hasattr(call.leg, "send_dtmf"):
            call.leg.send_dtmf(digit, ctl.calls_config().dtmf_digit_ms)

    def _swap(self, call):
        call.controller.lines.chld(call.line, "2")
        call.other_mcalls.append(call.mcall)
        call.mcall = call.other_mcalls.pop(0)
        call.waiting_answered(call.mcall)

    def mobile_waiting(self, call, mcall, caller):
        mode = call.config.call_waiting
        log.info("line {line}: call waiting from {caller}, mode {mode}", line=call.line,
                 caller=caller, mode=mode)
        if mode == "off" or call.other_mcalls or call.waiting_child is not None \
                or call.mobile_held:
            mcall.hangup()
            return
        if mode in ("1", "3"):
            from goip_tw.calls import waiting

            if waiting.start(call, mcall, caller, mode):
                return            # a call of its own; this leg is held by re-INVITE
        mcall.set_listener(call)
        call.waiting_started(mcall, caller, answered=mode != "2")
        if mode == "2":
            call.other_mcalls.append(mcall)    # stays waiting until the user keys 32
            return
        call.other_mcalls.append(call.mcall)
        call.mcall = mcall
        call.controller.lines.chld(call.line, "2")  # hold the current, answer the new
        if mode == "3":
            call.start_timer("cw3", CW3_DELAY)

    def mobile_ended(self, call, mcall, cause, text):
        if mcall in self.released:
            self.released.remove(mcall)
            return
        call.waiting_ended(mcall, cause=cause, text=text)
        if mcall in call.other_mcalls:
            call.other_mcalls.remove(mcall)
            return
        if call.other_mcalls:
            call.cancel_timer("cw3")
            call.mcall = call.other_mcalls.pop(0)
            call.controller.lines.chld(call.line, "2")  # retrieve the held call
            return
        call.end("mobile", cause=cause, cause_text=text)

    def timeout(self, call, name):
        if name == "m1":
            self._send(call, call.m1_digits + "#")
        elif name == "cw3" and call.other_mcalls:
            self._swap(call)
