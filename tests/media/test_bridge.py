import math

import attrs
import pytest
import pytest_twisted
from twisted.internet import task

from goip_tw.config.sections.media import MediaConfig
from goip_tw.media import _g711, codecs, dtmf
from goip_tw.media.bridge import LegMedia, LineMedia, Session
from goip_tw.media.interfaces import FRAME_BYTES, FrameQueue
from goip_tw.media.rtp import RtpPacket, RtpStream
from goip_tw.media.service import MediaService
from goip_tw.media.ticker import Ticker
from goip_tw.sip import sdp
from tests.peers.peerutil import free_port

from .helpers import goertzel_power, samples, sine


class Wire:
    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append(data)


def make(clock, codec=codecs.PCMA, vad=False, ptime=20):
    ticker = Ticker(clock, now=clock.seconds)
    stream = RtpStream(clock, payload_types=())
    stream.transport = Wire()
    stream.set_remote(("127.0.0.1", 7000))
    leg = LegMedia(clock, stream, vad=vad, jitter_min_ms=40)
    leg.configure(codec, dtmf_pt=101, ptime=ptime)
    port = FrameQueue(max_frames=100)
    s = Session(ticker, line=LineMedia(port), leg=leg)
    s.bridged = True
    s.update()
    return s, port, stream


def dominant(pcm, candidates):
    s = samples(pcm)
    return max(candidates, key=lambda f: goertzel_power(s, f))


def test_bridge_both_directions_on_a_clock():
    clock = task.Clock()
    s, port, stream = make(clock)
    port.push(sine(600, 1000))
    far_ts, far_seq = 1000, 500
    for i in range(50):
        payload = _g711.lin2alaw(sine(1100, 20, phase=2 * math.pi * 1100 * i * 0.02))
        stream.datagramReceived(RtpPacket(8, far_seq + i, far_ts + 160 * i, 42, payload).to_bytes(),
                                ("127.0.0.1", 7000))
        clock.advance(0.02)
    s.stop()
    assert clock.getDelayedCalls() == []
    sent = [RtpPacket.parse(d) for d in stream.transport.sent]
    assert len(sent) >= 48
    assert all(p.payload_type == 8 and len(p.payload) == 160 for p in sent)
    assert sent[0].marker and not sent[1].marker
    up = b"".join(_g711.alaw2lin(p.payload) for p in sent)
    assert dominant(up, (600, 1100)) == 600
    down = b"".join(port.written)
    assert len(down) >= 48 * FRAME_BYTES
    assert dominant(down[10 * FRAME_BYTES:], (600, 1100)) == 1100
    assert s.one_way.flag is None


def test_ptime_40_packs_two_frames_and_timestamps_advance():
    clock = task.Clock()
    s, port, stream = make(clock, codec=codecs.PCMU, ptime=40)
    port.push(sine(500, 400))
    for _ in range(20):
        clock.advance(0.02)
    s.stop()
    sent = [RtpPacket.parse(d) for d in stream.transport.sent]
    assert all(len(p.payload) == 320 and p.payload_type == 0 for p in sent)
    assert {(b.timestamp - a.timestamp) % 2 ** 32 for a, b in zip(sent, sent[1:])} == {320}


def test_vad_suppresses_silence_and_marks_talkspurts():
    clock = task.Clock()
    s, port, stream = make(clock, vad=True)
    port.push(sine(500, 200, amplitude=4000) + bytes(320 * 30) + sine(500, 200, amplitude=4000))
    for _ in range(60):
        clock.advance(0.02)
    s.stop()
    every = [RtpPacket.parse(d) for d in stream.transport.sent]
    sent = [p for p in every if p.payload_type == 8]
    sids = [p for p in every if p.payload_type == 13]
    assert len(sent) == 40  # 2 x (10 speech + 10 hangover frames)
    markers = [p for p in sent if p.marker]
    assert len(markers) == 2
    gap = max((b.timestamp - a.timestamp) % 2 ** 32 for a, b in zip(sent, sent[1:]))
    assert gap >= 160 * 15  # media time kept running through the silence
    # RFC 3389: one SID when silence starts, carrying the (digital silence) level
    assert len(sids) == 2 and sids[0].payload == b"\x7f"


