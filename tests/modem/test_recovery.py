"""A module left mid-SMS by a killed gateway: the next open aborts the input with ESC
(TS 27.005 §3.5.1) and the line comes up; the abandoned message never leaves."""

import os

import pytest
import pytest_twisted

from goip_tw.modem import at, pdu

from .atclock import clock_engine, close_engine, result, sent
from .simhelp import PHONE, sleep, wait_until
from .test_line import rigs  # noqa: F401  (the shared line fixture)


def _strand_at_prompt(module, port, text="abandoned by a killed gateway"):
    """Do what a gateway killed between AT+CMGS and Ctrl-Z leaves behind: the module
    waits at ``> `` with a whole PDU typed but never terminated."""
    pdu_hex, length = pdu.encode_submit(PHONE, text)[0]
    fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
    try:
        os.write(fd, f"AT+CMGF=0\rAT+CMGS={length}\r".encode())
        return fd, pdu_hex
    except Exception:
        os.close(fd)
        raise


@pytest_twisted.inlineCallbacks
def test_line_recovers_a_module_left_at_the_sms_prompt(rigs):  # noqa: F811
    net, svc, add = rigs
    phone = net.add_remote_phone(PHONE)
    line = add()
    yield wait_until(lambda: line.module.registered, what="module registered")
    fd, pdu_hex = _strand_at_prompt(line.module, line.cfg.port)
    try:
        yield wait_until(lambda: line.module._text_input is not None, what="> prompt")
        os.write(fd, pdu_hex.encode())
    finally:
        os.close(fd)
    yield sleep(0.05)
    assert line.module._text_input is not None  # still waiting for Ctrl-Z or ESC

    svc.startService()
    yield wait_until(lambda: line.state == "registered", timeout=10, what="registered")
    assert line.module._text_input is None
    assert not [r for r in line.event_log.rows if r[1].startswith("watchdog")]
    assert net.sent_sms == [] and phone.received_sms == []

    # the port is clean: the next message goes out alone and intact
    refs = yield line.modem.send_sms(PHONE, "after recovery")
    assert len(refs) == 1
    yield wait_until(lambda: phone.received_sms, what="delivered")
    assert [m["text"] for m in phone.received_sms] == ["after recovery"]
    assert len(net.sent_sms) == 1


@pytest_twisted.inlineCallbacks
def test_line_recovers_a_module_left_at_an_empty_prompt(rigs):  # noqa: F811
    """Killed right after AT+CMGS: nothing typed yet."""
    net, svc, add = rigs
    phone = net.add_remote_phone(PHONE)
    line = add()
    yield wait_until(lambda: line.module.registered, what="module registered")
    fd, _ = _strand_at_prompt(line.module, line.cfg.port)
    os.close(fd)
    yield wait_until(lambda: line.module._text_input is not None, what="> prompt")
    svc.startService()
    yield wait_until(lambda: line.state == "registered", timeout=10, what="registered")
    assert net.sent_sms == [] and phone.received_sms == []


# ---------------------------------------------------------------- engine, on a Clock

@pytest.fixture
def eng():
    e, clock = clock_engine(timeouts={"quick": 1.0, "late_grace": 0.1})
    yield e
    close_engine(e, clock)


_take, _result = sent, result


def test_resync_writes_esc_then_holds_commands_until_settled(eng):
    d = eng.resync()
    queued = eng.send("ATE0")
    assert _take(eng) == b"\x1b"  # nothing else until the settle time is over
    # the module's answer to the abort, and the late result of a command the dead
    # gateway had in flight, arrive meanwhile: garbage, not anybody's answer
    eng.dataReceived(b"\x1b\r\nOK\r\n\r\n+CSQ: 9,99\r\n\r\nOK\r\n")
    eng.dataReceived(b"\r\n+CMTI: \"SM\",3\r\n")  # URCs still reach their observers
    assert [u.name for u in eng.urc_log] == ["+CMTI"]
    eng.clock.advance(eng.settle)
    assert _take(eng) == b"AT\r"
    eng.dataReceived(b"AT\r\r\nOK\r\n")
    assert _result(d) is True
    assert _take(eng) == b"ATE0\r"
    eng.dataReceived(b"\r\nOK\r\n")
    assert _result(queued).result == "OK"


def test_resync_drops_a_partial_prompt_line(eng):
    """The echoed ``> `` and PDU text without a line end is not the start of an answer."""
    d = eng.resync()
    eng.dataReceived(b"\r\n> 0011000B915155001000F00000AA03")
    eng.clock.advance(eng.settle)
    assert _take(eng) == b"\x1bAT\r"
    eng.dataReceived(b"\r\nOK\r\n")
    assert _result(d) is True


def test_resync_never_sends_ctrl_z_and_reports_a_dead_module(eng):
    d = eng.resync(probes=2)
    eng.clock.advance(eng.settle)
    for _ in range(2):
        eng.clock.advance(eng.timeouts["quick"])
        eng.clock.advance(eng.late_grace)
    assert _result(d) is False
    assert b"\x1a" not in _take(eng)


def test_resync_on_a_closed_port_fails_and_port_loss_clears_the_hold(eng):
    d = eng.resync()
    eng.connectionLost(None)
    assert isinstance(_result(d).value, at.PortClosed)
    assert isinstance(_result(eng.resync()).value, at.PortClosed)


@pytest_twisted.inlineCallbacks
def test_imei_scan_finds_a_module_left_at_the_prompt(rigs):  # noqa: F811
    """The IMEI probe (port = "imei:...") starts with ESC too."""
    net, svc, add = rigs
    phone = net.add_remote_phone(PHONE)
    line = add(by_imei=True)
    yield wait_until(lambda: line.module.registered, what="module registered")
    at_link = os.path.join(line.options.scan_dir, f"module{line.module.number}-at")
    fd, pdu_hex = _strand_at_prompt(line.module, at_link)
    try:
        yield wait_until(lambda: line.module._text_input is not None, what="> prompt")
        os.write(fd, pdu_hex.encode())
    finally:
        os.close(fd)
    svc.startService()
    yield wait_until(lambda: line.state == "registered", timeout=10, what="found by IMEI")
    assert line.status()["imei"] == line.module.imei
    assert net.sent_sms == [] and phone.received_sms == []
