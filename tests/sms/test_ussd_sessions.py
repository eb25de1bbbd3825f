"""F-504 USSD sessions: through the simulator's menus on real ptys, and edge cases
with a fake modem of the same signature."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.modem.model import UssdReply
from goip_tw.sms.ussd import UssdSessions
from tests.sms.inbound_support import net  # noqa: F401
from tests.modem.simhelp import booted, wait_until


@pytest_twisted.inlineCallbacks
def test_menu_send_continue_and_cancel_on_two_lines(net):
    rigs = []
    try:
        for _ in range(2):
            rig = yield booted(net, "quectel")
            rigs.append(rig)
            yield rig.modem.initialise()
            yield wait_until(lambda: rig.module.registered, what="registration")
        clock = Clock()
        seen = []
        ussd = UssdSessions(clock, {1: rigs[0].modem, 2: rigs[1].modem}.get, idle_timeout=60)
        ussd.add_listener(seen.append)
        results = yield ussd.send([1, 2], "*111#")
        assert {l: r.status for l, r in results.items()} == {1: "open", 2: "open"}
        assert results[1].text.startswith("Main menu")
        number = yield ussd.reply(1, "2")
        assert number.status == "done"
        assert rigs[0].module.sim.msisdn.lstrip("+") in number.text.replace("+", "")
        cancelled = yield ussd.cancel(2)
        assert cancelled.status == "cancelled" and ussd.state(2).status == "cancelled"
        refused = yield ussd.send([1], '*100#",AT')
        assert refused[1].status == "error" and refused[1].error.startswith("code:")
        assert {r.line for r in seen} == {1, 2} and len(seen) == 5
        assert clock.getDelayedCalls() == []
    finally:
        for rig in rigs:
            yield rig.close()


class FakeModem:
    def __init__(self):
        self.calls = []
        self.pending = None

    def ussd(self, code):
        self.calls.append(("ussd", code))
        self.pending = defer.Deferred()
        return self.pending

    def ussd_reply(self, answer):
        self.calls.append(("reply", answer))
        return defer.succeed(UssdReply(0, "bye"))

    def ussd_cancel(self):
        self.calls.append(("cancel",))
        return defer.succeed(None)


def test_idle_open_session_is_cancelled():
    clock, modem = Clock(), FakeModem()
    ussd = UssdSessions(clock, {1: modem}.get, idle_timeout=30)
    d = ussd.send([1], "*111#")
    modem.pending.callback(UssdReply(1, "menu"))
    assert d.result[1].session_open
    clock.advance(30)
    assert modem.calls[-1] == ("cancel",) and ussd.state(1).status == "cancelled"
    assert clock.getDelayedCalls() == []


def test_reply_in_time_keeps_session_then_done():
    clock, modem = Clock(), FakeModem()
    ussd = UssdSessions(clock, {1: modem}.get, idle_timeout=30)
    ussd.send([1], "*111#")
    modem.pending.callback(UssdReply(1, "menu"))
    clock.advance(29)
    r = ussd.reply(1, "1").result
    assert r.status == "done" and r.text == "bye"
    clock.advance(60)
    assert ("cancel",) not in modem.calls and clock.getDelayedCalls() == []


def test_busy_absent_line_and_reply_without_session():
    clock, modem = Clock(), FakeModem()
    ussd = UssdSessions(clock, {1: modem}.get)
    ussd.send([1], "*100#")
    assert ussd.send([1], "*100#").result[1].status == "busy"
    assert ussd.send([7], "*100#").result[7].error == "line: line 7 is not available"
    assert ussd.reply(3, "1").result.status == "error"
    modem.pending.errback(TimeoutError("no +CUSD"))
    assert ussd.state(1).status == "timeout"


def test_network_initiated_notification():
    clock, modem = Clock(), FakeModem()
    ussd = UssdSessions(clock, {1: modem}.get, idle_timeout=5)
    r = ussd.notification(1, UssdReply(1, "Reply 1 to accept"))
    assert r.session_open
    assert ussd.reply(1, "1").result.text == "bye"
    assert clock.getDelayedCalls() == []
