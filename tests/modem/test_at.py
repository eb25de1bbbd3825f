"""AT engine: transcripts written by us after TS 27.007/27.005 and vendor manuals,
driven through a StringTransport and a Clock."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from goip_tw.modem import at

from .atclock import clock_engine, close_engine, result, sent


@pytest.fixture
def eng():
    e, clock = clock_engine()
    e.urcs["^CEND"] = False
    yield e
    close_engine(e, clock)


def test_simple_command_with_echo_and_intermediate(eng):
    d = eng.send("AT+CGSN")
    assert sent(eng) == b"AT+CGSN\r"
    eng.dataReceived(b"AT+CGSN\r\r\n866123456789012\r\n\r\nOK\r\n")
    r = result(d)
    assert r.lines == ("866123456789012",) and r.result == "OK"


def test_queue_one_in_flight(eng):
    d1 = eng.send("AT+CSQ")
    d2 = eng.send("AT+CREG?")
    assert sent(eng) == b"AT+CSQ\r"
    eng.dataReceived(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
    assert result(d1).value("+CSQ") == "20,99"
    assert sent(eng) == b"AT+CREG?\r"
    eng.dataReceived(b"\r\n+CREG: 0,1\r\nOK\r\n")
    assert result(d2).value("+CREG") == "0,1"
    assert eng.urc_log == []


def test_urc_with_same_prefix_outside_command_is_urc(eng):
    eng.dataReceived(b"\r\n+CREG: 5\r\n")
    d = eng.send("AT+CSQ")
    eng.dataReceived(b"\r\n+CREG: 1\r\n+CSQ: 9,99\r\nOK\r\n")
    assert result(d).lines == ("+CSQ: 9,99",)
    assert eng.urc_log == [at.Urc("+CREG", "5"), at.Urc("+CREG", "1")]


def test_errors(eng):
    d = eng.send("AT+CPIN=\"1234\"")
    eng.dataReceived(b"\r\n+CME ERROR: 16\r\n")
    f = result(d)
    assert isinstance(f.value, at.CmeError) and f.value.code == 16
    d = eng.send("AT+CMGR=3")
    eng.dataReceived(b"\r\n+CMS ERROR: invalid memory index\r\n")
    f = result(d)
    assert isinstance(f.value, at.CmsError) and f.value.code is None
    assert f.value.text == "invalid memory index"
    d = eng.send("AT+FOO")
    eng.dataReceived(b"\r\nERROR\r\n")
    assert isinstance(result(d).value, at.CommandError)


def test_dial_results(eng):
    d = eng.send("ATD+4912345;", kind="call")
    eng.dataReceived(b"\r\nBUSY\r\n")
    f = result(d)
    assert isinstance(f.value, at.CallFailed) and f.value.result == "BUSY"
    # outside ATD, NO CARRIER is the call-ended URC
    eng.dataReceived(b"\r\nNO CARRIER\r\n")
    assert eng.urc_log == [at.Urc("NO CARRIER")]
    d = eng.send("AT+CLCC")
    eng.dataReceived(b"\r\nNO CARRIER\r\nOK\r\n")
    assert result(d).lines == ()
    assert len(eng.urc_log) == 2


def test_cmgs_prompt_with_urc_between_prompt_and_result(eng):
    d = eng.send("AT+CMGS=18", kind="sms", payload="0011000B916407281553F80000AA0AE8329BFD4697D9EC37")
    assert sent(eng) == b"AT+CMGS=18\r"
    eng.dataReceived(b"\r\n> ")
    assert sent(eng) == b"0011000B916407281553F80000AA0AE8329BFD4697D9EC37\x1a"
    eng.dataReceived(b"\r\n+CMTI: \"SM\",3\r\n\r\n+CMGS: 77\r\n\r\nOK\r\n")
    assert result(d).value("+CMGS") == "77"
    assert eng.urc_log == [at.Urc("+CMTI", '"SM",3')]


def test_prompt_and_urc_in_one_chunk_and_echoed_payload(eng):
    d = eng.send("AT+CMGS=5", payload="00AB")
    sent(eng)
    eng.dataReceived(b"AT+CMGS=5\r\r\n> \r\n+CMTI: \"ME\",1\r\n")
    assert sent(eng) == b"00AB\x1a"
    eng.dataReceived(b"00AB\x1a\r\n+CMGS: 1\r\nOK\r\n")
    assert result(d).lines == ("+CMGS: 1",)
    assert eng.urc_log == [at.Urc("+CMTI", '"ME",1')]


def test_two_line_urc_inside_response(eng):
    d = eng.send("AT+CSQ")
    eng.dataReceived(b"\r\n+CMT: ,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n+CSQ: 1,2\r\nOK\r\n")
    assert result(d).lines == ("+CSQ: 1,2",)
    assert eng.urc_log[0].name == "+CMT" and eng.urc_log[0].pdu.startswith("0791")


def test_timeout_then_late_result_is_swallowed(eng):
    d1 = eng.send("AT+COPS=?", timeout=3)
    d2 = eng.send("AT+CSQ")
    sent(eng)
    eng.clock.advance(3)
    assert isinstance(result(d1).value, at.AtTimeout)
    assert sent(eng) == b""  # grace period: the port is still reserved
    eng.dataReceived(b"\r\n+COPS: (2,\"X\",\"X\",\"00101\",7)\r\nOK\r\n")
    assert sent(eng) == b"AT+CSQ\r"
    eng.dataReceived(b"\r\n+CSQ: 3,99\r\nOK\r\n")
    assert result(d2).value("+CSQ") == "3,99"


def test_timeout_grace_expires(eng):
    d1 = eng.send("AT")
    d2 = eng.send("AT+CSQ")
    sent(eng)
    eng.clock.advance(5)
    assert isinstance(result(d1).value, at.AtTimeout)
    eng.clock.advance(eng.late_grace)
    assert sent(eng) == b"AT+CSQ\r"
    eng.dataReceived(b"OK\r\n")
    assert result(d2).result == "OK"


def test_sms_timeout_sends_escape(eng):
    d = eng.send("AT+CMGS=5", kind="sms", payload="00")
    sent(eng)
    eng.clock.advance(60)
    assert sent(eng) == b"\x1b"
    assert isinstance(result(d).value, at.AtTimeout)
    eng.clock.advance(eng.late_grace)


def test_garbage_and_bounded_buffer(eng):
    eng.dataReceived(b"\x00\xff\xfegarbage\r\n")
    assert eng.garbage == 1
    eng.dataReceived(b"x" * 5000)
    assert eng.garbage == 2 and eng._buf == b""
    d = eng.send("AT")
    eng.dataReceived(b"\r\nOK\r\n")
    assert result(d).result == "OK"


def test_vendor_urc_and_observer_failure_isolated(eng):
    def boom(u):
        raise RuntimeError("observer bug")
    eng.add_urc_observer(boom)
    eng.dataReceived(b"\r\n^CEND:1,0,104,16\r\n")
    assert eng.urc_log == [at.Urc("^CEND", "1,0,104,16")]


def test_port_closed_fails_everything(eng):
    d1 = eng.send("AT")
    d2 = eng.send("AT+CSQ")
    eng.connectionLost(None)
    assert isinstance(result(d1).value, at.PortClosed)
    assert isinstance(result(d2).value, at.PortClosed)
    assert isinstance(result(eng.send("AT")).value, at.PortClosed)


def test_cancel_queued_and_in_flight(eng):
    d1 = eng.send("AT+CSQ")
    d2 = eng.send("AT+CGMI")
    d3 = eng.send("AT+CGMM")
    d2.cancel()
    result(d2)
    d1.cancel()
    result(d1)
    eng.dataReceived(b"+CSQ: 1,1\r\nOK\r\n")  # swallowed, then AT+CGMM goes out
    assert sent(eng).endswith(b"AT+CGMM\r")
    eng.dataReceived(b"EC25\r\nOK\r\n")
    assert result(d3).lines == ("EC25",)


@pytest.mark.parametrize("bad", ["ATD123;\rAT+CFUN=0", "AT+X\x1a", "ATé", "CFUN=0"])
def test_command_validation(eng, bad):
    with pytest.raises(at.BadArgument):
        eng.send(bad)


def test_payload_must_be_hex(eng):
    with pytest.raises(at.BadArgument):
        eng.send("AT+CMGS=1", payload="hello\x1aAT")


@pytest.mark.parametrize("number", ["+4912345", "*100#", "12#34"])
def test_check_number_ok(number):
    assert at.check_number(number) == number


@pytest.mark.parametrize("number", ["", "12;", "+49 123", "12\r", "a1", "1" * 41, None])
def test_check_number_rejects(number):
    with pytest.raises(at.BadArgument):
        at.check_number(number)


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st  # noqa: E402

TRANSCRIPT = (b"AT+CSQ\r\r\n+CMTI: \"SM\",1\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
              b"\r\n> \r\n+CMT: ,24\r\n0791AABB\r\n"
              b"\r\n+CMGS: 5\r\n\r\nOK\r\n"
              b"\r\nRING\r\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(TRANSCRIPT) - 1), max_size=12))
def test_any_chunking_gives_the_same_result(cuts):
    clock = Clock()
    e = at.AtEngine(clock)
    e.makeConnection(StringTransport())
    urcs = []
    e.add_urc_observer(urcs.append)
    d1 = e.send("AT+CSQ")
    d2 = e.send("AT+CMGS=5", payload="00")
    bounds = [0] + sorted(set(cuts)) + [len(TRANSCRIPT)]
    for a, b in zip(bounds, bounds[1:]):
        e.dataReceived(TRANSCRIPT[a:b])
    assert e.transport.value().endswith(b"AT+CMGS=5\r00\x1a")
    assert result(d1).lines == ("+CSQ: 20,99",)
    assert result(d2).value("+CMGS") == "5"
    assert [u.name for u in urcs] == ["+CMTI", "+CMT", "RING"]
    assert urcs[1].pdu == "0791AABB"
    e.connectionLost(None)
    assert not clock.getDelayedCalls()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_garbage_never_raises_and_engine_recovers(junk):
    clock = Clock()
    e = at.AtEngine(clock)
    e.makeConnection(StringTransport())
    e.add_urc_observer(lambda u: None)
    e.dataReceived(junk)
    e.dataReceived(b"\r\n")
    e._pdu_urc = None  # junk may have ended in a two-line URC header
    d = e.send("AT")
    e.dataReceived(b"\r\nOK\r\n")
    r = result(d)
    assert r is not None
    e.connectionLost(None)
    clock.advance(120)
    assert not clock.getDelayedCalls()


def test_multiline_ussd_text_is_one_urc(eng):
    eng.dataReceived(b'\r\n+CUSD: 1,"Main menu\r\n1. Balance\r\n2. Offers",15\r\n')
    assert eng.urc_log == [at.Urc("+CUSD", '1,"Main menu\n1. Balance\n2. Offers",15')]
    d = eng.send("AT")
    eng.dataReceived(b"\r\nOK\r\n")
    assert result(d).result == "OK"
