
import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.protocol import DatagramProtocol

from goip_tw.media import rtcp
from goip_tw.media.ports import NoPortsAvailable, PortAllocator
from goip_tw.media.rtp import RtpError, RtpPacket, RtpStream
from tests.peers.peerutil import free_port

PEER = ("127.0.0.1", 40000)


class FakeTransport:
    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append((data, addr))


def make_stream(clock=None, **kw):
    clock = clock or task.Clock()
    got = []
    s = RtpStream(clock, payload_types={0, 8, 101}, on_packet=got.append, **kw)
    s.transport = FakeTransport()
    return s, got, clock


def pkt(seq, ts=0, pt=0, ssrc=0x1234, payload=b"\xff" * 160, **kw):
    return RtpPacket(pt, seq, ts, ssrc, payload, **kw).to_bytes()


def test_packet_round_trip_with_csrc_extension_marker():
    p = RtpPacket(8, 65535, 0xFFFFFFFF, 7, b"abc", marker=True, csrcs=(1, 2),
                  extension=(0xBEDE, b"\x01\x02\x03\x04"))
    assert RtpPacket.parse(p.to_bytes()) == p


def test_padding_is_stripped():
    raw = bytearray(pkt(1, payload=b"abcd")) + b"\x00\x00\x03"
    raw[0] |= 0x20
    assert RtpPacket.parse(bytes(raw)).payload == b"abcd"


@pytest.mark.parametrize("raw, field", [
    (b"\x80\x00", "shorter"),
    (b"\x40" + bytes(15), "version"),
    (b"\x8f" + bytes(15), "csrc"),
    (b"\x90" + bytes(11) + b"\x00\x00\x00\x09", "extension length"),
    (b"\x90" + bytes(11) + b"\x00", "extension header"),
    (b"\xa0" + bytes(11) + b"\x00", "padding"),
    (b"\xa0" + bytes(11) + b"ab\x09", "padding"),
])
def test_malformed_packets_name_the_field(raw, field):
    with pytest.raises(RtpError, match=field):
        RtpPacket.parse(raw)


def test_malformed_and_unknown_pt_counted_and_dropped():
    s, got, _ = make_stream()
    s.datagramReceived(b"\x40" + bytes(20), PEER)
    s.datagramReceived(pkt(1, pt=96), PEER)
    s.datagramReceived(b"\x8f" + bytes(15), PEER)
    assert got == []
    assert s.counters.malformed == 2
    assert s.counters.unknown_payload_type == 1
    assert not s.latched  # junk must not latch the source


def test_latch_then_foreign_source_dropped():
    s, got, _ = make_stream()
    s.set_remote(("127.0.0.1", 5000))
    s.datagramReceived(pkt(1), ("127.0.0.1", 5002))  # NAT: peer sends from elsewhere
    assert s.remote == ("127.0.0.1", 5002) and s.latched
    s.datagramReceived(pkt(2), ("127.0.0.1", 5000))
    s.datagramReceived(pkt(3), ("10.0.0.9", 5002))
    s.datagramReceived(pkt(4), ("127.0.0.1", 5002))
    assert [p.sequence for p in got] == [1, 4]
    assert s.counters.foreign_source == 2
    # re-INVITE to a new address re-opens the latch
    s.set_remote(("127.0.0.1", 6000))
    s.datagramReceived(pkt(5, ssrc=99), ("127.0.0.1", 6000))
    assert got[-1].ssrc == 99


def test_send_keeps_ssrc_seq_ts_across_reinvite_and_wraps():
    s, _, _ = make_stream()
    s.sequence, s.timestamp = 65535, 0xFFFFFF00
    s.set_remote(PEER)
    s.send(b"a" * 160, 8, 160)
    s.set_remote(("127.0.0.1", 40002))
    s.send(b"a" * 160, 0, 160, marker=True)
    p1, p2 = (RtpPacket.parse(d) for d, _ in s.transport.sent)
    assert (p1.sequence, p2.sequence) == (65535, 0)
    assert p1.ssrc == p2.ssrc == s.ssrc
    assert p2.timestamp == (0xFFFFFF00 + 160) & 0xFFFFFFFF
    assert p2.marker and not p1.marker
    assert s.transport.sent[1][1] == ("127.0.0.1", 40002)