def test_received_comfort_noise_fills_silence():
    clock = task.Clock()
    s, port, stream = make(clock)
    for i in range(10):
        payload = _g711.lin2alaw(sine(800, 20, amplitude=3000))
        stream.datagramReceived(RtpPacket(8, i, 160 * i, 42, payload).to_bytes(), ("127.0.0.1", 7000))
        clock.advance(0.02)
    stream.datagramReceived(RtpPacket(13, 10, 1600, 42, b"\x28").to_bytes(), ("127.0.0.1", 7000))
    for _ in range(20):
        clock.advance(0.02)
    s.stop()
    tail = b"".join(list(port.written)[-5:])
    level = 20 * math.log10(max(1e-9, (sum(v * v for v in samples(tail)) / 800) ** 0.5) / 32767)
    assert -45 < level < -35  # 0x28 = -40 dBov


def test_rfc4733_digit_replaces_voice_and_received_digit_reported():
    clock = task.Clock()
    s, port, stream = make(clock)
    got = []
    s.leg.dtmf_listeners.append(got.append)
    port.push(sine(500, 1000))
    s.leg.send_dtmf("9", 100)
    for _ in range(20):
        clock.advance(0.02)
    sent = [RtpPacket.parse(d) for d in stream.transport.sent]
    ev = [p for p in sent if p.payload_type == 101]
    assert len(ev) == 7 and dtmf.decode_event(ev[0].payload)[0] == "9"
    for i in range(6):
        stream.datagramReceived(RtpPacket(101, 10 + i, 5000, 42,
                                          dtmf.encode_event("4", 160 * (i + 1), end=i >= 3)).to_bytes(),
                                ("127.0.0.1", 7000))
    s.stop()
    assert [e.digit for e in got] == ["4"]


def test_one_way_audio_flagged_when_rtp_silent():
    clock = task.Clock()
    s, port, stream = make(clock)
    s.one_way = type(s.one_way)(window_s=2)
    for _ in range(150):
        port.push(sine(400, 20, amplitude=5000))
        clock.advance(0.02)
    s.stop()
    assert s.one_way.flag == "no_audio_from_rtp"


@pytest.mark.skipif(not codecs.G729.available, reason="G.729 unavailable")
def test_g729_leg_round_trip_on_a_clock():
    clock = task.Clock()
    s, port, stream = make(clock, codec=codecs.G729)
    port.push(sine(500, 1000, amplitude=6000))
    for _ in range(30):
        clock.advance(0.02)
    sent = [RtpPacket.parse(d) for d in stream.transport.sent]
    assert all(len(p.payload) == 20 and p.payload_type == 18 for p in sent)
    for p in sent:
        stream.datagramReceived(RtpPacket(18, p.sequence, p.timestamp, 9, p.payload).to_bytes(),
                                ("127.0.0.1", 7000))
        clock.advance(0.02)
    s.stop()
    down = b"".join(list(port.written)[-15:])
    assert dominant(down, (500, 1000, 1500)) == 500


# -- the service over real sockets --------------------------------------------------

class Leg:
    """A stand-in for the call layer's leg object."""

    def __init__(self, name):
        self.call_id = name
        self.listener = self
        self.digits = []
        self.ended = []

    def leg_dtmf(self, leg, digit):
        self.digits.append(digit)

    def leg_ended(self, leg, code, reason):
        self.ended.append(reason)

    def hangup(self):
        pass


def service(reactor, **cfg):
    """A MediaService on loopback with its own RTP range below the ephemeral ports."""
    low = free_port(span=21)
    conf = attrs.evolve(MediaConfig(), rtp_port_min=low, rtp_port_max=low + 20, **cfg)
    ports = {}

    def voice(line):
        return ports.setdefault(line, FrameQueue(max_frames=200))
    svc = MediaService(reactor, conf, voice_port_of=voice, interface="127.0.0.1")
    return svc, ports


