import pytest
from twisted.internet import task

from goip_tw.media import dtmf
from goip_tw.media.rtp import RtpPacket, RtpStream

from .helpers import speech_like

GAP = bytes(2 * 400)  # 50 ms of silence


def detect(pcm, **kw):
    got = []
    det = dtmf.DtmfDetector(got.append, **kw)
    for i in range(0, len(pcm), 320):  # fed in 20 ms frames, like the bridge does
        det.feed(pcm[i:i + 320])
    return [e.digit for e in got]


@pytest.mark.parametrize("digit", list(dtmf.DIGITS))
def test_every_digit_at_40ms_and_minimum_level_any_alignment(digit):
    for offset in (0, 7, 13, 21, 33):
        pcm = bytes(2 * offset) + dtmf.generate(digit, 40, level_dbm0=-26) + GAP
        assert detect(pcm) == [digit], offset


@pytest.mark.parametrize("digit", list(dtmf.DIGITS))
def test_every_digit_shorter_than_23ms_is_rejected(digit):
    for offset in (0, 11, 19, 29, 37):
        pcm = bytes(2 * offset) + dtmf.generate(digit, 22) + GAP
        assert detect(pcm) == [], offset


@pytest.mark.parametrize("twist, ok", [(7.0, True), (-3.5, True), (10.0, False), (-6.0, False)])
def test_twist_limits(twist, ok):
    pcm = GAP + dtmf.generate("8", 60, level_dbm0=-12, twist_db=twist) + GAP
    assert detect(pcm) == (["8"] if ok else [])


def test_level_limits():
    assert detect(dtmf.generate("3", 60, level_dbm0=-27) + GAP) == ["3"]
    assert detect(dtmf.generate("3", 60, level_dbm0=-36) + GAP) == []
    assert detect(dtmf.generate("3", 60, level_dbm0=-2, twist_db=2) + GAP) == ["3"]


@pytest.mark.parametrize("scale", [0.985, 1.015])
def test_frequency_tolerance(scale):
    assert detect(dtmf.generate("9", 60, freq_scale=scale) + GAP) == ["9"]


def test_digit_sequence_and_long_press_reported_once():
    pcm = b"".join(dtmf.generate(d, 70) + GAP for d in "147*0#")
    pcm += dtmf.generate("5", 1500) + GAP
    assert detect(pcm) == list("147*0#5")


def test_no_false_digits_in_speech_like_noise():
    assert detect(speech_like(30000, seed=7)) == []


def test_no_false_digits_in_speech_with_dtmf_after():
    pcm = speech_like(3000, seed=3) + GAP + dtmf.generate("2", 50) + GAP
    assert detect(pcm) == ["2"]


# -- RFC 4733 -------------------------------------------------------------------

class FakeTransport:
    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append(data)


def test_event_payload_round_trip_and_errors():
    p = dtmf.encode_event("#", 800, end=True, volume=10)
    assert p == b"\x0b\x8a\x03\x20"
    assert dtmf.decode_event(p) == ("#", True, 10, 800)
    with pytest.raises(dtmf.DtmfError, match="event code"):
        dtmf.decode_event(b"\x10\x00\x00\x00")
    with pytest.raises(dtmf.DtmfError, match="payload"):
        dtmf.decode_event(b"\x01")
    with pytest.raises(dtmf.DtmfError, match="digit"):
        dtmf.encode_event("X", 1)


def sender_packets(digits, duration_ms=100):
    stream = RtpStream(task.Clock(), payload_types={101})
    stream.transport = FakeTransport()
    stream.set_remote(("127.0.0.1", 4000))
    s = dtmf.Rfc4733Sender(payload_type=101)
    for d in digits:
        s.queue(d, duration_ms)
    voice = 0
    for _ in range(200):
        if not s.tick(stream):
            voice += 1
            stream.send(b"\xd5" * 160, 8, 160)
        if not s.busy:
            break
    return stream, [RtpPacket.parse(d) for d in stream.transport.sent]


def test_sender_keeps_timestamp_grows_duration_and_repeats_end():
    stream, pkts = sender_packets("7", 100)
    ev = [p for p in pkts if p.payload_type == 101]
    assert ev[0].marker and not any(p.marker for p in ev[1:])
    assert len({p.timestamp for p in ev}) == 1
    decoded = [dtmf.decode_event(p.payload) for p in ev]
    assert [d[3] for d in decoded] == [160, 320, 480, 640, 800, 800, 800]
    assert [d[1] for d in decoded] == [False] * 4 + [True] * 3
    seqs = [p.sequence for p in pkts]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))
    # media time kept running: the stream timestamp advanced by one packet per tick
    assert stream.timestamp == (ev[0].timestamp + 160 * len(pkts)) & 0xFFFFFFFF


def test_receiver_reports_once_despite_repeats_and_losses():
    _, pkts = sender_packets("12", 100)
    got = []
    rx = dtmf.Rfc4733Receiver(got.append)
    ev = [p for p in pkts if p.payload_type == 101]
    for p in ev:
        rx.packet(p)
        rx.packet(p)  # duplicated by the network
    assert [(e.digit, e.duration_ms) for e in got] == [("1", 100), ("2", 100)]
    # end packets of the first event lost: the next event flushes it
    got.clear()
    rx = dtmf.Rfc4733Receiver(got.append)
    for p in ev:
        if dtmf.decode_event(p.payload)[0] == "1" and dtmf.decode_event(p.payload)[1]:
            continue
        rx.packet(p)
    assert [e.digit for e in got] == ["1", "2"]
    assert got[0].duration_ms == 80
    rx.packet(RtpPacket(101, 1, 5, 1, b"\xff\x00\x00\x00"))
    assert rx.malformed == 1


def test_sender_rejects_bad_input():
    s = dtmf.Rfc4733Sender()
    with pytest.raises(dtmf.DtmfError, match="digit"):
        s.queue("x")
    with pytest.raises(dtmf.DtmfError, match="duration"):
        s.queue("1", 5)


# -- SIP INFO -------------------------------------------------------------------

def test_info_bodies_both_ways():
    ct, body = dtmf.info_body("5", 250)
    assert ct == "application/dtmf-relay" and body == b"Signal=5\r\nDuration=250\r\n"
    assert dtmf.parse_info(ct, body) == dtmf.DtmfEvent("5", 250, "info")
    ct, body = dtmf.info_body("#", content_type="application/dtmf")
    assert body == b"#"
    assert dtmf.parse_info("application/dtmf; charset=x", b"#\r\n").digit == "#"
    assert dtmf.parse_info("Application/DTMF-Relay", b"signal= *\nduration = 90").digit == "*"


@pytest.mark.parametrize("ctype, body, field", [
    ("application/dtmf-relay", b"Duration=100", "Signal"),
    ("application/dtmf-relay", b"Signal=1\r\nDuration=abc", "Duration"),
    ("application/dtmf-relay", b"Signal=Z", "digit"),
    ("application/dtmf-relay", b"Signal=1\r\nDuration=0", "Duration"),
    ("text/plain", b"1", "content type"),
    ("application/dtmf", b"\xff", "UTF-8"),
])
def test_info_errors_name_the_field(ctype, body, field):
    with pytest.raises(dtmf.DtmfError, match=field):
        dtmf.parse_info(ctype, body)
