import base64

import pytest
from twisted.internet import task

from goip_tw.media import srtp
from goip_tw.media.rtp import RtpStream
from goip_tw.media.vad import EnergyMeter, Gain, OneWayAudio, Vad

from .helpers import rms, samples, sine, speech_like


def frames(pcm):
    return [pcm[i:i + 320] for i in range(0, len(pcm) - 319, 320)]


def test_gain_in_db_with_saturation():
    tone = sine(1000, 20, amplitude=1000)
    assert Gain(0).apply(tone) is tone
    assert rms(Gain(6).apply(tone)) / rms(tone) == pytest.approx(2.0, rel=0.01)
    assert rms(Gain(-6).apply(tone)) / rms(tone) == pytest.approx(0.5, rel=0.01)
    loud = Gain(30).apply(sine(1000, 20, amplitude=20000))
    assert max(samples(loud)) == 32767 and min(samples(loud)) == -32768
    with pytest.raises(ValueError, match="gain"):
        Gain(40)


def test_vad_speech_vs_silence_with_hangover():
    vad = Vad(hangover_frames=5)
    decisions = [vad.is_speech(f) for f in frames(bytes(320 * 20))]
    assert not any(decisions)
    talk = [vad.is_speech(f) for f in frames(sine(300, 200, amplitude=3000))]
    assert all(talk)
    tail = [vad.is_speech(f) for f in frames(bytes(320 * 10))]
    assert tail == [True] * 5 + [False] * 5


def test_vad_adapts_to_background_noise():
    import random
    rnd = random.Random(3)
    import array
    noise = array.array("h", [int(rnd.gauss(0, 300)) for _ in range(8000)]).tobytes()
    vad = Vad(hangover_frames=0)
    res = [vad.is_speech(f) for f in frames(noise * 3)]
    assert sum(res[-50:]) <= 2  # steady noise becomes the floor
    loud = [vad.is_speech(f) for f in frames(sine(400, 200, amplitude=8000))]
    assert all(loud)


def test_energy_meter_levels():
    m = EnergyMeter()
    assert m.update(sine(1000, 20, amplitude=22786 * 10 ** (-10 / 20)))
    assert m.level == pytest.approx(-10, abs=0.2)
    assert not m.update(bytes(320))
    assert not m.update(None)


def test_one_way_audio_flag_both_directions_and_recovery():
    ow = OneWayAudio(window_s=2)
    talk = frames(speech_like(2000, seed=2))
    for f in talk:
        ow.update(None, f)
    assert ow.flag == "no_audio_from_rtp"
    for f in talk:
        ow.update(f, bytes(320))
    assert ow.flag == "no_audio_from_module"
    for f in talk:
        ow.update(f, f)
    assert ow.flag is None
    assert ow.flag_count == 2
    for _ in range(100):
        ow.update(None, None)  # both silent (hold): not one-way
    assert ow.flag is None



def test_energy_meter_peak_average_and_odd_frames():
    from goip_tw.media import _dsp
    from goip_tw.media.levels import dbm0
    m = EnergyMeter()
    tone = sine(1000, 20, amplitude=3000)
    ms, peak = _dsp.energy(tone)
    assert m.update(tone) and m.peak == peak == max(abs(x) for x in samples(tone))
    assert m.average_dbm0 == dbm0(0.1 * ms)
    assert not m.update(None)
    assert m.average_dbm0 == dbm0(0.1 * ms * 0.9) and m.level == float("-inf")
    assert not m.update(b"\x7f")  # no whole sample: silent, peak 0
    assert (m.peak, m.frames, m.active_frames) == (0, 3, 1)
    with pytest.raises(TypeError):
        m.update(bytearray(tone))


def test_one_way_audio_update_returns_the_flag_and_figures():
    ow = OneWayAudio(window_s=0.1, min_active_s=0.04)  # five frames, two must be active
    talk = sine(400, 20, amplitude=3000)
    results = [ow.update(None, talk) for _ in range(5)]
    assert results == [None] * 4 + ["no_audio_from_rtp"]
    fig = ow.figures()
    assert fig["one_way_audio"] == "no_audio_from_rtp" and fig["rx_level_dbm0"] == float("-inf")
    assert fig["tx_level_dbm0"] == round(ow.tx.average_dbm0, 1)
    assert (ow.window, ow.min_active, ow.rx.frames, ow.tx.active_frames) == (5, 2, 5, 5)


# -- SRTP -----------------------------------------------------------------------

def test_crypto_attribute_round_trip():
    a = srtp.new_crypto(1)
    line = a.to_sdp()
    assert line.startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    assert srtp.parse_crypto("a=crypto:" + line) == a
    with_lifetime = line + "|2^31"
    assert srtp.parse_crypto(with_lifetime).key == a.key


@pytest.mark.parametrize("value, field", [
    ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", "tag"),
    ("1 AES_CM_128_HMAC_SHA1_32 inline:AAAA", "suite"),
    ("1 AES_CM_128_HMAC_SHA1_80 uri:xyz", "inline"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!", "base64"),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(b"x" * 10).decode(), "10 bytes"),
    ("1", "expected"),
])
def test_crypto_errors_name_the_field(value, field):
    with pytest.raises(srtp.SrtpError, match=field):
        srtp.parse_crypto(value)


def test_choose_skips_unsupported_offers():
    good = srtp.new_crypto(2)
    chosen = srtp.choose(["1 AES_256_CM_HMAC_SHA1_80 inline:AAAA", good.to_sdp()])
    assert chosen == good
    with pytest.raises(srtp.SrtpError):
        srtp.choose([])


class Wire:
    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append(data)


def test_srtp_round_trip_through_streams_and_tamper_detection():
    a_key, b_key = srtp.new_crypto(1), srtp.new_crypto(1)
    clock = task.Clock()
    got = []
    a = RtpStream(clock, payload_types={0}, srtp=srtp.SrtpContext(a_key, b_key))
    b = RtpStream(clock, payload_types={0}, on_packet=got.append,
                  srtp=srtp.SrtpContext(b_key, a_key))
    a.transport = Wire()
    a.set_remote(("127.0.0.1", 1))
    for i in range(5):
        a.send(bytes([i]) * 160, 0, 160)
    wire = a.transport.sent
    assert all(len(p) == 12 + 160 + 10 for p in wire)  # 80-bit auth tag
    assert all(bytes([i]) * 160 not in p for i, p in enumerate(wire))  # encrypted
    for p in wire:
        b.datagramReceived(p, ("127.0.0.1", 1))
    assert [p.payload[0] for p in got] == [0, 1, 2, 3, 4]
    tampered = bytearray(wire[0])
    tampered[20] ^= 1
    b.datagramReceived(bytes(tampered), ("127.0.0.1", 1))
    b.datagramReceived(wire[1], ("127.0.0.1", 1))  # replay
    assert b.counters.srtp_failed == 2 and len(got) == 5
    # RTCP too
    sa = srtp.SrtpContext(a_key, b_key)
    sb = srtp.SrtpContext(b_key, a_key)
    from goip_tw.media import rtcp
    report = rtcp.build_rr(a.ssrc)
    assert sb.unprotect_rtcp(sa.protect_rtcp(report)) == report
