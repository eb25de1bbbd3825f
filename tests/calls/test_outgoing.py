"""VoIP -> mobile calls against recording fakes: exact SIP/module/media sequences."""

import pytest

from goip_tw.calls.interfaces import SipOffer

from .fakes import FakeLeg, Rig


def offer(rig, callee="13012345678", caller="101", **kw):
    leg = FakeLeg(rig.log)
    call = rig.ctl.offer(leg, SipOffer(caller, callee, leg.call_id, **kw))
    return call, leg


def test_answered_call_hung_up_by_sip():
    rig = Rig()
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_alerting(mcall)
    rig.clock.advance(3)
    mcall.listener.mobile_connected(mcall)
    rig.clock.advance(68)
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [
        ("gsm", 1, "dial", "13012345678"),
        ("sip", "180"),                      # color_fake: 180 at once
        ("sip", "183"), ("media", "bridge", 1),  # then 183 + early media on ringing
        ("sip", "200"),
        ("media", "stop", "bridge", 1),
        ("gsm", 1, "hangup", "13012345678"),
    ]
    assert rig.line_states(1) == ["DIALING", "ALERTING", "CONNECTED", "IDLE"]
    (cdr,) = rig.cdrs.records
    assert (cdr.line, cdr.iccid, cdr.direction, cdr.end_side) == (1, "89860001", "out", "sip")
    assert cdr.ring_time == 0 and cdr.answer_time == 3 and cdr.end_time == 71
    assert cdr.row()[cdr_col("billed_periods")] == 2
    assert cdr.codec == "PCMA" and cdr.rtp_jitter_ms == 2.0
    assert cdr.sip_call_id == leg.call_id
    rig.assert_clean()


def cdr_col(name):
    from goip_tw.calls.cdr import _COLUMNS

    return _COLUMNS.index(name)


