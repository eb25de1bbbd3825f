"""F-492 GoIP SMS-server client against a fake SMS server on 127.0.0.1 UDP."""

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.task import Clock

from goip_tw.sms.goip_udp import GoipLineClient
from goip_tw.sms.inbound import ReceivedSms
from goip_tw.sms.model import StatusReport
from goip_tw.sms.queue import QueueSettings, SmsQueue
from tests.sms.fakes import FakeLine, make_store, settle


class FakeServer(protocol.DatagramProtocol):
    def __init__(self):
        self.got = []
        self.waiting = None
        self.peer = None

    def datagramReceived(self, data, addr):
        self.peer = addr
        self.got.append(data.decode())
        if self.waiting is not None:
            d, self.waiting = self.waiting, None
            d.callback(data.decode())

    def say(self, text):
        self.transport.write(text.encode(), self.peer)

    def next(self):
        self.waiting = defer.Deferred()
        timer = reactor.callLater(5, lambda: self.waiting and self.waiting.errback(
            TimeoutError("no datagram")))
        return self.waiting.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])


@pytest.fixture
def env(tmp_path, monkeypatch):
    store = make_store(tmp_path / "g.sqlite", reactor, monkeypatch)
    clock = Clock()
    net = []
    queue = SmsQueue(store, clock, settings=QueueSettings())
    queue.add_line(FakeLine(1, net))
    pytest_twisted.blockon(queue.startService())
    server = FakeServer()
    sport = reactor.listenUDP(0, server, interface="127.0.0.1")
    client = GoipLineClient(1, "goip1", "pw", ("127.0.0.1", sport.getHost().port), queue, clock,
                            status=lambda: {"own_number": "+4917000001", "signal": 21,
                                            "state": "registered"}, keepalive=30)
    cport = reactor.listenUDP(0, client, interface="127.0.0.1")
    yield store, clock, queue, server, client, net
    pytest_twisted.blockon(cport.stopListening())
    pytest_twisted.blockon(sport.stopListening())
    queue.stopService()
    pytest_twisted.blockon(store.stop())
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


@pytest_twisted.inlineCallbacks
def test_keepalive_register_send_and_deliver(env):
    store, clock, queue, server, client, net = env
    first = server.got[0] if server.got else (yield server.next())
    assert first.startswith("req:1;id:goip1;pass:pw;num:+4917000001;signal:21;gsm_status:LOGIN;")
    server.say("reg:1;status:200;")
    server.say("MSG 77 11 hello world")
    assert (yield server.next()) == "PASSWORD 77"
    assert client.registered
    server.say("PASSWORD 77 wrong")
    assert (yield server.next()) == "ERROR 77 wrong password"
    server.say("PASSWORD 77 pw")
    assert (yield server.next()) == "SEND 77"
    server.say("SEND 77 1 +4915550001")
    ok = yield server.next()
    assert ok.startswith("OK 77 1 ")
    sms_no = int(ok.split()[-1])
    server.say("SEND 77 1 +4915550001")  # a retransmitted SEND queues nothing new
    assert (yield server.next()) == f"OK 77 1 {sms_no}"
    server.say("DONE 77")
    assert (yield server.next()) == "DONE 77"
    yield settle(store, clock)
    assert [(n[1], n[2]) for n in net] == [("+4915550001", "hello world")]
    yield queue.on_status_report(StatusReport(1, net[0][4], True))
    deliver = yield server.next()
    assert deliver.endswith(f";sms_no:{sms_no};state:0;num:+4915550001")
    recvid = deliver.split(";")[0].split(":")[1]
    clock.advance(5)  # not acknowledged yet: repeated
    assert (yield server.next()) == deliver
    server.say(f"DELIVER {recvid} OK")
    yield settle(store, clock)
    n = len(server.got)
    clock.advance(5)
    yield settle(store, clock)
    assert len(server.got) == n


@pytest_twisted.inlineCallbacks
def test_receive_event_and_bad_input(env):
    store, clock, queue, server, client, net = env
    if not server.got:
        yield server.next()
    client.sms_received(ReceivedSms(id=1, line=2, sender="+1", text="other line", scts=""))
    client.sms_received(ReceivedSms(id=2, line=1, sender="+4917099", text="hi\nthere", scts=""))
    got = yield server.next()
    assert got.startswith("RECEIVE:") and got.endswith(";id:goip1;password:pw;srcnum:+4917099;msg:hi there")
    server.say("RECEIVE " + got.split(";")[0].split(":")[1] + " OK")
    server.say("SEND 5 1 +4915550001")  # no MSG/PASSWORD first
    assert (yield server.next()) == "ERROR 5 1 not authorised"
    server.say("\xff garbage")
    server.say("MSG x")
    server.say("PASSWORD 999 pw")
    assert (yield server.next()) == "ERROR 999 no message"
    yield settle(store, clock)
    assert net == []


@pytest_twisted.inlineCallbacks
def test_service_resolves_a_host_name_and_opens_one_client_per_line(tmp_path):
    """GoipSmsService: 'localhost' resolves; each line gets its own socket and ID."""
    from goip_tw.config.sections.sms import SmsConfig
    from goip_tw.sms.goip_udp import GoipSmsService

    server = FakeServer()
    sport = reactor.listenUDP(0, server, interface="127.0.0.1")

    class Line:
        def __init__(self, n):
            self.number = n

        def status(self):
            return {"state": "registered"}

    class Modems:
        lines = [Line(1), Line(2)]

        def line(self, n):
            return self.lines[n - 1]

    class Sms:
        queue = type("Q", (), {"subscribe": lambda self, fn: (lambda: None)})()
        observers = []
        gateway = type("G", (), {"subsystem": lambda self, name: Modems()})()

        def add_received_observer(self, obs):
            self.observers.append(obs)

    cfg = SmsConfig(server_enabled=True, server_host="localhost",
                    server_port=sport.getHost().port, server_id="gw", server_password="pw")
    svc = GoipSmsService(Sms(), cfg, reactor)
    svc.startService()
    try:
        for _ in range(100):
            if len({g.split(";")[1] for g in server.got}) == 2:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert {g.split(";")[1] for g in server.got} == {"id:gw1", "id:gw2"}
        assert len({c.transport.getHost().port for c in svc.clients}) == 2
    finally:
        svc.stopService()
        yield sport.stopListening()
