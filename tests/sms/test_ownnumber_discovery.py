"""F-510 own-number discovery: USSD query (simulator), SMS query, and an encrypted SIM
token sent between two simulated modules over real ptys."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.sms.inbound import InboundSms
from goip_tw.sms.ownnumber import (
    TOKEN_PREFIX, DiscoveryFailed, OwnNumbers, TokenCodec, extract_number,
)
from goip_tw.sms.ussd import UssdSessions
from tests.modem.simhelp import booted, wait_until
from tests.sms.inbound_support import Recorder, history, net, open_store, part, store  # noqa: F401

SECRET = b"gateway-secret"
ICCID = "89860012345678901234"


@pytest.mark.parametrize("text,phrase,number", [
    ("Your number is +15550001.", "your number is", "+15550001"),
    ("本机号码:138 0013 8000,谢谢", "本机号码:", "13800138000"),
    ("Number: 12", "Number:", None),
    ("no phrase here 123456", "Your number", None),
    ("Your number is unknown", "Your number is", None),
])
def test_extract_number(text, phrase, number):
    assert extract_number(text, phrase) == number


def test_token_round_trip_and_tamper():
    codec = TokenCodec(SECRET)
    token = codec.make(ICCID, 1000)
    assert token.startswith(TOKEN_PREFIX) and ICCID not in token and len(token) <= 160
    assert codec.open(token, 1000 + 60, ttl=3600) == ICCID
    assert codec.open(token, 1000 + 3601, ttl=3600) is None  # expired
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert codec.open(flipped, 1000, ttl=3600) is None
    assert TokenCodec(b"other").open(token, 1000, ttl=3600) is None
    assert codec.open(TOKEN_PREFIX + "!!!", 1000, 3600) is None
    with pytest.raises(ValueError):
        codec.make("12;rm -rf", 0)


@pytest_twisted.inlineCallbacks
def test_method1_ussd_query_through_simulator(net, tmp_path):
    rig = yield booted(net, "quectel")
    s = yield open_store(tmp_path / "gw.sqlite")
    try:
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered, what="registration")
        clock = Clock()
        own = OwnNumbers(s, clock, secret=SECRET, ussd=UssdSessions(clock, {1: rig.modem}.get))
        number = yield own.discover_by_ussd(1, ICCID, "*101#", "Your number is")
        assert number.lstrip("+") == rig.module.sim.msisdn.lstrip("+")
        assert (yield own.number_for(ICCID)) == number
        with pytest.raises(DiscoveryFailed):
            yield own.discover_by_ussd(1, ICCID, "*100#", "Your number is")
    finally:
        yield s.stop()
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_method2_sms_query(store):
    clock = Clock()
    sent = []
    own = OwnNumbers(store, clock, secret=SECRET,
                     send_sms=lambda l, n, t: sent.append((l, n, t)) or defer.succeed(None))
    inbound = InboundSms(store, clock, interceptors=[own])
    rec = Recorder()
    inbound.add_observer(rec)
    d = own.discover_by_sms(3, ICCID, "10086", "CXHM", reply_from="10086",
                            phrase="您的号码是")
    assert sent == [(3, "10086", "CXHM")]
    # an unrelated SMS from elsewhere, and the right sender on another line: not claimed
    yield inbound.part_received(part("您的号码是13900000000", sender="+4412345", line=3))
    yield inbound.part_received(part("您的号码是13900000000", sender="10086", line=4))
    assert not d.called and len(rec.messages) == 2
    yield inbound.part_received(part("尊敬的客户,您的号码是13812345678。", sender="10086",
                                     line=3, scts="x"))
    assert (yield d) == "13812345678"
    assert len(rec.messages) == 2
    rows = yield store.query("SELECT iccid, number, method, line FROM sim_own_number")
    assert [tuple(r) for r in rows] == [(ICCID, "13812345678", "sms", 3)]
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_method2_times_out(store):
    clock = Clock()
    own = OwnNumbers(store, clock, secret=SECRET, timeout=60,
                     send_sms=lambda l, n, t: defer.succeed(None))
    d = own.discover_by_sms(1, ICCID, "10086", "CXHM", reply_from="10086", phrase="x")
    clock.advance(60)
    with pytest.raises(DiscoveryFailed, match="timeout"):
        yield d
    assert own._expect == ()


@pytest_twisted.inlineCallbacks
def test_method3_token_between_two_simulated_lines(net, tmp_path):
    """Line 1 (SIM number unknown to us) texts a token to line 2's known number;
    line 2's inbound pipeline learns line 1's number for line 1's ICCID."""
    a = yield booted(net, "quectel")
    b = yield booted(net, "quectel")
    s = yield open_store(tmp_path / "gw.sqlite")
    try:
        for rig in (a, b):
            yield rig.modem.initialise()
            yield wait_until(lambda rig=rig: rig.module.registered, what="registration")
        clock = Clock()
        clock.advance(1_000_000)
        own = OwnNumbers(s, clock, secret=SECRET,
                         send_sms=lambda line, number, text: a.modem.send_sms(number, text))
        inbound = InboundSms(s, clock, interceptors=[own])
        rec = Recorder()
        inbound.add_observer(rec)
        b.modem.sms_handler = inbound.handler_for(2, sim=lambda: (b.module.sim.iccid, "A"))
        iccid_a = a.module.sim.iccid
        result = []
        own.discover_by_token(1, iccid_a, b.module.sim.msisdn).addBoth(result.append)
        yield wait_until(lambda: result, timeout=10, what="token learned")
        assert result[0].lstrip("+") == a.module.sim.msisdn.lstrip("+")
        assert (yield own.number_for(iccid_a)) == result[0]
        assert rec.messages == []
        rows = yield history(s)
        assert [(r["line"], r["text"], r["state"]) for r in rows] == [
            (2, "[own-number token]", "ownnumber:token")]
        assert clock.getDelayedCalls() == []
    finally:
        yield s.stop()
        yield a.close()
        yield b.close()


@pytest_twisted.inlineCallbacks
def test_forged_token_learns_nothing(store):
    clock = Clock()
    clock.advance(5000)
    own = OwnNumbers(store, clock, secret=SECRET)
    inbound = InboundSms(store, clock, interceptors=[own])
    forged = TokenCodec(b"attacker").make(ICCID, 5000)
    out = yield inbound.part_received(part(forged, sender="+666"))
    assert out.interception.kind == "ownnumber:invalid"
    assert (yield own.number_for(ICCID)) is None


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), phrase=st.text(max_size=10))
def test_parsers_never_raise_on_any_sms(text, phrase):
    number = extract_number(text, phrase)
    assert number is None or number.lstrip("+").isdigit()
    assert TokenCodec(SECRET).open(TOKEN_PREFIX + text, 0, 3600) is None
