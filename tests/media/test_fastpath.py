"""The C per-packet path (goip_tw.media._fastpath) on real loopback sockets.

The session is ticked by hand (no reactor run needed: listenUDP binds at
once); a plain socket is the far end.  Each test compares what the C path did
with what the Python path (``RtpStream.datagramReceived``) does, or checks the
wire bytes."""

from __future__ import annotations

import select
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from goip_tw.media import _g711, codecs
from goip_tw.media.bridge import LegMedia, LineMedia, Session
from goip_tw.media.interfaces import FRAME_BYTES, FrameQueue
from goip_tw.media.rtp import RtpPacket, RtpStream
from goip_tw.media.ticker import Ticker

from .helpers import sine


class Rig:
    """One bridged session on a real UDP port, and a far-end socket."""

    def __init__(self, host="127.0.0.1", codec=codecs.PCMA, remote_host=None):
        self.clock = task.Clock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.far = socket.socket(family, socket.SOCK_DGRAM)
        self.far.bind((host, 0))
        self.far.settimeout(2)
        # the leg polls the socket through the reactor that owns it (the
        # reactor never runs here: the tests tick by hand)
        self.stream = RtpStream(reactor, payload_types=())
        self.port = reactor.listenUDP(0, self.stream, interface=host)
        self.local = (host, self.port.getHost().port)
        far_port = self.far.getsockname()[1]
        self.stream.set_remote((remote_host or host, far_port))
        self.leg = LegMedia(reactor, self.stream, jitter_min_ms=20)
        self.leg.port = self.port
        self.leg.configure(codec, dtmf_pt=101)
        self.line_port = FrameQueue(max_frames=1000)
        self.session = Session(Ticker(self.clock, now=self.clock.seconds),
                               line=LineMedia(self.line_port), leg=self.leg)
        self.session.bridged = True
        self.leg.set_polled(True)
        assert self.leg._polled
        self.far_seq = 100
        self.far_ts = 8000

    def close(self):
        self.leg.set_polled(False)
        self.session.stop()
        self.port.stopListening()
        self.far.close()

    def tick(self):
        self.session.tick_send()
        self.session.tick_receive()
        self.clock.advance(0.02)

    def far_send(self, payload=None, pt=8, raw=None, sock=None):
        data = raw if raw is not None else RtpPacket(
            pt, self.far_seq, self.far_ts, 0x1234, payload or _g711.lin2alaw(sine(900, 20))
        ).to_bytes()
        self.far_seq += 1
        self.far_ts += 160
        (sock or self.far).sendto(data, self.local)
        # wait until it is readable on our side (loopback is near-synchronous)
        select.select([self.port.socket], [], [], 1.0)

    def far_recv(self):
        return RtpPacket.parse(self.far.recv(4096))


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_sent_packets_carry_the_stream_header_fields(rig):
    rig.line_port.push(sine(600, 100))
    seq0, ts0, ssrc = rig.stream.sequence, rig.stream.timestamp, rig.stream.ssrc
    for _ in range(3):
        rig.tick()
    got = [rig.far_recv() for _ in range(3)]
    assert [p.sequence for p in got] == [(seq0 + i) & 0xFFFF for i in range(3)]
    assert [p.timestamp for p in got] == [(ts0 + 160 * i) & 0xFFFFFFFF for i in range(3)]
    assert {p.ssrc for p in got} == {ssrc}
    assert [p.marker for p in got] == [True, False, False]
    assert all(p.payload_type == 8 and len(p.payload) == 160 for p in got)
    assert rig.stream.counters.sent == 3 and rig.stream.counters.sent_octets == 480


def test_received_audio_reaches_the_line_and_the_statistics(rig):
    for _ in range(6):
        rig.far_send()
        rig.tick()
    c = rig.stream.counters
    assert c.received == 6 and c.received_octets == 6 * 160
    assert rig.stream.latched and rig.stream.rx_ssrc == 0x1234
    assert rig.stream.rx_stats.received == 6
    assert rig.leg.jb.played >= 4
    heard = [f for f in rig.line_port.written if f != bytes(FRAME_BYTES)]
    assert len(heard) >= 4


