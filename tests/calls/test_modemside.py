"""ModemLines matches modem events to calls by CallInfo.serial, not by the module's
call index (which the module hands to the next call as soon as one is released)."""

from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.calls.modemside import ModemLines
from goip_tw.modem import model


class FakeModem:
    """The Modem surface ModemLines uses; dial/hangup record and return Deferreds."""

    def __init__(self):
        self.observers = []
        self.calls = ()
        self.log = []
        self.dials = []

    def add_observer(self, fn):
        self.observers.append(fn)

    def remove_observer(self, fn):
        self.observers.remove(fn)

    def emit(self, event):
        for fn in list(self.observers):
            fn(event)

    def dial(self, number):
        self.log.append(("dial", number))
        d = defer.Deferred()
        self.dials.append(d)
        return d

    def hangup(self, call_id=None):
        self.log.append(("hangup", call_id))
        return defer.succeed(None)


class Listener:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def mobile_alerting(self, call):
        self.log.append((self.name, "alerting"))

    def mobile_connected(self, call):
        self.log.append((self.name, "connected"))

    def mobile_ended(self, call, cause, text):
        self.log.append((self.name, "ended", cause))

    def mobile_dtmf(self, call, digit):
        self.log.append((self.name, "dtmf", digit))


def out_call(state, serial, index=1):
    return model.CallInfo(index, "out", state, "+15550001", serial=serial)


def setup():
    clock = Clock()
    lines = ModemLines(clock)
    modem = FakeModem()
    lines.add_line(1, modem)
    return clock, lines, modem, []


def test_a_reused_index_does_not_end_the_next_call():
    clock, lines, modem, log = setup()
    a = lines.dial(1, "+15550001", Listener("a", log))
    modem.emit(model.CallStateChanged(out_call("dialing", 7), None))
    modem.dials[0].callback(out_call("dialing", 7))
    modem.emit(model.CallStateChanged(out_call("active", 7), "dialing"))
    a.hangup()  # the SIP side hung up: forgotten at once
    assert modem.log[-1] == ("hangup", 1)
    b = lines.dial(1, "+15550001", Listener("b", log))
    # the module already gave index 1 to the new call; A's release comes after
    modem.emit(model.CallStateChanged(out_call("dialing", 8), None))
    modem.dials[1].callback(out_call("dialing", 8))
    modem.emit(model.CallEnded(out_call("active", 7), 16, "normal"))
    modem.emit(model.CallStateChanged(out_call("alerting", 8), "dialing"))
    modem.emit(model.CallStateChanged(out_call("active", 8), "alerting"))
    assert log == [("a", "connected"), ("b", "alerting"), ("b", "connected")]
    modem.emit(model.CallEnded(out_call("active", 8), 16, "normal"))
    assert log[-1] == ("b", "ended", 16) and b.ended and a.ended
    assert not clock.getDelayedCalls()


def test_a_forgotten_calls_late_state_is_not_adopted_by_a_pending_dial():
    clock, lines, modem, log = setup()
    a = lines.dial(1, "+15550001", Listener("a", log))
    modem.emit(model.CallStateChanged(out_call("alerting", 3), "dialing"))
    a.hangup()
    lines.dial(1, "+15550002", Listener("b", log))  # not listed by the module yet
    modem.emit(model.CallStateChanged(out_call("active", 3), "alerting"))  # A, late
    modem.emit(model.CallEnded(out_call("active", 3), 16))
    assert log == [("a", "alerting")]
    modem.emit(model.CallStateChanged(out_call("active", 4, index=2), None))
    assert log[-1] == ("b", "connected")


def test_placeholder_from_dial_is_replaced_by_the_listed_call():
    clock, lines, modem, log = setup()
    c = lines.dial(1, "+15550001", Listener("c", log))
    modem.dials[0].callback(model.CallInfo(0, "out", "dialing", "+15550001"))  # serial 0
    assert c.info is None and c.id is None
    modem.emit(model.CallStateChanged(out_call("alerting", 11, index=2), "dialing"))
    assert c.info.serial == 11 and c.id == 2
    modem.emit(model.CallEnded(out_call("alerting", 11, index=2), 17, "busy"))
    assert log == [("c", "alerting"), ("c", "ended", 17)]


def test_incoming_calls_with_the_same_index_stay_apart():
    from goip_tw.calls.modemside import ModemCall

    clock, lines, modem, log = setup()

    class Controller:
        def __init__(self):
            self.calls = []

        def mobile_incoming(self, line, mcall, number):
            mcall.set_listener(Listener(f"in{len(self.calls)}", log))
            self.calls.append(mcall)

    lines.controller = ctl = Controller()
    first = model.CallInfo(1, "in", "incoming", "+15550009", serial=21)
    modem.emit(model.IncomingCall(first))
    modem.emit(model.CallEnded(first, 16))  # the caller gave up
    second = model.CallInfo(1, "in", "incoming", "+15550009", serial=22)
    modem.emit(model.IncomingCall(second))
    modem.emit(model.CallEnded(first, 16))  # a repeated report of the first release
    assert log == [("in0", "ended", 16)]
    assert isinstance(ctl.calls[1], ModemCall) and not ctl.calls[1].ended
