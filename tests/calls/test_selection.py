"""F-421 line selection and F-411 prefix matching."""

import pytest

from goip_tw.calls.selection import (
    LEAST_TALK_TIME, LineInfo, LineSelector, match_prefix, parse_prefixes)


def lines(**overrides):
    out = []
    for n in range(1, 5):
        kw = overrides.get(f"l{n}", {})
        out.append(LineInfo(number=n, **kw))
    return out


def test_round_robin_in_line_order():
    sel = LineSelector()
    picks = [sel.choose(lines()).number for _ in range(6)]
    assert picks == [1, 2, 3, 4, 1, 2]


def test_round_robin_skips_ineligible():
    sel = LineSelector()
    ls = lines(l2={"idle": False}, l3={"registered": False})
    assert [sel.choose(ls).number for _ in range(4)] == [1, 4, 1, 4]


@pytest.mark.parametrize("flag", ["enabled", "registered", "idle", "allow_pstn",
                                  "within_limits"])
def test_each_flag_excludes(flag):
    sel = LineSelector()
    ls = [LineInfo(1, **{flag: False})]
    assert sel.choose(ls) is None
    assert "line 1" in LineSelector.why_none(ls)


def test_least_talk_time():
    sel = LineSelector(LEAST_TALK_TIME)
    ls = lines(l1={"talk_seconds": 50}, l2={"talk_seconds": 10}, l3={"talk_seconds": 10},
               l4={"talk_seconds": 5, "within_limits": False})
    assert sel.choose(ls).number == 2


def test_allowed_subset():
    sel = LineSelector()
    assert sel.choose(lines(), allowed={3}).number == 3
    assert sel.choose(lines(), allowed={9}) is None
    assert LineSelector.why_none(lines(), allowed={9}) == "no line configured for this number"


def test_prefix_longest_wins_and_groups():
    prefixes = {1: ("101",), 2: ("102",), 3: ("1",), 4: ("1",)}
    assert match_prefix(prefixes, "1015").lines == {1}
    m = match_prefix(prefixes, "1999")
    assert m.lines == {3, 4} and m.prefix == "1"
    assert match_prefix(prefixes, "2000") is None


def test_parse_prefixes():
    assert parse_prefixes("00,13, 15,17,2") == ("00", "13", "15", "17", "2")
    assert parse_prefixes("") == ()
    with pytest.raises(ValueError):
        parse_prefixes("1," * 71)


def test_least_talk_time_from_cdrs_in_the_controller():
    """Without SIM-layer figures, the controller's own per-ICCID totals decide."""
    from goip_tw.calls.interfaces import SipOffer

    from .fakes import FakeLeg, Rig

    rig = Rig(selection="least_talk_time", line_count=3)
    rig.ctl.talk_seconds.update({"89860001": 500, "89860002": 20, "89860003": 300})
    leg = FakeLeg(rig.log)
    rig.ctl.offer(leg, SipOffer("101", "10086", leg.call_id))
    assert rig.take()[0] == ("gsm", 2, "dial", "10086")
    mcall = rig.lines.calls[0]
    mcall.listener.mobile_connected(mcall)
    rig.clock.advance(400)
    leg.listener.leg_ended(leg, None, "BYE")
    assert rig.ctl.talk_seconds["89860002"] == 420
