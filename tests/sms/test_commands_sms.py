"""F-1501 SMS commands: passwords, look-alikes, shell metacharacters, lockout,
duplicate delivery, redaction, INFO rate limit."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from goip_tw.sms.commands import CommandSettings, SmsCommands, parse, password_checker
from goip_tw.sms.forward import ForwardRules, Forwarder
from goip_tw.sms.inbound import InboundSms
from tests.sms.inbound_support import Recorder, flush, history, part, store  # noqa: F401

PASSWORD = "s3cret!"


@pytest.mark.parametrize("text,expected", [
    ("###INFO###", ("info", "")),
    ("  ###info###\r\n", ("info", "")),
    ("RESET s3cret!", ("reset", "s3cret!")),
    ("reset\ts3cret!", ("reset", "s3cret!")),
    ("ReBoOt s3cret!", ("reboot", "s3cret!")),
    ("REBOOT x;rm$(id)`reboot`|&>", ("reboot", "x;rm$(id)`reboot`|&>")),
])
def test_commands_recognised(text, expected):
    cmd = parse(text)
    assert (cmd.name, cmd.password) == expected


@pytest.mark.parametrize("text", [
    "RESET", "RESETs3cret!", "RESET s3cret! now", "reset my router please",
    "ＲＥＳＥＴ s3cret!",            # fullwidth letters
    "R\u0415SET s3cret!",          # Cyrillic Е
    "RE\u200bSET s3cret!",         # zero-width space
    "###INFO### please", "## INFO ##", "###INFO####", "#\uff03#INFO###",
    "REBOOT\ns3cret!\nREBOOT", "", "\x00RESET s3cret!",
])
def test_look_alikes_are_not_commands(text):
    assert parse(text) is None


def test_info_disabled_is_plain_text():
    assert parse("###INFO###", info_enabled=False) is None


def test_password_checker_is_exact():
    check = password_checker(PASSWORD)
    assert check(PASSWORD)
    assert not check(PASSWORD.upper()) and not check("") and not check(PASSWORD + " ")
    assert not password_checker("")("")


class Gateway:
    """Records the hooks the lead's gateway provides."""

    def __init__(self):
        self.calls = []
        self.replies = []
        self.checked = []

    def factory_reset(self):
        self.calls.append("factory_reset")

    def restart(self):
        self.calls.append("restart")

    def check(self, pw):
        self.checked.append(pw)
        return password_checker(PASSWORD)(pw)

    def reply(self, line, number, text):
        self.replies.append((line, number, text))
        return defer.succeed(None)


class Logs:
    def __init__(self):
        self.lines = []

    def __call__(self, event):
        self.lines.append(formatEvent(event))

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *a):
        globalLogPublisher.removeObserver(self)


def build(store, **settings):
    clock, gw = Clock(), Gateway()
    cmds = SmsCommands(clock, check_password=gw.check, factory_reset=gw.factory_reset,
                       restart=gw.restart, info_text=lambda: "LAN 192.168.8.1 WAN 10.0.0.2",
                       reply=gw.reply, settings=CommandSettings(**settings))
    forwarded = []
    fwd = Forwarder(store, clock, ForwardRules(sip_target="101"),
                    {"sip": lambda job: forwarded.append(job) or defer.succeed(200)})
    inbound = InboundSms(store, clock, interceptors=[cmds], planner=fwd)
    rec = Recorder()
    inbound.add_observer(rec)
    return inbound, cmds, gw, clock, rec, forwarded


@pytest_twisted.inlineCallbacks
def test_reset_runs_once_even_if_delivered_twice(store):
    inbound, _, gw, clock, rec, forwarded = build(store)
    with Logs() as logs:
        yield inbound.part_received(part("reset " + PASSWORD))
        yield inbound.part_received(part("reset " + PASSWORD))
        clock.advance(0)
    assert gw.calls == ["factory_reset"]
    assert rec.messages == [] and forwarded == []
    rows = yield history(store)
    assert [(r["text"], r["state"]) for r in rows] == [("RESET ********", "command:reset")]
    stored = yield store.query("SELECT text FROM sms_inbound_part UNION ALL "
                               "SELECT body FROM sms_forward")
    assert all(PASSWORD not in r[0] for r in stored)
    assert not any(PASSWORD in line for line in logs.lines)
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_reboot_calls_restart(store):
    inbound, _, gw, clock, *_ = build(store)
    yield inbound.part_received(part("REBOOT " + PASSWORD))
    clock.advance(0)
    assert gw.calls == ["restart"]