def test_sequence_wrap_statistics():
    s, got, clock = make_stream()
    ts = 0
    for i in range(200):
        seq = (65500 + i) % 65536
        if seq in (10, 11):
            continue  # two lost
        s.datagramReceived(pkt(seq, ts=ts), PEER)
        ts += 160
        clock.advance(0.02)
    st = s.rx_stats
    assert st.cycles == 65536
    assert st.expected == 200
    assert st.lost == 2
    assert s.figures()["lost"] == 2
    assert st.jitter_ms < 1


def test_sequence_jump_needs_confirmation():
    s, got, _ = make_stream()
    s.datagramReceived(pkt(100), PEER)
    s.datagramReceived(pkt(30000), PEER)   # one wild packet: ignored
    s.datagramReceived(pkt(101), PEER)
    s.datagramReceived(pkt(40000), PEER)
    s.datagramReceived(pkt(40001), PEER)   # confirmed: the sender restarted
    assert [p.sequence for p in got] == [100, 101, 40001]
    assert s.rx_stats.base_seq == 40001


def test_rtp_timeout_fires_once_and_is_reset_by_media():
    fired = []
    s, _, clock = make_stream(timeout=5, on_timeout=lambda: fired.append(1))
    s.start()
    clock.advance(3)
    s.datagramReceived(pkt(1), PEER)
    clock.advance(4)
    assert fired == []
    clock.advance(1.5)
    assert fired == [1]
    clock.advance(20)
    assert fired == [1]
    assert clock.getDelayedCalls() == []


def test_stop_cancels_timeout():
    s, _, clock = make_stream(timeout=5)
    s.start()
    s.stop()
    assert clock.getDelayedCalls() == []


def test_rtcp_sr_rr_round_trip_and_rtt():
    clock = task.Clock()
    clock.advance(1_700_000_000)
    a, _, _ = make_stream(clock)
    b, _, _ = make_stream(clock)
    ra = rtcp.RtcpProtocol(a, clock)
    rb = rtcp.RtcpProtocol(b, clock)
    ra.transport, rb.transport = FakeTransport(), FakeTransport()
    a.set_remote(("127.0.0.1", 2000))
    b.set_remote(("127.0.0.1", 1000))
    # a sends 50 packets to b, 5 lost
    for i in range(50):
        a.send(b"x" * 160, 0, 160)
        if i % 10 != 3:
            b.datagramReceived(a.transport.sent[-1][0], ("127.0.0.1", 1000))
        clock.advance(0.02)
    ra.send_report()
    sr_bytes = ra.transport.sent[-1][0]
    (sr, *_rest) = rtcp.parse_compound(sr_bytes)
    assert isinstance(sr, rtcp.SenderReport) and sr.packet_count == 50
    clock.advance(0.030)  # network delay a->b
    rb.datagramReceived(sr_bytes, ("127.0.0.1", 1001))
    clock.advance(0.5)    # b holds the SR for 500 ms before reporting
    rb.send_report()
    rr_bytes = rb.transport.sent[-1][0]
    rr = rtcp.parse_compound(rr_bytes)[0]
    assert isinstance(rr, rtcp.ReceiverReport)
    block = rr.blocks[0]
    assert block.ssrc == a.ssrc
    assert block.cumulative_lost == 5
    assert block.fraction_lost == 5 * 256 // 50
    clock.advance(0.030)  # network delay b->a
    ra.datagramReceived(rr_bytes, ("127.0.0.1", 2001))
    assert ra.rtt == pytest.approx(0.060, abs=0.002)
    f = a.figures()
    assert f["rtt_ms"] == pytest.approx(60, abs=2)
    assert f["remote_cumulative_lost"] == 5
    assert f["remote_fraction_lost"] == pytest.approx(0.1, abs=0.01)


