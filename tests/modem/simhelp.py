"""Helpers for driving the modem layer through simulator ptys (real reactor)."""

from __future__ import annotations

from twisted.internet import defer, reactor, task

from goip_tw.modem import at
from goip_tw.modem.api import Modem
from goip_tw.simulator.network import Network

PHONE = "+15550001"


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def wait_until(pred, timeout=5.0, step=0.01, what="condition"):
    """Poll ``pred`` on the real reactor (ptys need real time); bounded."""
    for _ in range(int(timeout / step) + 1):
        if pred():
            return True
        yield sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s")


def make_network(link_dir=None, **kw):
    kw.setdefault("boot_delay", 0.02)
    kw.setdefault("reg_delay", 0.05)
    return Network(reactor, link_dir=link_dir, **kw)


class Rig:
    """One simulated module with our engine + Modem on its AT pty."""

    def __init__(self, net, module, name="t"):
        self.net = net
        self.module = module
        self.engine = at.AtEngine(reactor, name=name)
        self.port = at.open_serial(reactor, module.at_path, self.engine)
        self.modem = Modem(self.engine, reactor, name=name)
        self.events = []
        self.sms = []
        self.reports = []
        self.modem.add_observer(self.events.append)
        self.modem.sms_handler = self._sms
        self.modem.report_handler = self._report
        self.sms_result = None  # set to a Failure-producing callable to refuse

    def _sms(self, sms):
        if self.sms_result is not None:
            return self.sms_result(sms)
        self.sms.append(sms)
        return defer.succeed(None)

    def _report(self, rep):
        self.reports.append(rep)
        return defer.succeed(None)

    def of(self, cls):
        return [e for e in self.events if isinstance(e, cls)]

    @defer.inlineCallbacks
    def close(self):
        self.modem.stop()
        if self.engine.connected:
            lost = defer.Deferred()
            self.engine.add_close_observer(lambda r: lost.callback(None))
            self.engine.close()
            yield lost


@defer.inlineCallbacks
def booted(net, dialect="quectel", **kw):
    module = net.add_module(dialect, **kw)
    if not net.running:
        net.start()
    else:
        module.start()
    yield wait_until(lambda: module.powered, what="module power")
    yield sleep(3 * net.boot_delay + 0.05)  # past the simulated boot (RDY)
    rig = Rig(net, module, name=f"{dialect}{module.number}")
    return rig


@defer.inlineCallbacks
def registered(net, dialect="quectel", **kw):
    """A booted rig whose Modem is initialised and whose module has registered."""
    rig = yield booted(net, dialect, **kw)
    try:
        yield rig.modem.initialise()
        yield wait_until(lambda: rig.module.registered, what="registered")
    except BaseException:
        yield rig.close()
        raise
    return rig