def test_mobile_hangs_up_after_answer():
    rig = Rig()
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.take()
    mcall.listener.mobile_ended(mcall, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    assert rig.cdrs.records[0].end_side == "mobile"
    rig.assert_clean()


@pytest.mark.parametrize("mode,before_ring,on_ring", [
    ("color_fake", [("sip", "180")], [("sip", "183"), ("media", "bridge", 1)]),
    ("color", [], [("sip", "183"), ("media", "bridge", 1)]),
    ("fake", [("sip", "180")], []),
])
def test_ringback_modes(mode, before_ring, on_ring):
    """F-422: the 180/183 sequence of each mode, up to the answer."""
    rig = Rig(ringback=mode)
    call, leg = offer(rig)
    assert rig.take() == [("gsm", 1, "dial", "13012345678")] + before_ring
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_alerting(mcall)
    assert rig.take() == on_ring
    mcall.listener.mobile_connected(mcall)
    expected = [("sip", "200")] + ([] if on_ring else [("media", "bridge", 1)])
    assert rig.take() == expected
    leg.listener.leg_ended(leg, None, "BYE")
    rig.assert_clean()


@pytest.mark.parametrize("cause,text,code", [
    (17, "busy", 486), (None, "BUSY", 486), (19, "no answer", 408), (21, "rejected", 603),
    (20, "absent", 480), (1, "unassigned", 404), (None, "NO CARRIER", 480), (99, "?", 480),
])
def test_cause_map(cause, text, code):
    """F-432 default map: busy/no answer/rejected/unreachable -> 486/408/603/480."""
    rig = Rig()
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_ended(mcall, cause, text)
    assert rig.take()[-1] == ("sip", code)
    cdr = rig.cdrs.records[0]
    assert (cdr.sip_code, cdr.mobile_cause, cdr.answer_time) == (code, cause, None)
    rig.assert_clean()


def test_configured_cause_map():
    rig = Rig(cause_map="17:600")
    call, leg = offer(rig)
    rig.lines.calls[0].listener.mobile_ended(rig.lines.calls[0], 17, "busy")
    assert rig.take()[-1] == ("sip", 600)


def test_no_answer_timeout_408():
    """F-431/F-450: the shorter of call timeout and no-answer timeout gives 408."""
    rig = Rig(no_answer_timeout=30, lines=[{"call_timeout": 20}])
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_alerting(mcall)
    rig.take()
    rig.clock.advance(19.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", 408),
                          ("gsm", 1, "hangup", "13012345678")]
    rig.assert_clean()


def test_no_ring_timeout():
    rig = Rig(lines=[{"no_ring_timeout": 5}])
    offer(rig)
    rig.take()
    rig.clock.advance(5)
    assert rig.take() == [("sip", 408), ("gsm", 1, "hangup", "13012345678")]
    rig.assert_clean()


def test_sip_cancel_while_ringing():
    rig = Rig()
    call, leg = offer(rig)
    rig.take()
    leg.listener.leg_ended(leg, 487, "CANCEL")
    assert rig.take() == [("gsm", 1, "hangup", "13012345678")]
    assert rig.line_states(1) == ["DIALING", "IDLE"]
    rig.assert_clean()


def test_no_free_line_uses_configured_code():
    """F-424, and F-421 eligibility: busy, unregistered, PSTN-off lines are skipped."""
    rig = Rig(no_line_code=486, line_count=2, lines=[{}, {"allow_pstn": False}])
    offer(rig)                       # takes line 1
    rig.take()
    call2, leg2 = offer(rig)
    assert rig.take() == [("sip", 486)]
    assert rig.cdrs.records[-1].line is None
    rig.ctl.hangup_all()


def test_round_robin_spreads_calls():
    rig = Rig()
    for _ in range(3):
        offer(rig)
    assert [c.line for c in rig.lines.calls] == [1, 2, 3]
    rig.ctl.hangup_all()
    rig.assert_clean()


def test_unregistered_line_skipped():
    rig = Rig()
    from goip_tw.calls.interfaces import LineStatus

    rig.lines.statuses[1] = LineStatus(1, registered=False)
    offer(rig)
    assert rig.lines.calls[0].line == 2
    rig.ctl.hangup_all()


def test_router_none_is_603():
    rig = Rig(router=lambda caller, callee: None)
    offer(rig)
    assert rig.take() == [("sip", 603)]
    rig.assert_clean()


def test_dial_rules_and_strict():
    rig = Rig(line_count=1, lines=[{"dial_rules": "861[3-8]XXXXXXXXX:-86|1[3-8]XXXXXXXXX:",
                                    "strict_dial_rules": True}])
    call, leg = offer(rig, callee="8613012345678")
    assert rig.take()[0] == ("gsm", 1, "dial", "13012345678")
    leg.listener.leg_ended(leg, None, "CANCEL")
    cdr = rig.cdrs.records[0]
    assert (cdr.callee_before, cdr.callee_after) == ("8613012345678", "13012345678")
    rig.take()
    offer(rig, callee="130123")          # length mismatch: strict rejects
    assert rig.take() == [("sip", 403)]
    rig.assert_clean()


def test_dtmf_from_voip_goes_to_module():
    rig = Rig()
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.take()
    leg.listener.leg_dtmf(leg, "5")
    assert rig.take() == [("gsm", 1, "dtmf", "5")]
    leg.listener.leg_hold(leg, True)
    leg.listener.leg_hold(leg, False)
    assert rig.take() == [("gsm", 1, "chld", "2"), ("gsm", 1, "chld", "2")]
    leg.listener.leg_ended(leg, None, "BYE")


def test_m1_forward_sends_digits_after_one_second():
    """F-451 M1: dial the service, 1 s after connect send the callee + '#'."""
    rig = Rig(line_count=1, lines=[{"forward_number": "M1:91000"}])
    call, leg = offer(rig, callee="13012345678")
    assert rig.take()[0] == ("gsm", 1, "dial", "91000")
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.take()
    rig.clock.advance(0.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    assert rig.take() == [("gsm", 1, "dtmf", "13012345678#")]
    assert rig.cdrs.records == []
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.cdrs.records[0].callee_after == "13012345678"
    rig.assert_clean()


@pytest.mark.parametrize("dtmf_mode", ["rfc4733", "info", "inband"])
def test_two_stage_outgoing(dtmf_mode):
    """Issue item 3: our own number -> answer, dial tone, digits ending '#', dial."""
    rig = Rig(dtmf_mode=dtmf_mode, lines=[{"dial_rules": "0:-0++86"}])
    call, leg = offer(rig, callee="8001", own_number=True)
    assert rig.take() == [("sip", "200"), ("media", "tone", "leg", "dial")]
    if dtmf_mode == "inband":
        send = rig.media.detectors["leg"]
    else:
        def send(d):
            leg.listener.leg_dtmf(leg, d)
    send("0")
    assert rig.take() == [("media", "stop", "tone", "dial")]
    for d in "13012345678#":
        send(d)
    log = rig.take()
    if dtmf_mode == "inband":
        assert log[0] == ("media", "stop", "detector", "leg")
        log = log[1:]
    assert log == [("gsm", 1, "dial", "+8613012345678"), ("media", "bridge", 1)]
    assert rig.line_states(1) == ["ACTIVE", "DIALING"]
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    assert rig.take() == []
    leg.listener.leg_ended(leg, None, "BYE")
    cdr = rig.cdrs.records[0]
    assert cdr.two_stage and cdr.callee_before == "013012345678"
    rig.assert_clean()


def test_two_stage_digit_timeout():
    rig = Rig(lines=[{"digit_timeout": 5}])
    call, leg = offer(rig, callee="8001", own_number=True)
    rig.take()
    rig.clock.advance(5)
    assert rig.take() == [("media", "stop", "tone", "dial"), ("sip", "bye")]
    rig.assert_clean()
    call, leg = offer(rig, callee="8001", own_number=True)
    leg.listener.leg_dtmf(leg, "7")
    rig.take()
    rig.clock.advance(5)      # digits but no '#': dial what was collected
    assert rig.take() == [("gsm", 2, "dial", "7"), ("media", "bridge", 2)]
    rig.ctl.hangup_all()
    rig.assert_clean()


def test_two_stage_plain_forward_skips_second_dial():
    rig = Rig(line_count=1, lines=[{"forward_number": "10086"}])
    offer(rig, callee="8001", own_number=True)
    assert rig.take() == [("sip", "200"), ("gsm", 1, "dial", "10086"), ("media", "bridge", 1)]
    rig.ctl.hangup_all()
    rig.assert_clean()


def test_line_binding_by_account():
    """Appendix D: an INVITE on line 3's own account goes out on line 3 only."""
    rig = Rig()
    offer(rig, lines=(3,))
    assert rig.take()[0] == ("gsm", 3, "dial", "13012345678")
    call, leg = offer(rig, lines=(3,))
    assert rig.take() == [("sip", 503)]
    rig.ctl.hangup_all()


@pytest.mark.parametrize("callee", ["alice", "12 34", "1" * 41, ""])
def test_undialable_callee_484(callee):
    """Bad input never reaches ATD: 484 and a log line naming the callee."""
    rig = Rig()
    offer(rig, callee=callee)
    assert rig.take() == [("sip", 484)]
    rig.assert_clean()


def test_line_that_cannot_dial_is_released():
    rig = Rig(line_count=1)

    def broken(line, number, listener):
        raise RuntimeError("port gone")
    rig.lines.dial = broken
    offer(rig)
    assert rig.take() == [("sip", 503)]
    assert rig.states.is_idle(1)
    rig.assert_clean()


def test_sip_hold_twice_is_one_chld_and_ignored_with_a_waiting_call():
    rig = Rig()
    call, leg = offer(rig)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.take()
    leg.listener.leg_hold(leg, True)
    leg.listener.leg_hold(leg, True)      # a session refresh while held
    assert rig.take() == [("gsm", 1, "chld", "2")]
    call.other_mcalls.append(object())
    leg.listener.leg_hold(leg, False)
    assert rig.take() == []
    call.other_mcalls.clear()
    leg.listener.leg_ended(leg, None, "BYE")
