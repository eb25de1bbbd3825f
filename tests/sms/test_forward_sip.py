"""F-496 SIP MESSAGE forward: exact body, retried until a 2xx, durable across restart."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from goip_tw.sms.forward import ForwardRules, Forwarder, mobile_text, sip_body, sip_sender
from goip_tw.sms.inbound import InboundSms
from tests.sms.inbound_support import flush, open_store, part, store  # noqa: F401


class FakeSip:
    """Same signature as goip_tw.sip.service send_message: Deferred[int] final code."""

    def __init__(self, codes=()):
        self.codes = list(codes)
        self.sent = []

    def send_message(self, target, body, *, from_user=None,
                     content_type="text/plain;charset=UTF-8", line=None):
        self.sent.append((target, body, from_user))
        code = self.codes.pop(0) if self.codes else 200
        if code is None:
            return defer.fail(TimeoutError("408 transaction timeout"))
        return defer.succeed(code)


def build(store, sip, clock, **rules):
    rules = ForwardRules(**({"sip_target": "sip:101@192.168.2.2:6060", "sip_from_user": "8001"}
                            | rules))
    fwd = Forwarder(store, clock, rules, {"sip": sip_sender(sip, rules.sip_from_user)},
                    base_delay=10, max_delay=40)
    inbound = InboundSms(store, clock, planner=fwd)
    return inbound, fwd


def test_formats_are_exactly_the_manuals():
    assert sip_body("+8613670128297", 1, "你好") == "+8613670128297\n(L1)你好"
    assert mobile_text("+8613670128297", 1, "你好") == "L1,+8613670128297>你好"


@pytest_twisted.inlineCallbacks
def test_message_body_and_from_user(store):
    sip, clock = FakeSip(), Clock()
    inbound, fwd = build(store, sip, clock)
    yield fwd.start()
    yield inbound.part_received(part("你好 😀", line=3))
    clock.advance(0)
    yield flush(store)
    assert sip.sent == [("sip:101@192.168.2.2:6060",
                         "+8613670128297\n(L3)你好 😀".encode("utf-8"), "8001")]
    rows = yield store.query("SELECT state, attempts FROM sms_forward")
    assert [tuple(r) for r in rows] == [("done", 1)]
    fwd.stop()
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_retried_with_backoff_until_accepted(store):
    sip, clock = FakeSip([503, None, 404]), Clock()
    inbound, fwd = build(store, sip, clock)
    yield fwd.start()
    yield inbound.part_received(part("x"))
    for delay in (0, 10, 20, 40):
        clock.advance(delay)
        yield flush(store)
        yield flush(store)
    assert len(sip.sent) == 4
    rows = yield store.query("SELECT state, attempts, last_error FROM sms_forward")
    assert [tuple(r) for r in rows] == [("done", 4, "")]
    fwd.stop()


@pytest_twisted.inlineCallbacks
def test_pending_forward_survives_restart(tmp_path):
    path = tmp_path / "gw.sqlite"
    s1 = yield open_store(path)
    clock = Clock()
    down = FakeSip([503])
    inbound, fwd = build(s1, down, clock)
    yield fwd.start()
    yield inbound.part_received(part("after restart"))
    clock.advance(0)
    yield flush(s1)
    yield flush(s1)
    fwd.stop()
    yield s1.stop()
    s2 = yield open_store(path)
    try:
        up = FakeSip()
        _, fwd2 = build(s2, up, clock)
        yield fwd2.start()
        clock.advance(10)
        yield flush(s2)
        assert [b for _, b, _ in up.sent] == [b"+8613670128297\n(L1)after restart"]
        fwd2.stop()
    finally:
        yield s2.stop()


@pytest_twisted.inlineCallbacks
def test_gives_up_after_max_age(store):
    sip, clock = FakeSip([500] * 100), Clock()
    inbound, fwd = build(store, sip, clock)
    fwd.max_age = 100
    yield fwd.start()
    yield inbound.part_received(part("x"))
    for _ in range(10):
        clock.advance(40)
        yield flush(store)
        yield flush(store)
    rows = yield store.query("SELECT state, last_error FROM sms_forward")
    assert [tuple(r) for r in rows] == [("failed", "SIP 500")]
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_only_selected_lines_forward(store):
    sip, clock = FakeSip(), Clock()
    inbound, fwd = build(store, sip, clock, lines=(2,))
    yield fwd.start()
    yield inbound.part_received(part("on line 1", line=1))
    yield inbound.part_received(part("on line 2", line=2))
    clock.advance(0)
    yield flush(store)
    assert [b for _, b, _ in sip.sent] == [b"+8613670128297\n(L2)on line 2"]
    fwd.stop()


class MessageSink:
    """A SIP UAS on 127.0.0.1/UDP that answers every request with a fixed status and
    keeps the raw requests (RFC 3261 §8.2.6: Via, From, To+tag, Call-ID, CSeq)."""

    def __init__(self, status=200):
        from twisted.internet.protocol import DatagramProtocol

        sink = self

        class Proto(DatagramProtocol):
            def datagramReceived(self, data, addr):
                sink.requests.append(data)
                head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                keep = [h for h in head[1:] if h.split(b":", 1)[0].strip().lower() in
                        (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq")]
                keep = [h + b";tag=sink" if h.lower().startswith((b"to:", b"t:")) else h
                        for h in keep]
                code = sink.statuses.pop(0) if sink.statuses else 200
                self.transport.write(b"SIP/2.0 %d X\r\n" % code + b"\r\n".join(keep)
                                     + b"\r\nContent-Length: 0\r\n\r\n", addr)

        self.requests = []
        self.statuses = [] if status == 200 else [status]
        self.proto = Proto()

    def listen(self, reactor):
        self.port = reactor.listenUDP(0, self.proto, interface="127.0.0.1")
        return self.port.getHost().port


@pytest_twisted.inlineCallbacks
def test_real_sip_stack_delivers_the_message(store):
    """Our SipService sends the forward over UDP to a UAS on loopback."""
    import attrs
    from twisted.internet import reactor

    from goip_tw.config.model import default_config
    from goip_tw.sip.service import SipService
    from tests.peers.harness import free_port

    cfg = default_config()
    sip_cfg = attrs.evolve(cfg.sip, bind_address="127.0.0.1", local_port=free_port(), tcp=False)
    svc = SipService(reactor, sip_cfg, cfg.voip, 1)
    sink = MessageSink(status=503)
    port = sink.listen(reactor)
    svc.startService()
    try:
        clock = Clock()
        rules = ForwardRules(sip_target=f"sip:101@127.0.0.1:{port}", sip_from_user="8001")
        fwd = Forwarder(store, clock, rules, {"sip": sip_sender(svc, "8001")}, base_delay=10)
        inbound = InboundSms(store, clock, planner=fwd)
        yield fwd.start()
        yield inbound.part_received(part("你好", line=1))
        clock.advance(0)
        from tests.modem.simhelp import wait_until
        from tests.sms.test_forward_email import wait_for_row

        yield wait_for_row(store, lambda r: r["attempts"] == 1)
        # seen committed is not yet re-armed (the writer hands results over after)
        yield wait_until(clock.getDelayedCalls, what="the retry armed")
        clock.advance(10)
        rows = yield wait_for_row(store, lambda r: r["state"] == "done")
        assert tuple(rows[0]) == ("done", 2)
        req = sink.requests[-1]
        head, _, body = req.partition(b"\r\n\r\n")
        assert head.startswith(b"MESSAGE sip:101@127.0.0.1:%d SIP/2.0" % port)
        assert body == "+8613670128297\n(L1)你好".encode()
        from_line = [h for h in head.split(b"\r\n") if h.lower().startswith((b"from:", b"f:"))][0]
        assert b"sip:8001@" in from_line
        fwd.stop()
    finally:
        yield svc.stopService()
        yield sink.port.stopListening()
