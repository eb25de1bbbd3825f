"""Call waiting modes 1 and 3 (F-465) with a SIP call of its own for the new caller.

A second mobile call arriving on a busy line (+CCWA) is forwarded like any incoming
call (the line's forward number, F-463) as a *child* ``Call`` with its own SIP leg
and CDR.  The VoIP user of the first call is never switched onto the new caller:

- when the child's SIP leg answers, ``AT+CHLD=2`` holds the first mobile call and
  accepts the waiting one (3GPP TS 22.030 §6.5.5.1), the first SIP leg is put on
  hold by re-INVITE (``a=sendonly``, RFC 3264 §8.4) and the line's audio is
  bridged to the child's leg;
- mode 1: when the new call ends, the first one is retrieved (``AT+CHLD=2``, or
  ``AT+CHLD=1`` when the child's SIP side hung up: release the active call and
  accept the held one) and its SIP leg resumed by re-INVITE (``a=sendrecv``);
- mode 3: 2 s after the child answered, ``AT+CHLD=2`` swaps back: the child's leg
  is held by re-INVITE and the first call resumed; the child is retrieved when
  the first call ends.
- the child's SIP side not answering: ``AT+CHLD=0`` (user determined user busy for
  the waiting call, TS 22.030 §6.5.5.1) and the first call goes on untouched.

Mode 2 (keys ``32``/``31`` from the VoIP user) stays in ``states.Talking``: the
user who keys the switch is the one who talks to the other caller.  A line whose
forward number is empty (two-stage dialing) or has no entry for the new caller
keeps that leg-switching behaviour for modes 1 and 3 as well (nobody to forward
the new caller to).
"""

from __future__ import annotations

from twisted.logger import Logger

from goip_tw.calls import cdr as cdrmod
from goip_tw.calls.call import Call, State
from goip_tw.calls.forward import parse_in_forward
from goip_tw.calls.states import CW3_DELAY, Talking

log = Logger()


def start(parent, mcall, caller, mode) -> bool:
    """Forward the waiting ``mcall`` on its own SIP leg; False = nowhere to forward."""
    from goip_tw.calls.controller import rewrite_number

    cfg = parent.config
    forward = parse_in_forward(cfg.incoming_forward, caller or "")
    if forward.two_stage or forward.target is None or not hasattr(parent.leg, "hold"):
        return False
    ctl = parent.controller
    child = Call(ctl, cdrmod.INCOMING, parent.line)
    child.parent = parent
    child.waiting_mode = mode
    child.mcall = mcall
    mcall.set_listener(child)
    child.slot, child.iccid = parent.slot, parent.iccid
    child.caller_before = caller or ""
    child.caller_after = rewrite_number(cfg.cid_rules, caller) if caller else ""
    child.callee_before = child.callee_after = forward.target
    ctl.calls.add(child)
    parent.waiting_child = child
    log.info("line {line}: waiting call from {caller} forwarded to {target} (mode {mode})",
             line=parent.line, caller=caller, target=forward.target, mode=mode)
    try:
        child.leg = ctl.sip.originate(forward.target, child.caller_after or None,
                                      cfg.cid_mode, parent.line, child)
    except Exception as e:
        log.error("line {line}: cannot forward the waiting call to {target}: {error}",
                  line=parent.line, target=forward.target, error=str(e))
        _reject_waiting(child, f"bad target {forward.target!r}")
        return True
    child.goto(Forwarding())
    return True


def _reject_waiting(child, reason, side="gateway"):
    """AT+CHLD=0: UDUB for the waiting call; the first call is not touched."""
    child.controller.lines.chld(child.line, "0")
    child.mcall = None                      # released by CHLD=0, not by a hang-up
    child.end(side, sip_reason=reason)


def hold(call):
    """Put ``call``'s SIP leg on hold: another call on the line has the audio now."""
    if call.ended or call.switched_out:
        return
    call.switched_out = True
    call.leg.hold().addErrback(lambda f: log.failure("re-INVITE (hold) failed", f))


def resume(call):
    """Give the line's audio back to ``call`` and take its SIP leg off hold."""
    if call.ended or not call.switched_out:
        return
    call.switched_out = False
    call.leg.resume().addErrback(lambda f: log.failure("re-INVITE (resume) failed", f))
    if call.bridge is not None:
        call.bridge.stop()
        call.bridge = None
    call.connect_media()


class Forwarding(State):
    """The child's INVITE is out; the new mobile caller hears the waiting tone."""

    name = "CwForwarding"

    def enter(self, call):
        call.start_timer("answer", call.controller.calls_config().no_answer_timeout)

    def leg_ringing(self, call, leg):
        if call.ring_time is None:
            call.ring_time = call.clock.seconds()

    leg_early_media = leg_ringing

    def leg_answered(self, call, leg):
        call.cancel_timer("answer")
        call.answer_time = call.clock.seconds()
        call.mobile_answered = True
        parent = call.parent
        call.controller.lines.chld(call.line, "2")   # hold the first, accept the new
        if parent is not None and not parent.ended:
            hold(parent)
        call.connect_media()
        call.goto(Active())
        if call.waiting_mode == "3" and parent is not None and not parent.ended:
            call.start_timer("cw3", CW3_DELAY)

    def leg_ended(self, call, leg, code, reason):
        _reject_waiting(call, reason or "not answered", side="sip")

    def timeout(self, call, name):
        if name == "answer":
            _reject_waiting(call, "Request Timeout")     # end() cancels the INVITE


class Active(Talking):
    """The child talks; the first call is held (module and SIP)."""

    name = "CwTalking"
    line_state = None

    def leg_hold(self, call, leg, held):
        pass

    def mobile_waiting(self, call, mcall, caller):
        mcall.hangup()

    def mobile_ended(self, call, mcall, cause, text):
        parent = call.parent
        call.end("mobile", cause=cause, cause_text=text)
        if parent is not None and not parent.ended:
            call.controller.lines.chld(call.line, "2")   # retrieve the held first call
            resume(parent)

    def leg_ended(self, call, leg, code, reason):
        parent = call.parent
        if parent is not None and not parent.ended:
            call.controller.lines.chld(call.line, "1")   # release this, accept the held
            call.mcall = None
        call.end("sip", sip_code=code, sip_reason=reason)
        if parent is not None:
            resume(parent)

    def timeout(self, call, name):
        parent = call.parent
        if name != "cw3" or parent is None or parent.ended:
            return
        call.controller.lines.chld(call.line, "2")       # swap: the first call back
        hold(call)
        resume(parent)
        call.goto(Held())


class Held(State):
    """Mode 3 after the swap: the child is held until the first call ends."""

    name = "CwHeld"

    def leg_hold(self, call, leg, held):
        pass

    def mobile_waiting(self, call, mcall, caller):
        mcall.hangup()

    def parent_gone(self, call):
        call.controller.lines.chld(call.line, "2")       # retrieve the held child
        resume(call)
        call.goto(Active())
