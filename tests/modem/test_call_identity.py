"""Call-state follow-ups (issues 4/7) through simulator ptys, every dialect:

- vendor call-state URCs (Quectel ``+QIND: "ccinfo"``, SIMCom ``+CLCC`` after
  AT+CLCC=1, Huawei ^ORIG/^CONF/^CONN/^CEND) update the call list at once, so a call
  progresses with the AT+CLCC poll set far out of reach;
- a call index the module reuses is a new call, and the old one's release is reported;
- call waiting (+CCWA) is on after initialise() without any further command.
"""

import pytest
import pytest_twisted
from twisted.internet import defer

from goip_tw.modem import model

from .simhelp import PHONE, booted, sleep, wait_until

DIALECTS = ["quectel", "simcom", "huawei"]
#: far beyond every wait below: only URCs can move the call list
NO_POLL = 60.0


def _ready(rig, driver=None):
    rig.modem.call_poll_interval = NO_POLL
    if driver is not None:
        rig.modem.forced_driver = driver
    return rig.modem.initialise()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_outgoing_call_progress_comes_from_urcs(net, dialect):
    phone = net.add_remote_phone(PHONE, answer_after=0.3)
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        yield _ready(rig)
        yield wait_until(lambda: rig.module.registered)
        call = yield m.dial(PHONE)
        assert call.serial > 0
        yield wait_until(lambda: [c.state for c in m.calls] == ["active"], timeout=3.0,
                         what="answer seen without polling")
        states = [e.call.state for e in rig.of(model.CallStateChanged)]
        assert states[-1] == "active" and "alerting" in states
        assert {e.call.serial for e in rig.of(model.CallStateChanged)} == {call.serial}
        phone.hangup()
        yield wait_until(lambda: rig.of(model.CallEnded), timeout=3.0, what="remote hang-up")
        ended = rig.of(model.CallEnded)[0]
        assert ended.call.serial == call.serial and ended.cause == 16 and m.calls == ()
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_incoming_answer_and_release_without_polling(net, dialect):
    phone = net.add_remote_phone(PHONE)
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        yield _ready(rig)
        yield wait_until(lambda: rig.module.registered)
        phone.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), timeout=3.0, what="incoming")
        yield m.answer()
        assert [c.state for c in m.calls] == ["active"]
        phone.hangup()
        yield wait_until(lambda: rig.of(model.CallEnded), timeout=3.0, what="remote hang-up")
        assert m.calls == ()
    finally:
        yield rig.close()


@defer.inlineCallbacks
def _ring_off_and_call_again(net, dialect, second_caller, driver=None):
    """The first caller rings off and a call arrives at once: both reach the module
    while it is busy with a slow command, so one AT+CLCC sees the old call's index
    in use again.  Returns (rig, first IncomingCall)."""
    first = net.add_remote_phone(PHONE)
    second = first if second_caller == PHONE else net.add_remote_phone(second_caller)
    rig = yield booted(net, dialect)
    yield _ready(rig, driver)
    yield wait_until(lambda: rig.module.registered)
    first.dial(rig.module.sim.msisdn)
    yield wait_until(lambda: rig.of(model.IncomingCall), timeout=3.0, what="first call")
    old = rig.of(model.IncomingCall)[0].call
    rig.module.apply_fault("slow", delay=1.0)
    d = rig.modem.signal()  # AT+CSQ answered after 1 s; the module's URCs wait behind it
    yield sleep(0.1)
    rig.module.faults.clear()
    first.hangup()
    second.dial(rig.module.sim.msisdn)  # reaches the module 0.5 s later, index 1 again
    yield d
    yield wait_until(lambda: len(rig.of(model.IncomingCall)) == 2 and rig.of(model.CallEnded),
                     timeout=3.0, what="new call and old release")
    return rig, old


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_same_caller_again_in_a_reused_index_is_a_new_call(net, dialect):
    """Same direction, number and state: only the vendor's release URC tells."""
    rig, old = yield _ring_off_and_call_again(net, dialect, PHONE)
    try:
        ended = rig.of(model.CallEnded)
        new = rig.of(model.IncomingCall)[1].call
        assert [e.call.serial for e in ended] == [old.serial]
        assert new.id == old.id and new.serial != old.serial and new.number == PHONE
        assert [c.serial for c in rig.modem.calls] == [new.serial]
        # the release is reported before the call that reuses the index
        kinds = [type(e).__name__ for e in rig.events
                 if isinstance(e, (model.IncomingCall, model.CallEnded))]
        assert kinds == ["IncomingCall", "CallEnded", "IncomingCall"]
        yield rig.modem.hangup()
        yield wait_until(lambda: len(rig.of(model.CallEnded)) == 2, what="second release")
        assert rig.of(model.CallEnded)[1].call.serial == new.serial
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_other_caller_in_a_reused_index_without_vendor_urcs(net):
    """The 27.007 base driver has no release URC; the number tells the calls apart."""
    rig, old = yield _ring_off_and_call_again(net, "quectel", "+15550002", driver="generic")
    try:
        assert rig.modem.driver.name == "generic"
        assert [e.call.serial for e in rig.of(model.CallEnded)] == [old.serial]
        new = rig.of(model.IncomingCall)[1].call
        assert new.id == old.id and new.number == "+15550002" and new.serial != old.serial
    finally:
        yield rig.modem.hangup()
        yield rig.close()