@pytest_twisted.inlineCallbacks
def test_two_services_carry_tones_both_ways_over_udp():
    from twisted.internet import reactor
    for srtp_mode in ("off", "mandatory"):
        a, pa = service(reactor, srtp=srtp_mode, codecs=("PCMU", "PCMA"))
        b, pb = service(reactor, srtp=srtp_mode, codecs=("PCMA",))
        la, lb = Leg("a"), Leg("b")
        offer = a.local_sdp(la, None)
        answer = b.local_sdp(lb, offer)
        a.remote_sdp(la, answer)
        assert a.codec_of(la) == b.codec_of(lb) == "PCMA"
        if srtp_mode == "mandatory":
            assert b"RTP/SAVP" in offer and b"a=crypto:1 AES_CM_128_HMAC_SHA1_80" in answer
        ha, hb = a.bridge(1, la), b.bridge(2, lb)
        pa[1].max_frames = pb[2].max_frames = 200
        pa[1].push(sine(700, 1500, amplitude=6000))
        pb[2].push(sine(1300, 1500, amplitude=6000))
        a.send_dtmf(la, "5", 100)
        yield task.deferLater(reactor, 1.2, lambda: None)
        sa, sb = ha.stop(), hb.stop()
        got_at_a = b"".join(pa[1].written)
        got_at_b = b"".join(pb[2].written)
        assert dominant(got_at_a[-20 * FRAME_BYTES:], (700, 1300)) == 1300
        assert dominant(got_at_b[-20 * FRAME_BYTES:], (700, 1300)) == 700
        assert lb.digits == ["5"]
        assert sa.codec == "PCMA" and sa.loss == 0.0
        assert sb.details["received"] > 30
        assert sb.details["srtp_failed"] == 0
        a.release(la)
        b.release(lb)
        assert not a.ports.in_use and len(a.ticker) == 0
        yield a.stopService() if a.running else None
        yield task.deferLater(reactor, 0, lambda: None)


@pytest_twisted.inlineCallbacks
def test_tone_and_detector_on_a_line_without_a_call():
    from twisted.internet import reactor
    svc, ports = service(reactor, tone_standard="US")
    digits = []
    ports[3] = FrameQueue(max_frames=200)
    ports[3].push(bytes(800) + dtmf.generate("7", 80) + bytes(800))
    tone = svc.tone_to_line(3, "dial")
    det = svc.detect_line_dtmf(3, digits.append)
    yield task.deferLater(reactor, 0.4, lambda: None)
    tone.stop()
    det.stop()
    tone.stop()
    assert digits == ["7"]
    played = b"".join(ports[3].written)
    assert dominant(played, (350, 440, 480, 620)) in (350, 440)
    assert len(svc.ticker) == 0


OFFER = (b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 5004 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n")


def test_no_common_codec_raises_for_488():
    from twisted.internet import reactor
    svc, _ = service(reactor, codecs=("PCMA",))
    leg = Leg("x")
    with pytest.raises(sdp.SdpError, match="no codec"):
        svc.local_sdp(leg, OFFER.replace(b"RTP/AVP 0 8 96 101", b"RTP/AVP 0 96"))
    svc.release(leg)
    assert not svc.ports.in_use


@pytest.mark.skipif(not codecs.G729.available, reason="G.729 unavailable")
def test_undecodable_payload_is_concealed_not_fatal():
    clock = task.Clock()
    s, port, stream = make(clock, codec=codecs.G729)
    for i in range(6):
        payload = bytes(700) if i == 3 else bytes(20)
        stream.datagramReceived(RtpPacket(18, i, 160 * i, 9, payload).to_bytes(), ("127.0.0.1", 7000))
        clock.advance(0.02)
    for _ in range(5):
        clock.advance(0.02)
    s.stop()
    assert s.leg.bad_payloads == 1
    assert s.ticker.errors == 0
