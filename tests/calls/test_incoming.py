"""Mobile -> VoIP calls, call waiting (F-465) and the call test tool against fakes."""

import pytest

from .fakes import FakeMobileCall, Rig


def ring(rig, line=1, caller="01088886666", name="in"):
    mcall = FakeMobileCall(rig.log, line, name)
    rig.ctl.mobile_incoming(line, mcall, caller)
    return mcall


@pytest.mark.parametrize("cid_mode", ["off", "rpid", "from", "pai"])
def test_forward_to_extension(cid_mode):
    rig = Rig(lines=[{"incoming_forward": "101", "cid_mode": cid_mode,
                      "cid_rules": "010:-010++8610"}])
    mcall = ring(rig)
    assert rig.take() == [("sip", "invite", "101", "+861088886666", cid_mode)]
    leg = rig.sip.legs[0]
    leg.listener.leg_ringing(leg)
    assert rig.take() == []
    assert rig.line_states(1) == ["INCOMING"]
    rig.clock.advance(4)
    leg.listener.leg_answered(leg)
    assert rig.take() == [("gsm", 1, "answer", "in"), ("media", "bridge", 1)]
    assert rig.line_states(1) == ["INCOMING", "CONNECTED"]
    rig.clock.advance(10)
    mcall.listener.mobile_ended(mcall, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    cdr = rig.cdrs.records[0]
    assert (cdr.direction, cdr.caller_before, cdr.caller_after) == (
        "in", "01088886666", "+861088886666")
    assert cdr.answer_time == 4 and cdr.ring_time == 0 and cdr.duration == 10
    rig.assert_clean()


def test_forward_uri_and_caller_prefix_map():
    rig = Rig(line_count=2, lines=[{"incoming_forward": "101@127.0.0.1:5080"},
                                   {"incoming_forward": "010>101|021>1002"}])
    ring(rig, 1)
    ring(rig, 2, caller="02112345678")
    ring(rig, 2, caller="0755123", name="other")  # line 2 busy -> waiting, mode off
    assert rig.take() == [
        ("sip", "invite", "101@127.0.0.1:5080", "01088886666", "from"),
        ("sip", "invite", "1002", "02112345678", "from"),
        ("gsm", 2, "hangup", "other"),
    ]
    rig.ctl.hangup_all()


def test_caller_prefix_map_without_match_rejects():
    rig = Rig(lines=[{"incoming_forward": "010>101"}])
    ring(rig, caller="0755")
    assert rig.take() == [("gsm", 1, "hangup", "in")]
    rig.assert_clean()


def test_allow_voip_off_rejects():
    """F-462."""
    rig = Rig(lines=[{"allow_voip": False, "incoming_forward": "101"}])
    ring(rig)
    assert rig.take() == [("gsm", 1, "hangup", "in")]
    assert rig.cdrs.records[0].end_side == "gateway"
    rig.assert_clean()


@pytest.mark.parametrize("code", [486, 603, 480, 404])
def test_voip_side_refuses(code):
    rig = Rig(lines=[{"incoming_forward": "101"}])
    ring(rig)
    rig.take()
    leg = rig.sip.legs[0]
    leg.listener.leg_ended(leg, code, "nope")
    assert rig.take() == [("gsm", 1, "hangup", "in")]
    assert rig.cdrs.records[0].sip_code == code
    rig.assert_clean()


def test_mobile_caller_gives_up_cancels_invite():
    rig = Rig(lines=[{"incoming_forward": "101"}])
    mcall = ring(rig)
    rig.take()
    mcall.listener.mobile_ended(mcall, 16, "normal")
    assert rig.take() == [("sip", "bye")]
    rig.assert_clean()


def test_forward_no_answer_timeout():
    rig = Rig(no_answer_timeout=20, lines=[{"incoming_forward": "101"}])
    ring(rig)
    rig.take()
    rig.clock.advance(20)
    assert rig.take() == [("sip", "bye"), ("gsm", 1, "hangup", "in")]
    assert rig.cdrs.records[0].sip_code == 408
    rig.assert_clean()


def test_two_stage_incoming():
    """Empty forward number: answer, dial tone (F-404), digits, '#', dial rules (F-464)."""
    rig = Rig(lines=[{"incoming_dial_rules": "9:-9", "digit_timeout": 8}])
    ring(rig)
    assert rig.take() == [("gsm", 1, "answer", "in"), ("media", "tone", "line", "dial")]
    assert rig.line_states(1) == ["ACTIVE"]
    detect = rig.media.detectors["line"]
    detect("9")
    rig.clock.advance(7)
    detect("1")
    rig.clock.advance(7)
    detect("0")
    detect("1")
    assert rig.take() == [("media", "stop", "tone", "dial")]
    detect("#")
    assert rig.take() == [("media", "stop", "detector", "line"),
                          ("sip", "invite", "101", "01088886666", "from")]
    leg = rig.sip.legs[0]
    leg.listener.leg_ringing(leg)
    assert rig.take() == [("media", "tone", "line", "ringback")]
    leg.listener.leg_answered(leg)
    assert rig.take() == [("media", "stop", "tone", "ringback"), ("media", "bridge", 1)]
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "in")]
    assert rig.line_states(1) == ["ACTIVE", "INCOMING", "CONNECTED", "IDLE"]
    cdr = rig.cdrs.records[0]
    assert cdr.two_stage and (cdr.callee_before, cdr.callee_after) == ("9101", "101")
    rig.assert_clean()


