"""TCP/TLS framing (RFC 3261 §18.3): any chunking delivers the same messages;
garbage closes the connection; nothing raises."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from goip_tw.config.sections.sip import SipConfig
from goip_tw.sip.transport import TransportLayer, _Stream

from sipcore import request


def stream():
    layer = TransportLayer(Clock(), SipConfig(dscp=0))
    got = []
    layer.message_received = lambda msg, source: got.append((msg, source))
    proto = _Stream(layer, "tcp")
    tr = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5070))
    proto.makeConnection(tr)
    return proto, tr, got, layer


MESSAGES = [request(branch=f"z9hG4bKs{i}", body="短信".encode() * i,
                    extra="Content-Type: text/plain\r\n" if i else "")
            for i in range(4)]


@example(cuts=[3], pings=True)  # a ping split inside its CRLFs
@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(1, 200), max_size=30), pings=st.booleans())
def test_any_chunking_delivers_every_message_in_order(cuts, pings):
    proto, tr, got, layer = stream()
    blob = (b"\r\n\r\n" if pings else b"") + b"".join(MESSAGES)
    pos = 0
    for c in cuts:
        proto.dataReceived(blob[pos:pos + c])
        pos += c
    proto.dataReceived(blob[pos:])
    assert [m.headers.get("via").split("branch=")[1].split(";")[0] for m, _ in got] == [
        f"z9hG4bKs{i}" for i in range(4)]
    assert [m.body for m, _ in got] == ["短信".encode() * i for i in range(4)]
    assert all(src.transport == "tcp" and src.port == 5070 for _, src in got)
    assert layer.connections == 1 and not tr.disconnecting
    assert tr.value() == (b"\r\n" if pings else b""), "one pong per CRLFCRLF ping"


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=300))
def test_garbage_never_raises(junk):
    proto, tr, got, layer = stream()
    proto.dataReceived(junk + MESSAGES[0])
    assert len(got) <= 2


def test_bad_content_length_and_overflow_close_the_connection():
    proto, tr, got, _ = stream()
    proto.dataReceived(MESSAGES[0].replace(b"Content-Length: 0", b"Content-Length: -5"))
    assert tr.disconnecting and got == []
    proto, tr, got, _ = stream()
    proto.dataReceived(b"OPTIONS sip:a SIP/2.0\r\nX: " + b"y" * 70000)
    assert tr.disconnecting
