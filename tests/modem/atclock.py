"""An AT engine on a Clock and a StringTransport, for transcript tests."""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from goip_tw.modem import at


def clock_engine(**kw):
    """(engine, clock): the engine records URCs in ``engine.urc_log``."""
    clock = Clock()
    e = at.AtEngine(clock, **kw)
    e.makeConnection(StringTransport())
    e.urc_log = []
    e.add_urc_observer(e.urc_log.append)
    return e, clock


def close_engine(e, clock):
    e.connectionLost(None)
    assert not clock.getDelayedCalls()


def sent(e) -> bytes:
    """What the engine wrote since the last call."""
    v = e.transport.value()
    e.transport.clear()
    return v


def result(d):
    """The Deferred's result if it already fired, else None."""
    out = []
    d.addBoth(out.append)
    return out[0] if out else None