def test_two_stage_incoming_silence_hangs_up():
    rig = Rig(lines=[{"digit_timeout": 8}])
    ring(rig)
    rig.take()
    rig.clock.advance(8)
    assert rig.take() == [("media", "stop", "detector", "line"),
                          ("media", "stop", "tone", "dial"), ("gsm", 1, "hangup", "in")]
    rig.assert_clean()


def connected_call(rig, mode, forward="101"):
    rig.config = type(rig.config)(lines=(type(rig.config.line(1))(
        incoming_forward=forward, call_waiting=mode),))
    first = ring(rig, name="first")
    leg = rig.sip.legs[0]
    leg.listener.leg_answered(leg)
    rig.take()
    return first, leg


def test_call_waiting_off_rejects():
    rig = Rig()
    first, leg = connected_call(rig, "off")
    ring(rig, name="second")
    assert rig.take() == [("gsm", 1, "hangup", "second")]
    leg.listener.leg_ended(leg, None, "BYE")


#: The first caller (01088886666) is forwarded; a waiting caller from 020 has no
#: forward entry, so the VoIP user of the first call is switched to it (waiting.py
#: gives a waiting caller with a forward target a SIP call of its own).
NO_FORWARD_FOR_SECOND = "010>101"


def test_call_waiting_mode1():
    """Hold the current call, answer the new one, resume the old when it ends."""
    rig = Rig()
    first, leg = connected_call(rig, "1", NO_FORWARD_FOR_SECOND)
    second = ring(rig, caller="0201234", name="second")
    assert rig.take() == [("gsm", 1, "chld", "2")]
    second.listener.mobile_dtmf(second, "1")    # the active caller's key reaches VoIP
    assert rig.take() == [("sip", "info", "1")]
    rig.clock.advance(7)
    second.listener.mobile_ended(second, 16, "normal")
    assert rig.take() == [("gsm", 1, "chld", "2")]
    (waiting,) = rig.cdrs.records              # the waiting call has its own CDR
    assert (waiting.caller_before, waiting.duration, waiting.direction) == (
        "0201234", 7, "in")
    leg.listener.leg_dtmf(leg, "4")
    assert rig.take() == [("gsm", 1, "dtmf", "4")]   # goes to the resumed first call
    first.listener.mobile_ended(first, 16, "normal")
    assert rig.take() == [("media", "stop", "bridge", 1), ("sip", "bye")]
    rig.assert_clean()


def test_call_waiting_mode2_keys():
    """'32' toggles between the calls, '31' hangs up the current one."""
    rig = Rig()
    first, leg = connected_call(rig, "2")
    second = ring(rig, name="second")
    assert rig.take() == []
    for d in "32":
        leg.listener.leg_dtmf(leg, d)
    assert rig.take() == [("gsm", 1, "chld", "2")]
    for d in "35":
        leg.listener.leg_dtmf(leg, d)      # not a command: passed on
    assert rig.take() == [("gsm", 1, "dtmf", "35")]
    for d in "31":
        leg.listener.leg_dtmf(leg, d)      # release 'second', back to 'first'
    assert rig.take() == [("gsm", 1, "chld", "1")]
    second.listener.mobile_ended(second, 16, "normal")
    assert rig.take() == []
    leg.listener.leg_dtmf(leg, "3")        # single call again: plain DTMF
    assert rig.take() == [("gsm", 1, "dtmf", "3")]
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "first")]
    rig.assert_clean()


