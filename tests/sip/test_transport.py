"""UDP, TCP and TLS round trips through the transaction layer on 127.0.0.1."""

from __future__ import annotations

import datetime
import random
import socket

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.message import Request, parse_message
from goip_tw.sip.transaction import TransactionLayer
from goip_tw.sip.resolver import SipResolver
from goip_tw.sip.transport import Address, KeepAlive, TransportLayer, tls_server_options


CERT_DIR = None


def cert_files():
    """A throw-away certificate for 127.0.0.1 (IP SAN), written once per run."""
    global CERT_DIR
    if CERT_DIR is None:
        import ipaddress
        import tempfile

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                               critical=True)
                .sign(key, hashes.SHA256()))
        CERT_DIR = tempfile.mkdtemp(prefix="goip-sip-tls-")
        with open(f"{CERT_DIR}/cert.pem", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(f"{CERT_DIR}/key.pem", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return f"{CERT_DIR}/cert.pem", f"{CERT_DIR}/key.pem"


def make_stack(tls=False, ca=True, **cfg):
    extra = {}
    if tls:
        cert, key = cert_files()
        extra = dict(tls_certificate=cert, tls_private_key=key,
                     tls_ca_file=cert if ca else "")
    cfg.setdefault("bind_address", "127.0.0.1")
    config = SipConfig(local_port=0, random_port_range="30000-60000", tls=tls,
                       tls_port=0, dscp=0, **extra, **cfg)
    transport = TransportLayer(reactor, config, tls_options=tls_server_options(config),
                               rng=random.Random())
    transport.start()
    layer = TransactionLayer(transport, reactor)

    def on_request(txn):
        resp = txn.request.make_response(200, to_tag=layer.new_tag())
        resp.headers.add("x-transport", txn.source.transport)
        txn.respond(resp)

    layer.request_received = on_request
    return transport, layer


def options(dest_port, transport="udp"):
    return Request("OPTIONS", f"sip:gw@127.0.0.1:{dest_port};transport={transport}", [
        ("max-forwards", "70"), ("from", "<sip:a@127.0.0.1>;tag=1"),
        ("to", "<sip:gw@127.0.0.1>"), ("call-id", f"t-{random.random()}"),
        ("cseq", "1 OPTIONS")])


@pytest_twisted.inlineCallbacks
def _round_trip(kind):
    server_t, server = make_stack(tls=(kind == "tls"))
    client_t, client = make_stack(tls=(kind == "tls"))
    try:
        port = server_t.ports[kind]
        resp = yield client.send_request(options(port, kind),
                                         Address(kind, "127.0.0.1", port))
        assert resp.status == 200
        assert resp.headers.get("x-transport") == kind
    finally:
        client.stop()
        server.stop()
        yield client_t.stop()
        yield server_t.stop()


@pytest_twisted.inlineCallbacks
def test_udp_and_tcp_round_trip_over_ipv6_loopback():
    server_t, server = make_stack(bind_address="::1")
    client_t, client = make_stack(bind_address="::1")
    try:
        for kind in ("udp", "tcp"):
            port = server_t.ports[kind]
            req = Request("OPTIONS", f"sip:gw@[::1]:{port};transport={kind}", [
                ("max-forwards", "70"), ("from", "<sip:a@[::1]>;tag=1"),
                ("to", "<sip:gw@[::1]>"), ("call-id", f"v6-{kind}"),
                ("cseq", "1 OPTIONS")])
            resp = yield client.send_request(req, Address(kind, "::1", port))
            assert resp.status == 200, kind
            assert resp.top_via.host == "[::1]"
    finally:
        client.stop()
        server.stop()
        yield client_t.stop()
        yield server_t.stop()


def test_udp_round_trip():
    return _round_trip("udp")


def test_tcp_round_trip():
    return _round_trip("tcp")


def test_tls_round_trip():
    return _round_trip("tls")


@pytest_twisted.inlineCallbacks
def test_tls_unverifiable_server_gives_503():
    server_t, server = make_stack(tls=True)
    client_t, client = make_stack(tls=True, ca=False)  # platform trust: unknown CA
    try:
        port = server_t.ports["tls"]
        resp = yield client.send_request(options(port, "tls"),
                                         Address("tls", "127.0.0.1", port))
        assert resp.status == 503
    finally:
        client.stop()
        server.stop()
        yield client_t.stop()
        yield server_t.stop()


@pytest_twisted.inlineCallbacks
def test_tcp_framing_split_and_pipelined_and_oversized():
    server_t, server = make_stack()
    try:
        port = server_t.ports["tcp"]
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol

        class Collect(Protocol):
            def __init__(self):
                self.data = b""
                self.closed = defer.Deferred()

            def dataReceived(self, data):
                self.data += data

            def connectionLost(self, reason):
                self.closed.callback(None)

        proto = Collect()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
        msgs = []
        for i in range(3):
            req = options(port, "tcp")
            req.headers.add("via", f"SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKtcp{i}")
            req.body = "é".encode() * 3  # Content-Length counts bytes
            msgs.append(req.to_bytes())
        blob = b"\r\n\r\n" + b"".join(msgs)
        proto.transport.write(blob[:37])
        yield deferLater(0.05)
        proto.transport.write(blob[37:])
        for _ in range(100):
            if proto.data.count(b"SIP/2.0 200") == 3:
                break
            yield deferLater(0.02)
        assert proto.data.startswith(b"\r\n"), "CRLFCRLF ping gets a CRLF pong"
        assert proto.data.count(b"SIP/2.0 200") == 3
        proto.transport.write(b"OPTIONS sip:x SIP/2.0\r\n" + b"X-Pad: " + b"a" * 70000)
        yield proto.closed
    finally:
        server.stop()
        yield server_t.stop()


def deferLater(seconds):
    from twisted.internet.task import deferLater as dl
    return dl(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def test_rport_and_received_added_and_reply_to_source():
    server_t, server = make_stack()
    got = []

    def on_request(txn):
        got.append(txn.request)
        txn.respond(txn.request.make_response(200, to_tag="t"))

    server.request_received = on_request
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        port = server_t.ports["udp"]
        # Via claims a port nobody listens on: the 200 must come back to our source
        raw = ("OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 10.9.9.9:9;branch=z9hG4bKnat1;rport\r\n"
               "From: <sip:a@x>;tag=1\r\nTo: <sip:gw@x>\r\nCall-ID: nat1\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        sock.sendto(raw, ("127.0.0.1", port))
        data = None
        for _ in range(100):
            yield deferLater(0.02)
            try:
                data = sock.recv(65535)
                break
            except BlockingIOError:
                pass
        resp = parse_message(data)
        via = resp.top_via
        assert via.received == "127.0.0.1"
        assert via.rport == sock.getsockname()[1]
    finally:
        sock.close()
        server.stop()
        yield server_t.stop()


def test_reply_path_choice():
    from goip_tw.sip.message import Response
    resp = Response(200, headers=[("via", "SIP/2.0/UDP 10.0.0.5:5090;branch=z9hG4bKa")])
    src = Address("udp", "127.0.0.1", 4000)
    via_t = TransportLayer(Clock(), SipConfig(reply_path="via"))
    assert via_t.response_destination(resp, src) == Address("udp", "10.0.0.5", 5090)
    src_t = TransportLayer(Clock(), SipConfig(reply_path="source"))
    assert src_t.response_destination(resp, src) == src


def test_stream_reply_after_the_connection_closed_goes_to_via_port():
    from goip_tw.sip.message import Response
    resp = Response(200, headers=[(
        "via", "SIP/2.0/TCP 10.0.0.5:5090;branch=z9hG4bKa;rport=40000;received=127.0.0.1")])
    t = TransportLayer(Clock(), SipConfig())
    src = Address("tcp", "127.0.0.1", 40000)
    assert t.response_destination(resp, src) == Address("tcp", "127.0.0.1", 5090)


def test_random_port_in_range_and_dscp():
    cfg = SipConfig(bind_address="127.0.0.1", local_port=0,
                    random_port_range="41000-41999", dscp=46, tcp=False)
    t = TransportLayer(reactor, cfg, rng=random.Random(7))
    t.start()
    try:
        assert 41000 <= t.ports["udp"] <= 41999
        tos = t._udp.socket.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
        assert tos == 46 << 2
    finally:
        t.stop()


def test_keepalive_sends_crlf_every_interval():
    clock = Clock()
    sent = []
    ka = KeepAlive(clock, lambda: sent.append(clock.seconds()), 30)
    ka.start()
    clock.advance(30)
    clock.advance(30)
    ka.stop()
    assert sent == [30, 60]
    assert clock.getDelayedCalls() == []


@pytest_twisted.inlineCallbacks
def test_srv_then_a_resolution_through_twisted_names():
    """A real twisted.names server on 127.0.0.1 answers SRV and A."""
    from twisted.names import authority, client, dns, server
    from twisted.names.dns import Record_A, Record_SRV

    class Zone(authority.FileAuthority):
        def __init__(self):
            authority.FileAuthority.__init__(self, None)
            self.soa = (b"example.test", dns.Record_SOA(mname=b"ns.example.test"))
            self.records = {
                b"example.test": [self.soa[1], Record_A("127.0.0.3")],
                b"_sip._udp.example.test": [
                    Record_SRV(20, 0, 5099, b"b.example.test"),
                    Record_SRV(10, 0, 5088, b"a.example.test")],
                b"a.example.test": [Record_A("127.0.0.1")],
                b"b.example.test": [Record_A("127.0.0.2")],
            }

    factory = server.DNSServerFactory(authorities=[Zone()])
    udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    res = client.Resolver(servers=[("127.0.0.1", udp.getHost().port)], reactor=reactor)
    try:
        from goip_tw.sip.message import SipURI
        r = SipResolver(res)
        got = yield r.resolve(SipURI.parse("sip:example.test"))
        assert got == [Address("udp", "127.0.0.1", 5088), Address("udp", "127.0.0.2", 5099)]
        got = yield r.resolve(SipURI.parse("sip:example.test:5070"))
        assert got == [Address("udp", "127.0.0.3", 5070)]
        got = yield r.resolve(SipURI.parse("sip:[::1]:5070;transport=tcp"))
        assert got == [Address("tcp", "::1", 5070)]
    finally:
        yield udp.stopListening()
        for conn in list(res.connections):
            conn.transport.loseConnection()


@pytest_twisted.inlineCallbacks
def test_crlf_keepalive_datagrams_are_sent_and_ignored():
    client_t, client = make_stack()
    server_t, server = make_stack()
    seen = []
    server.request_received = seen.append
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        targets = [Address("udp", "127.0.0.1", sock.getsockname()[1]),
                   Address("udp", "127.0.0.1", server_t.ports["udp"])]
        ka = KeepAlive(reactor, lambda: [KeepAlive.crlf_sender(client_t, t)()
                                         for t in targets], 0.05)
        ka.start()
        yield deferLater(0.2)
        ka.stop()
        got = []
        for _ in range(20):
            try:
                got.append(sock.recv(100))
            except BlockingIOError:
                break
        assert len(got) >= 2 and set(got) == {b"\r\n\r\n"}
        assert seen == []  # the stack ignores keep-alives
    finally:
        sock.close()
        client.stop()
        server.stop()
        yield client_t.stop()
        yield server_t.stop()
