"""build_service(gateway): config, line count, F-304 line.state wiring, clean stop."""

import pytest_twisted
from twisted.internet import reactor

from goip_tw.config.model import default_config
from goip_tw.config.sections.sip import SipConfig
from goip_tw.config.sections.voip import SipAccount, VoipConfig
from goip_tw.events import EventBus
from goip_tw.sip.service import SipService, build_service
from tests.peers.harness import free_port


def sip_calls_left() -> list:
    """Active reactor calls owned by goip_tw.sip (timers a stopped service leaked)."""
    def module(call):
        fn = getattr(call.func, "__func__", call.func)
        return getattr(fn, "__module__", "") or ""

    return [c for c in reactor.getDelayedCalls()
            if c.active() and module(c).startswith("goip_tw.sip")]


class FakeLine:
    def __init__(self, number, state):
        self.number, self.state = number, state


class FakeModems:
    def __init__(self, *lines):
        self.lines = list(lines)


class FakeGateway:
    def __init__(self, config, modems):
        self.config = config
        self.reactor = reactor
        self.events = EventBus()
        self._modems = modems

    def subsystem(self, name):
        return self._modems if name == "modems" else None


def per_line_config():
    import attrs

    cfg = default_config()
    voip = VoipConfig(mode="per_line", auto_configure_lines=True, lines=(
        SipAccount(auth_id="101", password="pw", registrar="127.0.0.1:9", expires=60),))
    sip = SipConfig(bind_address="127.0.0.1", local_port=free_port(), tcp=False)
    return attrs.evolve(cfg, voip=voip, sip=sip)


def test_build_service_reads_lines_and_their_mobile_state():
    gw = FakeGateway(per_line_config(), FakeModems(FakeLine(1, "registered"),
                                                   FakeLine(2, "searching")))
    svc = build_service(gw)
    assert svc.name == "sip" and svc.line_count == 2
    assert [p.key for p in svc.plans] == ["line1", "line2"]
    assert svc._line_network == {1: True, 2: False}
    gw.events.publish("line.state", line=2, state="registered", previous="searching",
                      reason="")
    assert svc._line_network[2] is True
    gw.events.publish("line.state", line=1, state="absent", previous="registered",
                      reason="unplugged")
    assert svc._line_network[1] is False and not svc.line_voip_registered(1)


@pytest_twisted.inlineCallbacks
def test_start_and_stop_leave_nothing_behind():
    gw = FakeGateway(per_line_config(), FakeModems(FakeLine(1, "searching")))
    svc = build_service(gw)
    svc.startService()
    assert svc.registrations["line1"].state == "disabled"     # SIM not registered
    assert svc.health_state() == "0/1 registered"
    yield svc.stopService()
    assert svc.transport.ports == {}
    assert sip_calls_left() == []


def test_default_voip_is_secure_and_valid():
    voip = default_config().voip
    assert voip.outgoing_auth == "address_or_password" and not voip.proxy_enabled
    svc = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0), voip, 4)
    assert not svc.admission.trusted and svc.admission.verifier is None


@pytest_twisted.inlineCallbacks
def test_nat_keepalive_towards_the_registrar_while_registered():
    """F-426: CRLF every keepalive_interval seconds while registered, none after."""
    from twisted.internet.task import Clock

    from goip_tw.sip.registration import RegistrationState

    sip = SipConfig(bind_address="127.0.0.1", local_port=free_port(), tcp=False,
                    keepalive_mode="crlf", keepalive_interval=30)
    svc = SipService(reactor, sip, VoipConfig(), 1)
    svc.startService()
    try:
        sent = []
        svc.transport.send = lambda data, dest: sent.append((data, dest))
        clock = svc.reactor = Clock()
        svc._keepalive(RegistrationState("main", "registered", "127.0.0.1:5070", True))
        clock.advance(30)
        clock.advance(30)
        assert [(d, (a.host, a.port)) for d, a in sent] == [
            (b"\r\n\r\n", ("127.0.0.1", 5070))] * 2
        svc._keepalive(RegistrationState("main", "failed", "127.0.0.1:5070", False))
        clock.advance(60)
        assert len(sent) == 2 and clock.getDelayedCalls() == []
    finally:
        svc.reactor = reactor
        yield svc.stopService()


