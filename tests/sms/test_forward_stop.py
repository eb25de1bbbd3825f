"""A forward attempt still in flight when the service stops: nothing is written
after the store closes (no "recording the result failed"), and the job is tried
again at the next start."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher

from goip_tw.sms.forward import ForwardRules, Forwarder
from goip_tw.sms.inbound import InboundSms
from goip_tw.sms.mailer import SmtpSettings, send_message
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


class _Silent(Protocol):
    """An SMTP server that accepts the connection and never greets."""

    def connectionMade(self):
        self.factory.conns.append(self)

    def connectionLost(self, reason):
        self.factory.lost.append(reason)


@pytest_twisted.inlineCallbacks
def test_cancelled_e_mail_forward_closes_its_connection(tmp_path):
    """The forwarder's stop cancels an SMTP session waiting for a slow relay: the
    connection closes at once and no SMTP timer is left behind."""
    factory = Factory.forProtocol(_Silent)
    factory.conns, factory.lost = [], []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        settings = SmtpSettings(host="127.0.0.1", port=port.getHost().port,
                                from_addr="gw@example.org", to_addrs=("o@example.org",),
                                security="none", timeout=30)
        before = set(reactor.getDelayedCalls())
        d = send_message(reactor, settings, b"Subject: x\n\nbody\n")
        for _ in range(100):
            if factory.conns:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        assert factory.conns, "the gateway never connected"
        d.cancel()
        with pytest.raises(defer.CancelledError):
            yield d
        for _ in range(100):
            if factory.lost:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        assert factory.lost, "the SMTP connection stayed open"
        left = [c for c in reactor.getDelayedCalls() if c not in before and c.active()
                and c.getTime() > reactor.seconds() + 1]
        assert left == []
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_gateway_stop_with_an_e_mail_forward_in_flight(tmp_path):
    """The whole GatewayService stops while a received SMS's e-mail forward waits for
    a relay that never answers: no "recording the result failed" (nothing is written
    after the store closed) and the forward is still pending for the next start."""
    from goip_tw.config.manager import ConfigManager
    from goip_tw.gateway import GatewayService
    from goip_tw.sms.model import Submission
    from tests.modem.simhelp import wait_until

    factory = Factory.forProtocol(_Silent)
    factory.conns, factory.lost = [], []
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    (tmp_path / "data").mkdir()
    pre = yield open_store(tmp_path / "data" / "goip.sqlite")  # migrated before start
    yield pre.stop()
    overrides = {
        "simulator": {"enabled": "on", "modules": 1, "slots": 1, "reg_delay": 0.05},
        "sms_inbound": {"email_to": ["owner@example.org"], "email_from": "gw@example.org",
                        "smtp_host": "127.0.0.1", "smtp_port": port.getHost().port,
                        "smtp_security": "none"}}
    subsystems = (("simulator", "goip_tw.simulator.service"),
                  ("modems", "goip_tw.modem.service"), ("sms", "goip_tw.sms.service"),
                  ("sms_inbound", "goip_tw.sms.inbound_service"))
    gw = GatewayService(ConfigManager(str(tmp_path / "goip.toml"), overrides),
                        str(tmp_path / "data"), reactor=reactor, subsystems=subsystems)
    failures = []

    def observe(event):
        if event.get("log_failure") is not None:
            failures.append(event)
    globalLogPublisher.addObserver(observe)
    stopped = False
    try:
        gw.startService()
        modems = gw.subsystem("modems")
        yield wait_until(lambda: modems.lines and modems.lines[0].state == "registered",
                         timeout=20, what="line 1 registered")
        sms = gw.subsystem("sms")
        yield sms.queue.ready
        echo = gw.config.simulator.sms_echo_number
        yield sms.queue.submit(Submission(recipient=echo, text="ping", source="web", line=1))
        yield wait_until(lambda: factory.conns, timeout=30,
                         what="e-mail forward in flight")
        stopped = True
        yield defer.maybeDeferred(gw.stopService)
        yield wait_until(lambda: factory.lost, timeout=5,
                         what="the SMTP connection closed by the stop")
    finally:
        globalLogPublisher.removeObserver(observe)
        if not stopped:
            yield defer.maybeDeferred(gw.stopService)
        yield port.stopListening()
        for conn in factory.conns:
            conn.transport.abortConnection()
    assert failures == [], [e.get("log_format") for e in failures]
    store = yield open_store(tmp_path / "data" / "goip.sqlite")
    try:
        assert (yield _forward_rows(store)) == [("pending", 0)]
    finally:
        yield store.stop()
