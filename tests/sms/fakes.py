"""Test helpers: a store on a temp dir, a fake line with the ISmsLine signature, settle()."""

from __future__ import annotations


import pytest_twisted
from twisted.internet import defer
from zope.interface import implementer

from goip_tw.sms.queue import ISmsLine, LineGone, SendError
from goip_tw.store.sqlite import SqliteStore


def make_store(path, reactor, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr("goip_tw.store.migrations.AREA_MODULES", ("goip_tw.sms.schema",))
    s = SqliteStore(str(path), reactor=reactor)
    pytest_twisted.blockon(s.start())
    return s


@implementer(ISmsLine)
class FakeLine:
    """A module on a simulated network: ``network`` records every part that left it.

    ``mr`` plays the SIM's EF_SMSS "last used TP-MR"; ``errors`` are raised by the
    next sends (a SendError or LineGone); ``hold`` keeps the next send pending.
    """

    def __init__(self, number, network, mr=0, knows_mr=True):
        self.number = number
        self.network = network
        self.mr = mr
        self.knows_mr = knows_mr
        self.ok = True
        self.errors: list[Exception] = []
        self.hold = False
        self.held: list[defer.Deferred] = []

    def can_send(self):
        return self.ok

    def send_part(self, recipient, text, concat, report):
        if self.errors:
            error = self.errors.pop(0)
            if isinstance(error, LineGone):
                self.ok = False  # the module is unplugged
            return defer.fail(error)
        self.mr = (self.mr + 1) % 256
        self.network.append((self.number, recipient, text, concat, self.mr))
        if self.hold:
            d = defer.Deferred()
            self.held.append(d)
            return d
        return defer.succeed(self.mr)

    def last_used_mr(self):
        return defer.succeed(self.mr if self.knows_mr else None)


def cms(code):
    return SendError(code, "test")


__all__ = ["FakeLine", "LineGone", "cms", "make_store", "settle"]


@defer.inlineCallbacks
def settle(store, clock, rounds=200):
    """Let queued store work and the callbacks it triggers run to completion.

    Rounds of: fire what ``clock`` has due now, then wait for every write and every
    read queued so far.  A write flush does not order with reads (their own thread),
    so how many rounds a chain needs varies from run to run; it is done when a whole
    round queued no store job and left nothing due (then nothing can happen until
    the test acts). Bounded: fails naming the rounds if the work never settles.
    """
    jobs = _count_jobs(store)
    for _ in range(rounds):
        before = jobs()
        clock.advance(0)
        yield store.write(lambda conn: None)
        yield store.read(lambda conn: None)
        due = [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]
        if jobs() == before + 2 and not due:
            return
    raise AssertionError(f"store work and clock calls still going after {rounds} rounds")


def _count_jobs(store):
    """A function giving how many jobs ``store`` was handed so far (reads and writes)."""
    if getattr(store, "jobs_submitted", None) is None:
        submit = store._submit
        store.jobs_submitted = 0

        def counting(*args):
            store.jobs_submitted += 1
            return submit(*args)

        store._submit = counting
    return lambda: store.jobs_submitted