def test_fast_and_python_paths_account_a_packet_the_same_way(rig):
    # the first packet latches through the Python path, the rest go the C way
    for _ in range(5):
        rig.far_send()
        rig.leg.drain()
        rig.leg.deliver()
        rig.clock.advance(0.02)
    fast = (rig.stream.counters.asdict(), rig.stream.rx_stats.received,
            rig.stream.rx_stats.max_seq, rig.leg.jb.depth)

    other = Rig()
    try:
        seq, ts = 100, 8000
        for _ in range(5):
            data = RtpPacket(8, seq, ts, 0x1234, _g711.lin2alaw(sine(900, 20))).to_bytes()
            other.stream.datagramReceived(data, other.stream.remote)
            seq, ts = seq + 1, ts + 160
            other.clock.advance(0.02)
        slow = (other.stream.counters.asdict(), other.stream.rx_stats.received,
                other.stream.rx_stats.max_seq, other.leg.jb.depth)
    finally:
        other.close()
    assert fast == slow


def test_a_foreign_source_is_counted_and_dropped_after_latching(rig):
    rig.far_send()
    rig.tick()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        rig.far_send(sock=stranger)
        rig.tick()
    finally:
        stranger.close()
    assert rig.stream.counters.foreign_source == 1
    assert rig.stream.counters.received == 1


def test_unusual_packets_take_the_validating_path(rig):
    rig.far_send()
    rig.tick()
    # padding bit set with a bad count, then an unknown payload type, then CSRCs
    bad = bytearray(RtpPacket(8, 300, 9000, 0x1234, b"\x55" * 160).to_bytes())
    bad[0] |= 0x20
    bad[-1] = 0
    rig.far_send(raw=bytes(bad))
    rig.far_send(pt=99)
    rig.far_send(raw=RtpPacket(8, rig.far_seq, rig.far_ts, 0x1234, b"\x55" * 160,
                               csrcs=(7, 8)).to_bytes())
    rig.tick()
    c = rig.stream.counters
    assert c.malformed == 1 and c.unknown_payload_type == 1
    assert c.received == 2  # the first packet and the one with CSRCs


def test_dtmf_events_interrupt_voice_and_voice_resumes(rig):
    rig.line_port.push(sine(600, 2000))
    rig.leg.send_dtmf("5", duration_ms=60)
    pts = []
    for _ in range(12):
        rig.tick()
        pts.append(rig.far_recv().payload_type)
    assert pts[0] == 101 and 101 in pts
    assert pts[-1] == 8
    assert not rig.leg._dtmf_active


@pytest_twisted.inlineCallbacks
def test_a_closed_port_never_sends_on_a_reused_descriptor():
    r = Rig()
    r.leg.send_frame(sine(600, 20))  # the fd is looked up and cached
    assert r.far_recv().payload_type == 8
    r.leg.set_polled(False)
    yield r.port.stopListening()
    fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # may take the old fd number
    fresh.bind(("127.0.0.1", 0))
    r.far.settimeout(0.2)
    try:
        before = r.stream.counters.sent
        r.leg.send_frame(sine(600, 20))
        r.leg.drain()
        assert r.stream.counters.sent == before
        with pytest.raises(socket.timeout):
            r.far.recv(4096)
    finally:
        fresh.close()
        r.far.close()


def test_a_host_name_remote_still_sends():
    r = Rig(remote_host="localhost")
    try:
        try:
            socket.getaddrinfo("localhost", 0, socket.AF_INET)
        except OSError:
            pytest.skip("no 'localhost' entry on this machine")
        r.leg.send_frame(sine(600, 20))
        assert r.far_recv().payload_type == 8
    finally:
        r.close()


def test_ipv6_loopback_both_ways():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        r = Rig(host="::1")
    except Exception as e:  # ::1 not configured
        pytest.skip(f"::1 not usable here: {e}")
    try:
        for _ in range(4):
            r.far_send()
            r.tick()
        assert r.far_recv().payload_type == 8
        assert r.stream.counters.received == 4
        assert r.stream.counters.foreign_source == 0
    finally:
        r.close()