def test_rtcp_malformed_counted():
    clock = task.Clock()
    s, _, _ = make_stream(clock)
    r = rtcp.RtcpProtocol(s, clock)
    r.datagramReceived(b"\x81\xc9\x00\x09" + bytes(8), ("127.0.0.1", 1))
    r.datagramReceived(b"\x00" * 8, ("127.0.0.1", 1))
    assert r.malformed == 2


def test_rtcp_timer_and_bye():
    clock = task.Clock()
    s, _, _ = make_stream(clock)
    r = rtcp.RtcpProtocol(s, clock, interval=5)
    r.transport = FakeTransport()
    s.set_remote(PEER)
    r.start()
    clock.advance(8)
    assert r.reports_sent == 1
    r.stop()
    assert clock.getDelayedCalls() == []
    kinds = [type(x) for x in rtcp.parse_compound(r.transport.sent[-1][0])]
    assert kinds == [rtcp.ReceiverReport, rtcp.Bye]
    assert r.transport.sent[-1][1] == ("127.0.0.1", 40001)


def test_port_allocator_even_pairs_round_robin():
    alloc = PortAllocator(16385, 16392)
    assert list(alloc.candidates()) == [16386, 16388, 16390]
    with pytest.raises(ValueError):
        PortAllocator(16384, 16384)


class Recorder(DatagramProtocol):
    def __init__(self):
        self.got = []
        self.waiter = None

    def datagramReceived(self, data, addr):
        self.got.append((data, addr))


@pytest_twisted.inlineCallbacks
def test_real_sockets_bleed_and_port_pairs():
    from twisted.internet import reactor
    low = free_port(span=10)  # not the ephemeral range: p1 and p2 below bind(0) there
    alloc = PortAllocator(low, low + 9)
    got = []
    stream = RtpStream(reactor, payload_types={0}, on_packet=got.append)
    rtp_port, rtcp_port = alloc.listen_pair(reactor, stream, rtcp.RtcpProtocol(stream, reactor),
                                            interface="127.0.0.1")
    port = rtp_port.getHost().port
    assert port % 2 == 0 and rtcp_port.getHost().port == port + 1
    peer, stranger = Recorder(), Recorder()
    p1 = reactor.listenUDP(0, peer, interface="127.0.0.1")
    p2 = reactor.listenUDP(0, stranger, interface="127.0.0.1")
    try:
        stream.set_remote(("127.0.0.1", p1.getHost().port))
        p1.write(pkt(1), ("127.0.0.1", port))
        for _ in range(100):
            if got:
                break
            yield task.deferLater(reactor, 0.005, lambda: None)
        p2.write(pkt(2, payload=b"bleed"), ("127.0.0.1", port))
        p1.write(pkt(3), ("127.0.0.1", port))
        for _ in range(100):
            if len(got) >= 2:
                break
            yield task.deferLater(reactor, 0.005, lambda: None)
        assert [p.sequence for p in got] == [1, 3]
        assert stream.counters.foreign_source == 1
        stream.send(b"\x55" * 160, 0, 160)
        for _ in range(100):
            if peer.got:
                break
            yield task.deferLater(reactor, 0.005, lambda: None)
        assert RtpPacket.parse(peer.got[0][0]).payload == b"\x55" * 160
        # the pair is taken: the next allocation moves on
        s2 = RtpStream(reactor, payload_types={0})
        r2, c2 = alloc.listen_pair(reactor, s2, None, interface="127.0.0.1")
        assert r2.getHost().port == port + 2 and c2 is None
        yield r2.stopListening()
    finally:
        yield rtp_port.stopListening()
        yield rtcp_port.stopListening()
        yield p1.stopListening()
        yield p2.stopListening()


def test_port_allocator_exhaustion():
    from twisted.internet.error import CannotListenError

    class Busy:
        def listenUDP(self, port, proto, interface=""):
            raise CannotListenError(interface, port, OSError("busy"))

    with pytest.raises(NoPortsAvailable):
        PortAllocator(20000, 20011).listen_pair(Busy(), object(), None)