def test_call_waiting_mode3():
    """Hold current, answer new, after 2 s hold the new one and resume the old."""
    rig = Rig()
    first, leg = connected_call(rig, "3", NO_FORWARD_FOR_SECOND)
    ring(rig, caller="0201234", name="second")
    assert rig.take() == [("gsm", 1, "chld", "2")]
    rig.clock.advance(1.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    assert rig.take() == [("gsm", 1, "chld", "2")]
    first.listener.mobile_ended(first, 16, "normal")   # old ends: retrieve the new one
    assert rig.take() == [("gsm", 1, "chld", "2")]
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "second")]
    rig.assert_clean()


def test_sip_hangup_releases_held_calls():
    rig = Rig()
    first, leg = connected_call(rig, "1", NO_FORWARD_FOR_SECOND)
    ring(rig, caller="0201234", name="second")
    rig.take()
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.take() == [("media", "stop", "bridge", 1), ("gsm", 1, "hangup", "second"),
                          ("gsm", 1, "hangup", "first")]
    assert [c.end_side for c in rig.cdrs.records] == ["sip", "sip"]
    rig.assert_clean()


def test_call_test_tool():
    """F-508: call a number from line 2 for 30 s, then hang up."""
    from goip_tw.calls.calltest import CallTester

    rig = Rig()
    results = []
    CallTester(rig.ctl).run(2, "10086", 30).addCallback(results.append)
    assert rig.take() == [("gsm", 2, "dial", "10086")]
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_alerting(mcall)
    rig.clock.advance(5)
    mcall.listener.mobile_connected(mcall)
    assert rig.line_states(2) == ["DIALING", "ALERTING", "CONNECTED"]
    rig.clock.advance(25)
    assert rig.take() == [("gsm", 2, "hangup", "10086")]
    (result,) = results
    assert result.answered and result.rang and result.talk_seconds == 25
    assert rig.cdrs.records[0].test_call
    rig.assert_clean()


@pytest.mark.parametrize("args,field", [((9, "1", 5), "line"), ((1, "x1", 5), "number"),
                                        ((1, "1", 0), "seconds"), (("a", "1", 5), "line")])
def test_call_test_bad_input(args, field):
    from goip_tw.calls.calltest import CallTester, CallTestError

    rig = Rig()
    failures = []
    CallTester(rig.ctl).run(*args).addErrback(failures.append)
    assert failures[0].check(CallTestError)
    assert str(failures[0].value).startswith(field + ":")
    rig.assert_clean()


def test_call_test_busy_remote():
    from goip_tw.calls.calltest import CallTester

    rig = Rig()
    results = []
    CallTester(rig.ctl).run(1, "10086", 30).addCallback(results.append)
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_ended(mcall, None, "BUSY")
    assert results[0].cause == 17 and not results[0].answered
    rig.assert_clean()


def test_two_stage_one_key_press_heard_twice_counts_once():
    """Module URC and in-band detector both report a key: one digit (F-460)."""
    rig = Rig()
    mcall = ring(rig)
    detect = rig.media.detectors["line"]
    mcall.listener.mobile_dtmf(mcall, "5")
    rig.clock.advance(0.1)
    detect("5")
    rig.clock.advance(0.5)
    detect("5")                       # a second press, later: counted
    mcall.listener.mobile_dtmf(mcall, "#")
    assert ("sip", "invite", "55", "01088886666", "from") in rig.take()
    rig.ctl.hangup_all()


@pytest.mark.parametrize("mode,expected", [
    ("info", [("sip", "info", "7")]), ("rfc4733", [("sip", "info", "7")]), ("inband", [])])
def test_mobile_dtmf_relayed_to_voip(mode, expected):
    """F-427 the other way: a key the module reports goes to the SIP side (the fake
    media engine has no RFC 4733 sender, so rfc4733 falls back to INFO)."""
    rig = Rig(dtmf_mode=mode, lines=[{"incoming_forward": "101"}])
    mcall = ring(rig)
    leg = rig.sip.legs[0]
    leg.listener.leg_answered(leg)
    rig.take()
    mcall.listener.mobile_dtmf(mcall, "7")
    assert rig.take() == expected
    rig.ctl.hangup_all()