@pytest_twisted.inlineCallbacks
def test_answered_call_replaced_in_its_index_is_reported_ended(net):
    """An active call whose index shows up as ringing again cannot be the same call."""
    phone = net.add_remote_phone(PHONE)
    rig = yield booted(net, "quectel")
    try:
        m = rig.modem
        yield _ready(rig, "generic")
        yield wait_until(lambda: rig.module.registered)
        phone.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), timeout=3.0)
        yield m.answer()
        old = m.calls[0]
        rig.module.apply_fault("slow", delay=1.0)
        d = m.signal()
        yield sleep(0.1)
        rig.module.faults.clear()
        phone.hangup()
        phone.dial(rig.module.sim.msisdn)
        yield d
        yield wait_until(lambda: len(rig.of(model.IncomingCall)) == 2, timeout=3.0)
        assert [e.call.serial for e in rig.of(model.CallEnded)] == [old.serial]
        assert m.calls[0].state == "incoming" and m.calls[0].serial != old.serial
        yield m.hangup()
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_call_waiting_is_on_after_initialise(net, dialect):
    p1 = net.add_remote_phone(PHONE)
    p2 = net.add_remote_phone("+15550002")
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        yield _ready(rig)
        assert rig.module.settings.ccwa == 1
        yield wait_until(lambda: rig.module.registered)
        p1.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), timeout=3.0)
        yield m.answer()
        p2.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: any(e.waiting for e in rig.of(model.IncomingCall)),
                         timeout=3.0, what="waiting call")
        waiting = [e.call for e in rig.of(model.IncomingCall) if e.waiting][0]
        assert waiting.number == "+15550002" and waiting.state == "waiting"
        assert sorted(c.state for c in m.calls) == ["active", "waiting"]
        yield m.hold_and_accept()
        assert sorted((c.state, c.number) for c in m.calls) == [
            ("active", "+15550002"), ("held", PHONE)]
        yield m.hangup()
        yield wait_until(lambda: m.calls == (), what="all ended")
        assert {e.call.serial for e in rig.of(model.CallEnded)} == {
            e.call.serial for e in rig.of(model.IncomingCall)}
    finally:
        yield rig.close()


@pytest_twisted.inlineCallbacks
@pytest.mark.parametrize("dialect", DIALECTS)
def test_hanging_up_a_waiting_call_refuses_it_busy(net, dialect):
    """F-465 "off": the waiting caller is refused (UDUB, cause 17); the call stays."""
    p1 = net.add_remote_phone(PHONE)
    p2 = net.add_remote_phone("+15550002")
    rig = yield booted(net, dialect)
    try:
        m = rig.modem
        yield _ready(rig)
        yield wait_until(lambda: rig.module.registered)
        p1.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: rig.of(model.IncomingCall), timeout=3.0)
        yield m.answer()
        p2.dial(rig.module.sim.msisdn)
        yield wait_until(lambda: any(e.waiting for e in rig.of(model.IncomingCall)),
                         timeout=3.0, what="waiting call")
        waiting = [e.call for e in rig.of(model.IncomingCall) if e.waiting][0]
        yield m.hangup(waiting.id)
        yield wait_until(lambda: rig.of(model.CallEnded), timeout=3.0, what="refused")
        ended = rig.of(model.CallEnded)[0]
        assert ended.call.serial == waiting.serial and ended.cause == 17
        assert [(c.state, c.number) for c in m.calls] == [("active", PHONE)]
        yield m.hangup()
        yield wait_until(lambda: m.calls == (), what="all ended")
    finally:
        yield rig.close()
