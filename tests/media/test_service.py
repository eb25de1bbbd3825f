import attrs
import pytest
import pytest_twisted
from twisted.internet import task

from goip_tw.config.sections.media import MediaConfig
from goip_tw.media import codecs
from goip_tw.media.interfaces import FrameQueue
from goip_tw.media.service import MediaService, build_service
from goip_tw.sip import sdp
from tests.peers.peerutil import free_port


def rtp_ports(n):
    """An RTP range of ``n`` ports below the kernel's ephemeral range (where a fixed
    range could meet other sockets' bind(0) ports)."""
    low = free_port(span=n)
    return {"rtp_port_min": low, "rtp_port_max": low + n - 1}


class Line:
    def __init__(self, number):
        self.number = number
        self.voice = FrameQueue()


class Modems:
    def __init__(self):
        self.lines = [Line(1), Line(2)]

    def line(self, n):
        return next((x for x in self.lines if x.number == n), None)


class Gateway:
    def __init__(self, reactor):
        self.reactor = reactor
        self.rtp_ports = rtp_ports(21)
        self.config = type("C", (), {"media": attrs.evolve(MediaConfig(), **self.rtp_ports,
                                                            public_address="198.51.100.7")})()
        self.modems = Modems()

    def subsystem(self, name):
        return self.modems if name == "modems" else None


class Leg:
    call_id = "c1"
    listener = None

    def hangup(self):
        self.hung = True


@pytest_twisted.inlineCallbacks
def test_build_service_finds_voice_ports_and_speaks_sdp():
    from twisted.internet import reactor
    gw = Gateway(reactor)
    svc = build_service(gw)
    assert isinstance(svc, MediaService) and svc.name == "media"
    assert svc.calls_media(object()) is svc
    assert svc.voice_port_of(2) is gw.modems.lines[1].voice
    assert svc.voice_port_of(9) is None
    svc.startService()
    leg = Leg()
    offer = svc.local_sdp(leg, None).decode()
    assert "c=IN IP4 198.51.100.7" in offer
    assert "a=rtpmap:8 PCMA/8000" in offer and "a=rtpmap:101 telephone-event/8000" in offer
    if codecs.G729.available:
        assert "a=rtpmap:18 G729/8000" in offer and "a=fmtp:18 annexb=yes" in offer
    port = int(offer.split("m=audio ")[1].split()[0])
    assert port % 2 == 0 and gw.rtp_ports["rtp_port_min"] <= port <= gw.rtp_ports["rtp_port_max"]
    svc.remote_sdp(leg, ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                         "t=0 0\r\nm=audio 43500 RTP/AVP 0 101\r\n"
                         "a=rtpmap:101 telephone-event/8000\r\n").encode())
    assert svc.codec_of(leg) == "PCMU"
    handle = svc.bridge(1, leg)
    yield task.deferLater(reactor, 0.1, lambda: None)
    stats = handle.stop()
    assert stats.codec == "PCMU" and stats.one_way is False
    assert stats.details["sent"] >= 3
    assert svc.send_dtmf(leg, "1") is True
    assert svc.figures()["calls"] == 1
    yield svc.stopService()
    assert svc.figures()["calls"] == 0 and not svc.ports.in_use
    assert len(svc.ticker) == 0


def test_rtp_timeout_hangs_up_and_tells_the_listener():
    clock = task.Clock()
    cfg = attrs.evolve(MediaConfig(), rtp_port_min=43440, rtp_port_max=43460)
    svc = MediaService(clock, cfg, address="127.0.0.1")
    ended = []

    class Listener:
        def leg_ended(self, leg, code, reason):
            ended.append(reason)

    leg = Leg()
    leg.listener = Listener()
    svc._rtp_timeout(leg)
    assert leg.hung and ended == ["RTP timeout"]


def test_tone_spec_uses_custom_definition_first():
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), tone_standard="UK",
                       custom_busy_tone="1,0,200,200,0,0,0,0,500,0,0,0,13,0,0,0")
    svc = MediaService(reactor, cfg, address="127.0.0.1")
    assert svc.tone_spec("busy").freqs == ((500.0, 13),)
    assert svc.tone_spec("dial").freqs == ((350.0, 16), (450.0, 16))
    assert svc.tone_spec("waiting").cadence == ((100, 2500),)