@pytest_twisted.inlineCallbacks
def test_trusted_host_names_are_resolved_and_status_lists_registrations():
    from tests.peers.harness import poll_until
    from tests.sip.test_peers_kamailio import SDP, RecordingCalls

    sip = SipConfig(bind_address="127.0.0.1", local_port=free_port(), tcp=False)
    voip = VoipConfig(outgoing_auth="address", account=SipAccount(
        auth_id="goip-01", registrar="localhost:9", expires=0))
    svc = SipService(reactor, sip, voip, 2)
    calls = RecordingCalls(answer=False)
    svc.set_call_handler(calls)
    svc.startService()
    try:
        yield poll_until(reactor, lambda: svc.admission.trusted.contains("127.0.0.1", 9),
                         timeout=5)
        assert not svc.admission.trusted.contains("127.0.0.1", 10)
        assert svc.registration_status() == [{
            "key": "main", "lines": [1, 2], "user": "goip-01", "state": "disabled",
            "server": "localhost:9", "registered": False, "expires": 0,
            "reason": "nothing to register"}]
        # an outgoing call to a host name is resolved before the INVITE leaves
        events = []
        leg = svc.place_call("101@localhost:9", line=1, local_sdp=SDP % 4000)
        leg.listener = events.append
        yield poll_until(reactor, lambda: leg.txn is not None, timeout=5)
        assert leg.dest.host == "127.0.0.1"
        leg.cancel()
    finally:
        yield svc.stopService()


def test_contact_uses_the_interface_towards_the_registrar():
    """Listening on 0.0.0.0, the Contact must not say 0.0.0.0 (kernel route lookup)."""
    sip = SipConfig(bind_address="0.0.0.0", local_port=0)
    voip = VoipConfig(account=SipAccount(auth_id="a", registrar="127.0.0.1:5070"))
    svc = SipService(reactor, sip, voip, 1)
    assert svc._local_host_towards("127.0.0.1:5070") == "127.0.0.1"
    assert svc._local_host_towards("pbx.example") is None          # names: no blocking DNS
    bound = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0), voip, 1)
    assert bound._local_host_towards("127.0.0.1:5070") is None      # explicit bind wins


def test_registration_changes_are_published_with_their_lines():
    from goip_tw.sip.registration import RegistrationState

    bus = EventBus()
    seen = []
    bus.subscribe("sip.registration", lambda topic, **f: seen.append(f))
    voip = VoipConfig(mode="per_line", lines=(SipAccount(auth_id="1", prefixes="1"),
                                              SipAccount(auth_id="2", prefixes="2")))
    svc = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0), voip, 2,
                     events=bus)
    svc._registration_changed(RegistrationState("line2", "registered", "10.0.0.1", True, 60))
    assert seen == [{"key": "line2", "lines": [2], "state": "registered",
                     "server": "10.0.0.1", "registered": True, "reason": ""}]


@pytest_twisted.inlineCallbacks
def test_trunk_without_registration_shows_voip_ready():
    sip = SipConfig(bind_address="127.0.0.1", local_port=free_port(), tcp=False)
    svc = SipService(reactor, sip, VoipConfig(mode="trunk", trunk_gateway1="10.0.0.1"), 2)
    assert not svc.line_voip_registered(1)
    svc.startService()
    try:
        assert svc.line_voip_registered(1) and svc.line_voip_registered(2)
        assert not svc.line_voip_registered(3)
        svc.set_line_network(2, False)
        assert not svc.line_voip_registered(2)
    finally:
        yield svc.stopService()


def test_registrar_names_use_srv_without_a_port_and_a_records_with_one():
    """RFC 3263 via SipResolver: a bare name asks SRV first (answered here by a fake)."""
    from twisted.internet import defer as _defer

    from goip_tw.sip.message import Request
    from goip_tw.sip.transport import Address

    svc = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0),
                     VoipConfig(), 1)
    asked, sent = [], []

    class FakeSipResolver:
        def resolve(self, uri, transport=None):
            asked.append((uri.host, uri.port, transport))
            return _defer.succeed([Address(transport, "127.0.0.1", 5088)])

    svc._resolver = FakeSipResolver()
    svc.transactions.send_request = lambda req, dest: sent.append(dest) or "sent"
    req = Request("REGISTER", "sip:pbx.example")
    d = svc._send_to_server(req, "pbx.example", "udp")
    assert asked == [("pbx.example", None, "udp")] and sent == [Address("udp", "127.0.0.1", 5088)]
    assert d.result == "sent"
    svc._send_to_server(req, "127.0.0.1:5070", "tcp")
    assert sent[-1] == Address("tcp", "127.0.0.1", 5070) and len(asked) == 1


def test_calls_follow_the_registration_to_the_backup_server():
    voip = VoipConfig(account=SipAccount(auth_id="goip-01", registrar="10.0.0.1:5070",
                                         proxy="10.0.0.1:5070",
                                         backup_registrar="10.0.0.2:5080"))
    svc = SipService(reactor, SipConfig(bind_address="127.0.0.1", local_port=0), voip, 1)
    uri, dest, acct = svc._target("13800138000", "main")
    assert (dest.host, dest.port) == ("10.0.0.1", 5070)

    class OnBackup:
        current, server = 1, "10.0.0.2:5080"

    svc.registrations["main"] = OnBackup()
    uri, dest, acct = svc._target("13800138000", "main")
    assert str(uri) == "sip:13800138000@10.0.0.2:5080" and dest.port == 5080
