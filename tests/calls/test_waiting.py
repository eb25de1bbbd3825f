"""Call waiting modes 1 and 3 (F-465) with a SIP call of its own for the waiting
caller (goip_tw/calls/waiting.py), against the recording fakes on a Clock."""

from .fakes import Rig
from .test_incoming import connected_call, ring


def waiting_call(mode):
    rig = Rig()
    first, leg = connected_call(rig, mode)
    second = ring(rig, caller="0201234", name="second")
    assert rig.take() == [("sip", "invite", "101", "0201234", "from")]
    child = rig.sip.legs[1]
    return rig, first, leg, second, child


def test_mode1_new_caller_ends_first_resumed():
    rig, first, leg, second, child = waiting_call("1")
    child.listener.leg_ringing(child)
    assert rig.take() == []                          # the first call talks on
    child.listener.leg_answered(child)
    assert rig.take() == [("gsm", 1, "chld", "2"), ("sip", "hold"),
                          ("media", "bridge", 1)]
    assert rig.states.is_idle(1) is False
    second.listener.mobile_dtmf(second, "7")         # the new caller's keys reach its leg
    assert rig.take() == [("sip", "info", "7")]
    leg.listener.leg_hold(leg, True)                 # the held leg's own hold: no CHLD
    assert rig.take() == []
    rig.clock.advance(5)
    second.listener.mobile_ended(second, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye"),
                          ("gsm", 1, "chld", "2"), ("sip", "resume"),
                          ("media", "stop", "bridge", 1), ("media", "bridge", 1)]
    (cw,) = rig.cdrs.records                         # its own CDR, with its own Call-ID
    assert (cw.caller_before, cw.callee_after, cw.duration, cw.end_side) == (
        "0201234", "101", 5, "mobile")
    assert cw.sip_call_id == child.call_id != leg.call_id
    leg.listener.leg_dtmf(leg, "4")
    assert rig.take() == [("gsm", 1, "dtmf", "4")]   # the first call is back
    first.listener.mobile_ended(first, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    assert rig.states.is_idle(1)
    rig.assert_clean()


def test_mode1_new_callers_sip_side_hangs_up():
    rig, first, leg, second, child = waiting_call("1")
    child.listener.leg_answered(child)
    rig.take()
    child.listener.leg_ended(child, None, "BYE")
    # CHLD=1 releases the active (new) call and accepts the held first one
    assert rig.take() == [("gsm", 1, "chld", "1"), ("media", "stop", "bridge", 1),
                          ("sip", "resume"), ("media", "stop", "bridge", 1),
                          ("media", "bridge", 1)]
    assert rig.cdrs.records[0].end_side == "sip"
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "first")]
    rig.assert_clean()


def test_mode3_swaps_back_after_two_seconds():
    rig, first, leg, second, child = waiting_call("3")
    child.listener.leg_answered(child)
    rig.take()
    rig.clock.advance(1.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    assert rig.take() == [("gsm", 1, "chld", "2"), ("sip", "hold"), ("sip", "resume"),
                          ("media", "stop", "bridge", 1), ("media", "bridge", 1)]
    first.listener.mobile_ended(first, 16, "normal")  # the first call ends: the new back
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye"),
                          ("gsm", 1, "chld", "2"), ("sip", "resume"),
                          ("media", "stop", "bridge", 1), ("media", "bridge", 1)]
    assert not rig.states.is_idle(1)
    child.listener.leg_ended(child, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "second")]
    assert rig.states.is_idle(1)
    assert len(rig.cdrs.records) == 2
    rig.assert_clean()


def test_waiting_call_not_answered_on_sip_is_refused_udub():
    rig, first, leg, second, child = waiting_call("1")
    child.listener.leg_ended(child, 486, "Busy Here")
    assert rig.take() == [("gsm", 1, "chld", "0")]  # the first call is untouched
    assert rig.cdrs.records[0].answer_time is None
    leg.listener.leg_dtmf(leg, "5")
    assert rig.take() == [("gsm", 1, "dtmf", "5")]
    leg.listener.leg_ended(leg, None, "BYE")
    rig.take()
    rig.assert_clean()


def test_waiting_call_no_answer_timeout():
    rig, first, leg, second, child = waiting_call("1")
    rig.clock.advance(rig.config.no_answer_timeout)
    assert rig.take() == [("gsm", 1, "chld", "0"), ("sip", "bye")]
    leg.listener.leg_ended(leg, None, "BYE")
    rig.take()
    rig.assert_clean()


def test_waiting_caller_gives_up_before_voip_answers():
    rig, first, leg, second, child = waiting_call("1")
    second.listener.mobile_ended(second, 16, "normal")
    assert rig.take() == [("sip", "bye")]           # CANCEL of the child's INVITE
    leg.listener.leg_ended(leg, None, "BYE")
    rig.take()
    rig.assert_clean()


def test_third_caller_is_refused_while_one_waits():
    rig, first, leg, second, child = waiting_call("1")
    ring(rig, caller="0301111", name="third")
    assert rig.take() == [("gsm", 1, "hangup", "third")]
    rig.ctl.hangup_line(1, "test")                   # both calls on the line end
    assert not rig.ctl.calls
    assert rig.states.is_idle(1)
    rig.take()
    rig.assert_clean()


def test_first_call_ends_while_new_caller_talks():
    rig, first, leg, second, child = waiting_call("1")
    child.listener.leg_answered(child)
    rig.take()
    first.listener.mobile_ended(first, 16, "normal")  # the held caller hangs up
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    assert not rig.states.is_idle(1)
    second.listener.mobile_ended(second, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    assert rig.states.is_idle(1)
    rig.assert_clean()


def test_waiting_call_during_a_voip_to_mobile_call():
    """The first call came from VoIP (A called the mobile): the waiting caller is
    forwarded by the line's forward number all the same and A is held meanwhile."""
    from goip_tw.calls.interfaces import SipOffer

    from .fakes import FakeLeg

    rig = Rig(lines=[{"incoming_forward": "101", "call_waiting": "1"}])
    leg = FakeLeg(rig.log)
    rig.ctl.offer(leg, SipOffer("alice", "13012345678", leg.call_id))
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.take()
    second = ring(rig, caller="0201234", name="second")
    assert rig.take() == [("sip", "invite", "101", "0201234", "from")]
    child = rig.sip.legs[0]
    child.listener.leg_answered(child)
    assert rig.take() == [("gsm", 1, "chld", "2"), ("sip", "hold"), ("media", "bridge", 1)]
    second.listener.mobile_ended(second, 16, "normal")
    assert ("sip", "resume") in rig.take()
    leg.listener.leg_ended(leg, None, "BYE")
    assert [c.direction for c in rig.cdrs.records] == ["in", "out"]
    rig.take()
    rig.assert_clean()