@pytest_twisted.inlineCallbacks
def test_wrong_passwords_do_nothing_visible_then_lock_out(store):
    inbound, cmds, gw, clock, rec, forwarded = build(store, max_failures=3, lockout=600)
    with Logs() as logs:
        for i, pw in enumerate(["guess1", "x;reboot", "$(halt)"]):
            yield inbound.part_received(part(f"REBOOT {pw}", scts=f"t{i}"))
        yield inbound.part_received(part("REBOOT " + PASSWORD, scts="t9"))
        clock.advance(0)
    assert gw.calls == [] and gw.replies == [] and forwarded == [] and rec.messages == []
    assert gw.checked == ["guess1", "x;reboot", "$(halt)"]  # the 4th was never checked
    assert sum("auth failure: service=sms-command" in l for l in logs.lines) == 3
    assert any("locked out" in l for l in logs.lines)
    assert not any(pw in l for l in logs.lines for pw in ("guess1", "$(halt)", PASSWORD))
    # another sender is not affected; the locked one recovers after the lockout
    yield inbound.part_received(part("REBOOT " + PASSWORD, sender="+100", scts="u"))
    clock.advance(0)
    assert gw.calls == ["restart"]
    clock.advance(600)
    yield inbound.part_received(part("REBOOT " + PASSWORD, scts="t10"))
    clock.advance(0)
    assert gw.calls == ["restart", "restart"]


@pytest_twisted.inlineCallbacks
def test_spread_guessing_locks_everyone(store):
    inbound, _, gw, clock, *_ = build(store, global_max_failures=4, max_failures=3)
    for i in range(4):
        yield inbound.part_received(part("RESET nope", sender=f"+{i}"))
    yield inbound.part_received(part("RESET " + PASSWORD, sender="+99"))
    clock.advance(0)
    assert gw.calls == []


@pytest_twisted.inlineCallbacks
def test_look_alike_is_forwarded_as_an_ordinary_sms(store):
    inbound, _, gw, clock, rec, forwarded = build(store)
    yield inbound.part_received(part("ＲＥＳＥＴ " + "pw"))
    yield inbound.part_received(part("reset my router please"))
    clock.advance(0)
    yield flush(store)
    assert gw.calls == [] and gw.checked == []
    assert [m.text for m in rec.messages] == ["ＲＥＳＥＴ pw", "reset my router please"]
    assert len(forwarded) == 2


@pytest_twisted.inlineCallbacks
def test_info_replies_rate_limited(store):
    inbound, _, gw, clock, rec, forwarded = build(store, info_interval=300, info_max_per_hour=2)
    yield inbound.part_received(part("###INFO###", scts="a"))
    yield inbound.part_received(part("###info###", scts="b"))  # same sender, too soon
    yield inbound.part_received(part("###INFO###", sender="+2"))
    yield inbound.part_received(part("###INFO###", sender="+3"))  # over the hourly cap
    assert gw.replies == [(1, "+8613670128297", "LAN 192.168.8.1 WAN 10.0.0.2"),
                          (1, "+2", "LAN 192.168.8.1 WAN 10.0.0.2")]
    clock.advance(3600)
    yield inbound.part_received(part("###INFO###", scts="c"))
    assert len(gw.replies) == 3
    assert rec.messages == [] and forwarded == []


@pytest_twisted.inlineCallbacks
def test_info_disabled_is_forwarded(store):
    inbound, _, gw, clock, rec, _ = build(store, info_enabled=False)
    yield inbound.part_received(part("###INFO###"))
    assert gw.replies == [] and [m.text for m in rec.messages] == ["###INFO###"]


@pytest_twisted.inlineCallbacks
def test_multipart_command_is_recognised_once_complete(store):
    inbound, _, gw, clock, *_ = build(store)
    yield inbound.part_received(part("RESET ", total=2, seq=1, ref=5))
    yield inbound.part_received(part(PASSWORD, total=2, seq=2, ref=5))
    clock.advance(0)
    assert gw.calls == ["factory_reset"]


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_parse_never_raises_and_only_ascii_keywords_match(text):
    cmd = parse(text)
    if cmd is not None:
        body = text.strip(" \t\r\n")
        assert body[:6].isascii() and body.upper().startswith(("RESET", "REBOOT", "###INFO###"))
        assert "\n" not in cmd.password and " " not in cmd.password
