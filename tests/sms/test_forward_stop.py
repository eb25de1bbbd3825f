"""A forward attempt still in flight when the service stops: nothing is written
after the store closes (no "recording the result failed"), and the job is tried
again at the next start."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from goip_tw.sms.forward import ForwardRules, Forwarder
from goip_tw.sms.inbound import InboundSms
from tests.sms.inbound_support import flush, open_store, part


def _forward_rows(store):
    d = store.query("SELECT state, attempts FROM sms_forward ORDER BY id")
    return d.addCallback(lambda rows: [tuple(r) for r in rows])


@pytest_twisted.inlineCallbacks
def test_stop_cancels_in_flight_forward_and_it_runs_after_restart(tmp_path):
    path = tmp_path / "gw.sqlite"
    store = yield open_store(path)
    clock, held = Clock(), []

    def slow_sip(job):
        d = defer.Deferred()  # the far side has not answered yet
        held.append(d)
        return d

    def fast_mail(job):
        return defer.succeed("250")

    failures = []

    def observe(event):
        if event.get("log_failure") is not None or "failed" in event.get("log_format", ""):
            failures.append(event)
    globalLogPublisher.addObserver(observe)
    try:
        rules = ForwardRules(sip_target="101", email_to=("a@example.test",))
        fwd = Forwarder(store, clock, rules, {"sip": slow_sip, "email": fast_mail})
        inbound = InboundSms(store, clock, planner=fwd)
        yield fwd.start()
        yield inbound.part_received(part("hello"))
        clock.advance(0)
        yield flush(store)
        assert len(held) == 1
        assert (yield _forward_rows(store)) == [("pending", 0), ("done", 1)]
        # Service stop: the forwarder stops, then the store (GatewayService order).
        fwd.stop()
        inbound.stop()
        assert held[0].called  # cancelled, not left dangling
        yield store.stop()
        held[0].callback(200)  # a late answer after the stop is ignored quietly
        clock.advance(3600)
        assert clock.getDelayedCalls() == []
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []

    # Next start: the job is still pending and goes out now.
    store = yield open_store(path)
    try:
        assert (yield _forward_rows(store)) == [("pending", 0), ("done", 1)]
        clock2, sent = Clock(), []
        fwd2 = Forwarder(store, clock2, rules, {
            "sip": lambda job: sent.append((job.target, job.text)) or defer.succeed(200),
            "email": fast_mail})
        yield fwd2.start()
        clock2.advance(0)
        yield flush(store)
        assert sent == [("101", "hello")]
        assert (yield _forward_rows(store)) == [("done", 1), ("done", 1)]
        fwd2.stop()
        assert clock2.getDelayedCalls() == []
    finally:
        yield store.stop()
