"""The call list on a Clock: transcripts written by us from TS 27.007 §7.18 (+CLCC),
the Quectel EC2x manual (+QIND "ccinfo"), the SIMCom SIM7600 manual (+CLCC URC,
stat 6 = disconnect) and the Huawei ME909s spec (^CEND)."""

import pytest

from goip_tw.modem import model
from goip_tw.modem.calls import _same_call, parse_clcc

from .scripted import make, run, settle

QUECTEL = ("Quectel", "EC25")
SIMCOM = ("SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H")
HUAWEI = ("huawei", "ME909s-120")
RINGING = '+CLCC: 1,1,4,0,0,"+4930123",145\r\n\r\nOK'


class ClccScript:
    """AT+CLCC answers the current ``rows``; counts the reads."""

    def __init__(self, rows="OK"):
        self.rows = rows
        self.reads = 0

    def __call__(self, cmd):
        self.reads += 1
        return self.rows


def _modem(identity, clcc):
    modem, t, clock = make(identity, {"AT+CLCC": clcc, "AT^ICCID?": "OK"})
    events = []
    modem.add_observer(events.append)
    run(modem.initialise(), clock)
    modem.call_poll_interval = 60.0
    return modem, t, clock, events


def test_parse_clcc_keeps_voice_calls_in_27007_states():
    rows = parse_clcc(['1,0,0,0,0,"+4930123",145', '2,1,6,0,0,"+4930999",145',
                       '3,0,2,1,0,"123",129', '4,1,5,0,1,"",129', "garbage"])
    assert sorted(rows) == [1, 4]
    assert rows[1].state == "active" and rows[1].direction == "out"
    assert rows[4] == model.CallInfo(4, "in", "waiting", None, True)


@pytest.mark.parametrize("prev, row, released, same", [
    (("in", "incoming", "+491"), ("in", "incoming", "+491"), False, True),
    (("in", "incoming", "+491"), ("in", "active", "+491"), False, True),
    (("in", "active", "+491"), ("in", "held", "+491"), False, True),
    (("in", "held", "+491"), ("in", "active", "+491"), False, True),
    (("out", "dialing", "+491"), ("out", "alerting", "+491"), False, True),
    (("in", "waiting", None), ("in", "incoming", "+491"), False, True),
    (("in", "incoming", "+491"), ("in", "incoming", "+491"), True, False),
    (("in", "incoming", "+491"), ("out", "dialing", "+491"), False, False),
    (("in", "incoming", "+491"), ("in", "incoming", "+492"), False, False),
    (("in", "active", "+491"), ("in", "incoming", "+491"), False, False),
    (("out", "alerting", "+491"), ("out", "dialing", "+491"), False, False),
    (("out", "active", "+491"), ("out", "alerting", "+491"), False, False),
])
def test_same_call_rules(prev, row, released, same):
    a = model.CallInfo(1, *prev, serial=5)
    b = model.CallInfo(1, *row)
    assert _same_call(a, b, released) is same


@pytest.mark.parametrize("identity, urc", [
    (QUECTEL, '+QIND: "ccinfo",1,1,4,0,0,"+4930123",145'),
    (SIMCOM, '+CLCC: 1,1,4,0,0,"+4930123",145'),
    (HUAWEI, "^CONN:1,0"),
])
def test_vendor_call_state_urc_reads_the_list_at_once(identity, urc):
    clcc = ClccScript()
    modem, t, clock, events = _modem(identity, clcc)
    before = clcc.reads
    clcc.rows = RINGING
    t.urc(urc)
    settle(clock, steps=5)  # 50 ms: far below any poll
    assert clcc.reads == before + 1
    assert [type(e) for e in events] == [model.IncomingCall]
    assert events[0].call.number == "+4930123" and events[0].call.serial > 0


@pytest.mark.parametrize("identity, released", [
    (QUECTEL, '+QIND: "ccinfo",1,1,7,0,0,"+4930123",145'),
    (QUECTEL, '+QIND: "ccinfo",1,1,6,0,0,"+4930123",145'),
    (SIMCOM, '+CLCC: 1,1,6,0,0,"+4930123",145'),
    (HUAWEI, "^CEND:1,0,104,16"),
])
def test_release_urc_makes_a_reused_index_a_new_call(identity, released):
    clcc = ClccScript(RINGING)
    modem, t, clock, events = _modem(identity, clcc)
    run(modem.refresh_calls(), clock)
    first = events[-1].call
    # the caller rang off and rang again before the next read: same row as before
    t.urc(released)
    t.urc("RING")
    settle(clock, steps=5)
    assert [type(e) for e in events] == [model.IncomingCall, model.CallEnded, model.IncomingCall]
    assert events[1].call.serial == first.serial
    assert events[2].call.serial != first.serial and events[2].call.id == first.id
    if identity is HUAWEI:
        assert events[1].cause == 16  # from ^CEND, no AT+CEER needed


def test_without_a_release_urc_the_same_row_is_the_same_call():
    clcc = ClccScript(RINGING)
    modem, t, clock, events = _modem(QUECTEL, clcc)
    run(modem.refresh_calls(), clock)
    t.urc('+QIND: "ccinfo",1,1,4,0,0,"+4930123",145')
    t.urc("RING")
    settle(clock, steps=5)
    assert [type(e) for e in events] == [model.IncomingCall]


def test_refresh_asked_during_a_read_gets_a_later_read():
    clcc = ClccScript()
    modem, t, clock, events = _modem(QUECTEL, clcc)
    before = clcc.reads
    first = modem.refresh_calls()
    clcc.rows = RINGING           # the call appears after the first read was sent
    second = modem.refresh_calls()
    third = modem.refresh_calls()
    assert run(first, clock) == ()
    calls = run(second, clock)
    assert [c.state for c in calls] == ["incoming"] and run(third, clock) == calls
    assert clcc.reads == before + 2  # the two late callers share one read


@pytest.mark.parametrize("identity", [QUECTEL, SIMCOM, HUAWEI, ("Telit", "LE910")])
def test_call_waiting_presentation_is_part_of_init(identity):
    clcc = ClccScript()
    modem, t, clock, events = _modem(identity, clcc)
    assert "AT+CCWA=1" in t.sent
    before = clcc.reads
    t.urc('+CCWA: "+4930777",145,1')
    settle(clock, steps=5)
    assert clcc.reads == before + 1  # the waiting call is read at once


def test_simcom_release_urc_inside_the_clcc_response_counts():
    """The SIMCom +CLCC URC shares its prefix with the response: a stat-6 line that
    arrives with the answer to AT+CLCC still marks the index released."""
    clcc = ClccScript(RINGING)
    modem, t, clock, events = _modem(SIMCOM, clcc)
    run(modem.refresh_calls(), clock)
    clcc.rows = '+CLCC: 1,1,6,0,0,"+4930123",145\r\n' + RINGING
    run(modem.refresh_calls(), clock)
    assert [type(e) for e in events] == [model.IncomingCall, model.CallEnded, model.IncomingCall]
    assert [c.serial for c in modem.calls] == [events[2].call.serial]