def test_g729_through_the_c_path():
    if not codecs.G729.available:
        pytest.skip(f"G.729 not built: {codecs.G729.reason}")
    r = Rig(codec=codecs.G729)
    try:
        r.line_port.push(sine(500, 200))
        for _ in range(4):
            r.far_send(payload=codecs.G729.new_encoder().encode(sine(900, 20)), pt=18)
            r.tick()
        got = r.far_recv()
        assert got.payload_type == 18 and len(got.payload) == 20
        assert r.stream.counters.received == 4
    finally:
        r.close()


def test_a_packet_read_before_a_reinvite_keeps_its_real_source(rig):
    rig.far_send()
    rig.tick()  # latched to the far end
    first_remote = rig.stream.remote
    rig.far_send()
    rig.leg.drain()  # read in the send phase ...
    rig.stream.set_remote(("127.0.0.1", 9))  # ... a re-INVITE moves the remote ...
    rig.leg.deliver()  # ... before the receive phase handles it
    # handled as what it is, a packet from the old address (symmetric RTP
    # latches there again), not as one from the new SDP address
    assert rig.stream.remote == first_remote
    assert rig.stream.counters.received == 2


def test_a_batch_with_a_stranger_in_it_is_handled_in_arrival_order(rig):
    rig.far_send()
    rig.tick()  # latched
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        rig.far_send()
        rig.far_send(sock=stranger)  # the one packet that needs the Python path
        rig.far_send()
        rig.tick()
    finally:
        stranger.close()
    c = rig.stream.counters
    assert c.foreign_source == 1 and c.received == 3
    assert rig.stream.rx_stats.received == 3 and rig.stream.rx_stats.duplicates_or_late == 0
    # the stranger took sequence 102 from the far end's numbering: a gap, as on the wire
    assert rig.leg.jb.played + rig.leg.jb.depth >= 2


@pytest.mark.parametrize("codec,encode", [(codecs.PCMA, _g711.lin2alaw),
                                          (codecs.PCMU, _g711.lin2ulaw)])
def test_g711_is_encoded_straight_into_the_packet(codec, encode):
    r = Rig(codec=codec)
    try:
        audio = sine(700, 60)
        r.line_port.push(audio)
        for _ in range(3):
            r.tick()
        got = [r.far_recv() for _ in range(3)]
        assert b"".join(p.payload for p in got) == encode(audio)
        assert {p.payload_type for p in got} == {codec.payload_type}
    finally:
        r.close()


def test_a_receive_started_while_a_batch_is_handled_in_place_waits_a_tick():
    """The batch being handled lives in the shared receive area: a receive
    started from a callout meanwhile (here: the clock) must not overwrite it."""
    a, b = Rig(), Rig()
    try:
        for r in (a, b):
            r.far_send()
            r.tick()  # both latched ...
            r.tick()  # ... and a packet sent to the latched address
        nested = []

        class NestingClock:
            def seconds(self):
                b.leg.receive_now()  # reads nothing while a's batch is in use
                nested.append(b.stream.counters.received)
                return a.clock.seconds()

        a.leg.clock = NestingClock()
        b.far_send()
        a.far_send()
        a.leg.receive_now()
        assert nested == [1]  # b's packet stayed in the kernel
        assert a.stream.counters.received == 2
        b.leg.receive_now()
        assert b.stream.counters.received == 2
    finally:
        a.close()
        b.close()


def test_a_phase_survives_members_with_odd_links():
    """The ticker loads the objects of the next members while one runs (a
    prefetch that follows only type-checked links): members whose links are
    missing or of another type fail alone, as they always did, and crash nothing."""
    from goip_tw.media._fastpath import run_phase

    ticker = Ticker(task.Clock(), now=lambda: 0.0)
    sessions = [Session(ticker) for _ in range(12)]
    sessions[3].leg = object()
    sessions[5].line = "not a line"
    sessions[7].bridged = True
    sessions[7].one_way = 42
    subs = []
    for s in sessions:
        sub = ticker.subscribe(s.tick_send, after=s.tick_receive)
        sub.session = s
        subs.append(sub)
    members = tuple(subs)
    assert run_phase(members, False) == 2  # the odd leg and the odd line
    assert run_phase(members, True) == 3   # ... and the odd meter
    with pytest.raises(TypeError):  # not a member at all: refused, nothing followed
        run_phase(tuple(subs[:2]) + ("not a subscription",) + tuple(subs[2:]), False)
    ticker.close()
