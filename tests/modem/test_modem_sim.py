"""The Modem API through simulator ptys: every call, each driver dialect."""

import pytest
import pytest_twisted
from twisted.internet import defer

from goip_tw.modem import at, model, pdu
from goip_tw.modem.api import PinRejected
from goip_tw.modem.smsrx import SmsSendError

from .simhelp import PHONE, booted, registered, sleep, wait_until

from goip_tw.simulator.at_http import DEFAULT_BODY
from goip_tw.simulator.module import IDENTITIES

#: the simulator speaks these; Huawei is covered by transcript tests (test_drivers.py)
DIALECTS = [d for d in ("quectel", "simcom", "huawei") if d in IDENTITIES]


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_identity_network_and_status(net, dialect):
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        ident = yield m.initialise()
        assert m.driver.name == dialect
        assert ident.imei == rig.module.imei and len(ident.imei) == 15
        assert ident.manufacturer and ident.model and ident.firmware
        assert (yield m.pin_status()) == "READY"
        sim = yield m.read_sim_identity()
        card = rig.module.sim
        assert sim.iccid == card.iccid and sim.imsi == card.imsi and sim.own_number == card.msisdn
        yield wait_until(lambda: rig.module.registered, what="registration")
        reg = yield m.registration()
        assert reg.registered and reg.technology == "4G"
        sig = yield m.signal()
        assert sig.rssi == rig.module.rssi and sig.dbm == -113 + 2 * sig.rssi
        op = yield m.operator()
        assert op.mode == "auto" and op.mccmnc == rig.module.serving
        rig.net.set_signal(rig.module, 10)
        sig = yield m.signal()
        assert sig == model.Signal(10, -93)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_volte_quectel(net):
    rig = yield registered(net, "quectel")
    try:
        yield rig.modem.set_volte(False)
        assert rig.module.settings.ims == 2  # Quectel: 2 = IMS disabled
        yield rig.modem.set_volte(True)
        assert rig.module.settings.ims == 1
        assert (yield rig.modem.volte()) is True
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_operator_selection_fixed_and_auto(net):
    rig = yield registered(net, "quectel")
    try:
        yield rig.modem.select_operator("00101")
        yield sleep(0.05)
        yield wait_until(lambda: rig.module.registered, what="re-registered")
        op = yield rig.modem.operator()
        assert op.mode == "manual" and op.mccmnc == "00101"
        yield rig.modem.select_operator(None)
        assert (yield rig.modem.operator()).mode == "auto"
        with pytest.raises(at.BadArgument):
            rig.modem.select_operator('001";AT')
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_pin_unlock_never_retried(net):
    rig = yield booted(net, "quectel", pin="1234")
    try:
        yield rig.modem.initialise()
        assert (yield rig.modem.pin_status()) == "SIM PIN"
        with pytest.raises(PinRejected):
            yield rig.modem.unlock("9999")
        tries_after_first = rig.module.sim.pin_tries if hasattr(rig.module.sim, "pin_tries") else None
        with pytest.raises(PinRejected, match="not retrying"):
            yield rig.modem.unlock("9999")
        if tries_after_first is not None:
            assert rig.module.sim.pin_tries == tries_after_first
        assert (yield rig.modem.unlock("1234")) == "READY"
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_send_sms_long_and_status_report(net, dialect):
    phone = net.add_remote_phone(PHONE)
    rig = yield registered(net, dialect)
    try:
        text = "Grüße € " + "x" * 160
        refs = yield rig.modem.send_sms(PHONE, text, status_report=True)
        assert len(refs) == 2 and all(r >= 0 for r in refs)
        yield wait_until(lambda: phone.received_sms, what="phone got SMS")
        assert phone.received_sms[-1]["text"] == text
        yield wait_until(lambda: len(rig.reports) >= 1, what="status report")
        assert rig.reports[0].message_ref in refs and rig.reports[0].delivered
        yield wait_until(lambda: rig.module.sim.store.used == 0, what="report deleted")
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_receive_sms_exactly_once_and_deleted(net, dialect):
    phone = net.add_remote_phone(PHONE)
    rig = yield booted(net, dialect)
    try:
        yield rig.modem.initialise()
        yield rig.modem.read_sim_identity()
        yield wait_until(lambda: rig.module.registered)
        long_text = "😀 emoji and long " * 8
        phone.send_sms(rig.module.sim.msisdn, long_text)
        phone.send_sms(rig.module.sim.msisdn, "short one")
        yield wait_until(lambda: len(rig.sms) == 2, what="two SMS")
        texts = sorted(s.text for s in rig.sms)
        assert texts == sorted([long_text, "short one"])
        big = [s for s in rig.sms if s.text == long_text][0]
        assert big.parts > 1 and big.missing == () and big.imsi == rig.module.sim.imsi
        yield wait_until(lambda: rig.module.sim.store.used == 0, what="store emptied")
        n = yield rig.modem.drain_sms()
        assert n == 0 and len(rig.sms) == 2
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_refused_sms_stays_on_module_until_accepted(net):
    phone = net.add_remote_phone(PHONE)
    rig = yield registered(net, "quectel")
    try:
        refused = []
        rig.sms_result = lambda s: (refused.append(s), defer.fail(RuntimeError("db down")))[1]
        phone.send_sms(rig.module.sim.msisdn, "keep me")
        yield wait_until(lambda: refused, what="offered once")
        yield sleep(0.1)
        assert rig.module.sim.store.used == 1
        rig.sms_result = None
        yield rig.modem.drain_sms()
        yield wait_until(lambda: rig.module.sim.store.used == 0)
        assert [s.text for s in rig.sms] == ["keep me"]
        assert rig.sms[0].dedupe_key == refused[0].dedupe_key
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_full_sim_store_is_drained(net):
    rig = yield booted(net, "quectel")
    try:
        yield rig.modem.initialise()
        yield rig.modem.read_sim_identity()
        store = rig.module.sim.store
        from datetime import datetime, timezone
        for i in range(store.capacity):
            hexpdu, n = pdu.encode_deliver(PHONE, f"stored {i}",
                                           datetime(2024, 1, 1, 0, 0, i % 60, tzinfo=timezone.utc))[0]
            store.add(1, hexpdu, n)
        assert store.full
        count = yield rig.modem.drain_sms()
        assert count == store.capacity
        yield wait_until(lambda: store.used == 0, what="store drained")
        assert sorted(s.text for s in rig.sms) == sorted(f"stored {i}" for i in range(store.capacity))
        assert rig.of(model.SmsStoreFull)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_urc_between_prompt_and_cmgs(net):
    net.add_remote_phone(PHONE)
    rig = yield registered(net, "quectel")
    try:
        rig.module.faults.apply("urc_mid", count=1, text='+CMTI: "SM",7')
        refs = yield rig.modem.send_sms(PHONE, "hello")
        assert len(refs) == 1 and refs[0] >= 0
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_cms_and_cme_errors_and_garbage(net):
    net.add_remote_phone(PHONE)
    rig = yield registered(net, "quectel")
    try:
        rig.module.faults.apply("error", command="+CMGS", reply="+CMS ERROR: 332")
        with pytest.raises(SmsSendError) as info:
            yield rig.modem.send_sms(PHONE, "x" * 200)
        assert info.value.failed_part == 1 and info.value.references == []
        assert isinstance(info.value.cause, at.CmsError) and info.value.cause.code == 332
        rig.module.faults.apply("error", command="+CSQ", reply="+CME ERROR: 100")
        with pytest.raises(at.CmeError):
            yield rig.modem.signal()
        rig.module.faults.apply("garbage", count=2, length=40)
        assert (yield rig.modem.signal()).rssi == rig.module.rssi
        assert (yield rig.modem.signal()).rssi == rig.module.rssi
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_timeout_on_silent_module(net):
    rig = yield booted(net, "quectel")
    try:
        yield rig.modem.initialise()
        rig.engine.timeouts["quick"] = 0.2
        rig.engine.late_grace = 0.05
        rig.module.faults.apply("silent", on=True)
        with pytest.raises(at.AtTimeout):
            yield rig.modem.cmd("AT", kind="quick")
        rig.module.faults.apply("clear")
        yield sleep(0.1)
        yield rig.modem.cmd("AT", kind="quick")
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_outgoing_call_dtmf_and_hangup(net, dialect):
    phone = net.add_remote_phone(PHONE, answer_after=0.05)
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        m.call_poll_interval = 0.05
        yield m.initialise()
        yield wait_until(lambda: rig.module.registered)
        call = yield m.dial(PHONE)
        assert call.direction == "out" and call.number == PHONE
        yield wait_until(lambda: any(c.state == "active" for c in m.calls), what="answered")
        yield m.send_dtmf("12#")
        yield wait_until(lambda: "".join(phone.received_dtmf) == "12#", what="DTMF at phone")
        yield m.hangup()
        yield wait_until(lambda: rig.of(model.CallEnded), what="ended")
        ended = rig.of(model.CallEnded)[0]
        assert ended.cause == 16 and m.calls == ()
        states = [e.call.state for e in rig.of(model.CallStateChanged)]
        assert "active" in states
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_busy_callee_end_cause(net):
    net.add_remote_phone(PHONE, busy=True)
    rig = yield booted(net, "quectel")
    try:
        rig.modem.call_poll_interval = 0.05
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered)
        try:
            yield rig.modem.dial(PHONE)
        except at.CallFailed as exc:
            assert exc.result == "BUSY"
        yield wait_until(lambda: rig.of(model.CallEnded) or rig.modem.calls == (), what="ended")
        ended = rig.of(model.CallEnded)
        if ended:
            assert ended[0].cause == 17
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_incoming_call_answer_and_dtmf_receive(net, dialect):
    phone = net.add_remote_phone(PHONE)
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        m.call_poll_interval = 0.05
        yield m.initialise()
        yield wait_until(lambda: rig.module.registered)
        phone.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), what="incoming")
        inc = rig.of(model.IncomingCall)[0]
        assert inc.call.number == PHONE and not inc.waiting
        yield m.answer()
        yield wait_until(lambda: any(c.state == "active" for c in m.calls), what="active")
        phone.send_dtmf("5*")
        yield wait_until(lambda: "".join(e.digit for e in rig.of(model.DtmfReceived)) == "5*",
                         what="DTMF received")
        phone.hangup()
        yield wait_until(lambda: rig.of(model.CallEnded), what="remote hangup")
        assert rig.of(model.CallEnded)[0].cause == 16
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_call_waiting_hold_and_swap(net):
    p1 = net.add_remote_phone(PHONE)
    p2 = net.add_remote_phone("+15550002")
    rig = yield booted(net, "quectel")
    try:
        m = rig.modem
        m.call_poll_interval = 0.05
        yield m.initialise()
        yield m.set_call_waiting(True)
        yield wait_until(lambda: rig.module.registered)
        p1.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall))
        yield m.answer()
        yield wait_until(lambda: any(c.state == "active" for c in m.calls))
        p2.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: any(e.waiting for e in rig.of(model.IncomingCall)), what="waiting")
        yield m.hold_and_accept()
        yield wait_until(lambda: sorted(c.state for c in m.calls) == ["active", "held"], what="held")
        active = [c for c in m.calls if c.state == "active"][0]
        assert active.number == "+15550002"
        yield m.swap()
        yield wait_until(lambda: [c.number for c in m.calls if c.state == "active"] == [PHONE],
                         what="swapped")
        held = [c for c in m.calls if c.state == "held"][0]
        yield m.hangup(held.id)  # AT+CHLD=1<x>: only that call
        yield wait_until(lambda: [c.number for c in m.calls] == [PHONE], what="one left")
        p2.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: any(c.state == "waiting" for c in m.calls), what="waiting again")
        yield m.release_held()  # AT+CHLD=0 rejects the waiting call (UDUB)
        yield wait_until(lambda: [c.state for c in m.calls] == ["active"], what="rejected")
        yield m.hangup()
        yield wait_until(lambda: m.calls == (), what="all ended")
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_gains(net):
    rig = yield booted(net, "quectel")
    try:
        yield rig.modem.initialise()
        yield rig.modem.set_gains(mic=20000, speaker=30000)
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_ussd_session(net, dialect):
    rig = yield registered(net, dialect)
    try:
        reply = yield rig.modem.ussd("*100#")
        assert "Balance" in reply.text or "balance" in reply.text.lower()
        menu = yield rig.modem.ussd("*111#")
        assert menu.session_open and "1. Balance" in menu.text
        answer = yield rig.modem.ussd_reply("2")
        assert rig.module.sim.msisdn.lstrip("+")[-6:] in answer.text
        yield rig.modem.ussd("*111#")
        yield rig.modem.ussd_cancel()
        ucs2 = yield rig.modem.ussd("*123#")
        assert "余额" in ucs2.text and "😀" in ucs2.text
        with pytest.raises(at.BadArgument):
            rig.modem.ussd('*100#",AT')
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_http_access_test(net, dialect):
    """F-509 through the module: Quectel QHTTPURL/QHTTPGET, SIMCom HTTPINIT/HTTPPARA/
    HTTPACTION/HTTPTERM (SIM7500/SIM7600/SIM7800 HTTP(S) AT Command Manual)."""
    rig = yield registered(net, dialect)
    try:
        result = yield rig.modem.http_test("http://example.com/")
        assert result == model.HttpResult(200, len(DEFAULT_BODY.encode()))
        # a configured non-200 answer is the server's status, passed through
        net.http_responses["http://example.com/missing"] = (404, "gone")
        result = yield rig.modem.http_test("http://example.com/missing")
        assert result == model.HttpResult(404, 4)
        assert [(e["url"], e["status"]) for e in net.events if e.get("kind") == "http"][-1] \
            == ("http://example.com/missing", 404)
        with pytest.raises(ValueError):
            yield rig.modem.http_test('http://x/"\r\nAT+CFUN=0')
        if dialect == "simcom":
            assert rig.module.http_session is False  # HTTPTERM after every test
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", ["quectel", "simcom"])
def test_http_access_test_timeout_and_module_errors(net, dialect):
    """A server that never answers ends in AtTimeout after our timeout, leaves nothing
    pending, and the next test still works; a module-side failure (no network, a
    refused command) is status 0 or the command's error, never a hang."""
    rig = yield registered(net, dialect)
    try:
        net.http_responses["http://slow.example/"] = (None, "")
        with pytest.raises(at.AtTimeout):
            yield rig.modem.http_test("http://slow.example/", timeout=0.3)
        assert not any(rig.modem._urc_waiters.values())
        if dialect == "simcom":
            yield wait_until(lambda: rig.module.http_session is False, what="HTTPTERM")
        result = yield rig.modem.http_test("http://example.com/", timeout=5)
        assert result.status == 200
        # the action command itself refused: the error surfaces, the waiter is dropped
        action = "+QHTTPGET" if dialect == "quectel" else "+HTTPACTION"
        rig.module.faults.apply("error", command=action, reply="+CME ERROR: 3")
        with pytest.raises(at.CmeError):
            yield rig.modem.http_test("http://example.com/", timeout=5)
        assert not any(rig.modem._urc_waiters.values())
        # no data connection: the module's own error code (Quectel <err>, SIMCom 7xx)
        net.set_coverage(rig.module, False)
        result = yield rig.modem.http_test("http://example.com/", timeout=5)
        assert result == model.HttpResult(0, None)
        if dialect == "simcom":
            assert rig.module.http_session is False
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_unplug_during_call_ends_call_and_fails_commands(net):
    net.add_remote_phone(PHONE, answer_after=0.05)
    rig = yield booted(net, "quectel")
    try:
        rig.modem.call_poll_interval = 0.05
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered)
        yield rig.modem.dial(PHONE)
        yield wait_until(lambda: any(c.state == "active" for c in rig.modem.calls))
        rig.module.unplug()
        yield wait_until(lambda: rig.of(model.PortLost), what="port lost")
        assert rig.of(model.CallEnded)[0].text == "module lost"
        with pytest.raises(at.PortClosed):
            yield rig.modem.signal()
    finally:
        yield rig.close()