@pytest_twisted.inlineCallbacks
def test_inband_dtmf_goes_out_as_tones_and_is_detected_at_the_far_end():
    from twisted.internet import reactor

    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20), dtmf_mode="inband", codecs=("PCMU",))
    ports = {}
    a = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1",
                     voice_port_of=lambda n: ports.setdefault(n, FrameQueue()))
    b = MediaService(reactor, attrs.evolve(cfg, **rtp_ports(20)),
                     address="127.0.0.1", interface="127.0.0.1",
                     voice_port_of=lambda n: ports.setdefault(n + 10, FrameQueue()))
    la, lb = Leg(), Leg()
    answer = b.local_sdp(lb, a.local_sdp(la, None))
    assert b"telephone-event" not in answer
    a.remote_sdp(la, answer)
    digits = []
    hb = b.bridge(1, lb)
    det = b.detect_leg_dtmf(lb, digits.append)
    assert a.send_dtmf(la, "4", 80) and a.send_dtmf(la, "#", 80)
    yield task.deferLater(reactor, 0.8, lambda: None)
    det.stop()
    hb.stop()
    assert digits == ["4", "#"]
    a.release(la)
    b.release(lb)
    assert len(a.ticker) == 0 and len(b.ticker) == 0


def test_swapping_legs_on_a_line_keeps_one_reader_per_port():
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20))
    port = FrameQueue()
    svc = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1",
                       voice_port_of=lambda n: port)
    l1, l2 = Leg(), Leg()
    svc.local_sdp(l1, None)
    svc.local_sdp(l2, None)
    h1 = svc.bridge(1, l1)
    h1.stop()
    h2 = svc.bridge(1, l2)
    t = svc.tone_to_leg(l1, "waiting")  # the held leg hears a tone: must not touch the port
    readers = [s for s in set(svc._leg_sessions.values()) | set(svc._line_sessions.values())
               if s.line is not None and s.line.port is port]
    assert len(readers) == 1
    t.stop()
    h2.stop()
    svc.release(l1)
    svc.release(l2)
    assert len(svc.ticker) == 0 and not svc.ports.in_use


def test_bad_answer_is_reported_not_raised():
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20), codecs=("PCMA",))
    svc = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1")
    leg = Leg()
    svc.local_sdp(leg, None)
    assert svc.remote_sdp(leg, b"garbage") is False
    assert svc.remote_sdp(leg, b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n") is False
    assert svc.remote_sdp(leg, b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 8\r\n") is True
    svc.release(leg)


def test_answer_keeps_the_offers_stream_count():
    """RFC 3264 §6: a video stream next to the audio one is refused with port 0 in
    an answer that still has one m= line per offered stream (goip_tw.sip.sdp)."""
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20), codecs=("PCMA",))
    svc = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1")
    leg = Leg()
    offer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
             b"m=audio 5000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
             b"a=sendonly\r\n")
    answer = sdp.Session.parse(svc.local_sdp(leg, offer))
    assert [(m.kind, m.port == 0) for m in answer.media] == [("video", True), ("audio", False)]
    audio = answer.media[1]
    assert audio.formats == ("8", "101") and audio.direction == "recvonly"
    assert audio.port in svc.ports.in_use
    assert svc.codec_of(leg) == "PCMA"
    svc.release(leg)
    assert not svc.ports.in_use


def test_hostile_numbers_in_sdp_are_refused_not_raised():
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20), codecs=("PCMA",))
    svc = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1")
    leg = Leg()
    svc.local_sdp(leg, None)
    base = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 5000 RTP/AVP 8\r\n"
    for bad in ("a=ptime:inf\r\n", "a=ptime:1e400\r\n", "a=ptime:nan\r\n"):
        assert svc.remote_sdp(leg, (base + bad).encode()) is False
    assert svc.remote_sdp(leg, "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio \u00b2 RTP/AVP 8\r\n"
                          .encode()) is False
    other = Leg()
    with pytest.raises(sdp.SdpError, match="ptime"):
        svc.local_sdp(other, (base + "a=ptime:99999\r\n").encode())  # the caller answers 488
    assert svc.remote_sdp(leg, (base + "a=ptime:30\r\n").encode()) is True
    svc.release(leg)
    svc.release(other)
    assert not svc.ports.in_use


def test_answer_picks_the_configured_codec_order_not_the_offerers():
    """F-440: the operator's codec order decides among codecs both sides offer."""
    from twisted.internet import reactor
    cfg = attrs.evolve(MediaConfig(), **rtp_ports(20), codecs=("PCMA", "PCMU"))
    svc = MediaService(reactor, cfg, address="127.0.0.1", interface="127.0.0.1")
    leg = Leg()
    offer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 5000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    answer = sdp.Session.parse(svc.local_sdp(leg, offer))
    assert answer.media[0].formats == ("8", "101")
    assert svc.codec_of(leg) == "PCMA"
    svc.release(leg)
