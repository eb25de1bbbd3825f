"""F-411/F-412/F-413 line and group selection by prefix (table tests)."""

import pytest

from goip_tw.config.sections.voip import (SipAccount, SipGroup, VoipConfig, auto_configure,
                                          increment, line_accounts)
from goip_tw.sip.routing import PrefixRouter, Route, RouteEntry, parse_prefixes

PER_LINE = PrefixRouter(
    entries=(RouteEntry("line1", (1,), ("001", "13")),
             RouteEntry("line2", (2,), ("002", "1")),
             RouteEntry("line3", (3,), ("13",))),
    match_on="callee", strip=True, require_match=True)


@pytest.mark.parametrize("caller,callee,lines,number,prefix", [
    ("100", "00113800138000", (1,), "13800138000", "001"),
    ("100", "00213800138000", (2,), "13800138000", "002"),
    # longest prefix wins; equal prefixes give every entry, in config order
    ("100", "13800138000", (1, 3), "800138000", "13"),
    ("100", "15900000000", (2,), "5900000000", "1"),
])
def test_callee_prefix_with_strip(caller, callee, lines, number, prefix):
    route = PER_LINE.route(caller, callee)
    assert route.lines == lines
    assert route.number == number
    assert route.prefix == prefix


def test_no_match_is_none_for_603():
    assert PER_LINE.route("100", "00313800138000") is None
    assert PER_LINE.route("100", "") is None


def test_caller_matching_binds_agents_to_lines():
    """Appendix D: extension 101 uses line 1, 102 line 2 (caller prefix)."""
    router = PrefixRouter(entries=(RouteEntry("line1", (1,), ("101",)),
                                   RouteEntry("line2", (2,), ("102",))),
                          match_on="caller", strip=True, require_match=True)
    route = router.route("102", "13800138000")
    assert route == Route(lines=(2,), number="13800138000", prefix="102", entries=("line2",))
    assert router.route("103", "13800138000") is None


def test_single_mode_catch_all_and_off():
    router = PrefixRouter(entries=(RouteEntry("line1", (1,), ("00",)),
                                   RouteEntry("line2", (2,)), RouteEntry("line3", (3,))),
                          match_on="callee")
    assert router.route("x", "0012").lines == (1,)
    assert router.route("x", "0012").number == "0012"  # strip off
    assert router.route("x", "5555").lines == (2, 3)
    off = PrefixRouter(entries=router.entries, match_on="off")
    assert off.route("x", "0012").lines == (1, 2, 3)


def test_letters_and_symbols_are_prefixes():
    router = PrefixRouter(entries=(RouteEntry("a", (1,), ("*9", "A")),), match_on="callee",
                          strip=True, require_match=True)
    assert router.route("", "*9123").number == "123"
    assert router.route("", "Abc").lines == (1,)


def test_parse_prefixes():
    assert parse_prefixes("00,13, 15,,17,2") == ("00", "13", "15", "17", "2")
    assert parse_prefixes("") == ()


def test_from_config_per_line_auto_configure():
    voip = VoipConfig(mode="per_line", auto_configure_lines=True, strip_prefix=True,
                      lines=(SipAccount(auth_id="goip-01", prefixes="001"),))
    router = PrefixRouter.from_config(voip, 4)
    assert [e.prefixes for e in router.entries] == [("001",), ("002",), ("003",), ("004",)]
    assert router.route("", "00413800138000") == Route(
        lines=(4,), number="13800138000", prefix="004", entries=("line4",))
    assert router.route("", "13800138000") is None


def test_from_config_per_line_without_prefixes_rejects_everything():
    router = PrefixRouter.from_config(VoipConfig(mode="per_line"), 2)
    assert router.route("1", "2") is None


def test_from_config_groups():
    voip = VoipConfig(mode="per_group", groups=(
        SipGroup(name="cm", lines=(1, 2), account=SipAccount(prefixes="13,15")),
        SipGroup(name="cu", lines=(3, 4, 9), account=SipAccount(prefixes="18"))))
    router = PrefixRouter.from_config(voip, 4)
    assert router.route("", "15900000000").lines == (1, 2)
    assert router.route("", "18900000000").lines == (3, 4)   # line 9 does not exist
    assert router.route("", "17000000000") is None
    assert router.entry_for_line(3).name == "cu"


def test_from_config_single_all_lines():
    router = PrefixRouter.from_config(VoipConfig(), 3)
    assert router.route("100", "13800138000").lines == (1, 2, 3)


@pytest.mark.parametrize("text,step,out", [
    ("101", 1, "102"), ("goip-01", 9, "goip-10"), ("Line 1", 2, "Line 3"),
    ("abc", 3, "abc"), ("", 1, ""), ("099", 1, "100"), ("a1b2", 1, "a1b3"),
])
def test_increment(text, step, out):
    assert increment(text, step) == out


def test_line_accounts_pads_missing_lines():
    voip = VoipConfig(lines=(SipAccount(auth_id="7"),))
    accounts = line_accounts(voip, 3)
    assert [a.auth_id for a in accounts] == ["7", "", ""]
    assert auto_configure(SipAccount(auth_id="7", prefixes="1,2"), 2)[1].prefixes == "2,3"


def test_per_line_and_group_prefixes_must_be_distinct():
    from goip_tw.config import schema

    good = {"mode": "per_line", "lines": [
        {"auth_id": "101", "prefixes": "001,13"}, {"auth_id": "102", "prefixes": "002,13"}]}
    errors = []
    schema.build_section(VoipConfig, good, "voip", "goip.toml", errors)
    assert errors == []
    for bad, why in (
        ({"mode": "per_line", "lines": [{"auth_id": "101", "prefixes": "13"},
                                        {"auth_id": "102", "prefixes": "13,15"}]},
         "voip.lines[0].prefixes: needs at least one prefix no other entry has"),
        ({"mode": "per_group", "groups": [{"name": "a", "account": {"prefixes": "1"}},
                                          {"name": "b", "account": {"prefixes": "1"}}]},
         "voip.groups[0].prefixes: needs at least one prefix no other entry has"),
    ):
        errors = []
        schema.build_section(VoipConfig, bad, "voip", "goip.toml", errors)
        assert [e.reason for e in errors] == [why], errors
    # auto-configure makes them distinct by itself
    VoipConfig(mode="per_line", auto_configure_lines=True,
               lines=(SipAccount(auth_id="101", prefixes="001"),))
