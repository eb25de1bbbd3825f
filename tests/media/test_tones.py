"""Tones are checked by measuring the PCM: frequency, level in dBm0 and cadence in ms."""

import math

import pytest

from goip_tw.media import tones
from goip_tw.media.levels import dbm0

from .helpers import goertzel_power, samples


def render(spec, ms):
    g = tones.ToneGenerator(spec)
    return b"".join(g.frame(160) for _ in range(ms // 20)), g


def runs(pcm, block=8):
    """(on, length_ms) runs measured from 1 ms blocks of energy."""
    s = samples(pcm)
    out = []
    for i in range(0, len(s), block):
        on = any(abs(v) > 50 for v in s[i:i + block])
        if out and out[-1][0] == on:
            out[-1][1] += 1
        else:
            out.append([on, 1])
    return [(on, n * block // 8) for on, n in out]


def test_parse_example_and_round_trip():
    spec = tones.parse_tone("1,0,100,0,0,0,0,0,450,0,0,0,23,0,0,0")
    assert spec.freqs == ((450.0, 23),)
    assert spec.cadence == ((100, 0),)
    assert tones.parse_tone(spec.to_string()) == spec
    assert tones.level_to_dbm0(23) == -20


@pytest.mark.parametrize("text, field", [
    ("1,0,100", "16"),
    ("5,0,100,0,0,0,0,0,450,0,0,0,23,0,0,0", "nf"),
    ("1,0,100,0,0,0,0,0,200,0,0,0,23,0,0,0", "f1"),
    ("2,0,100,0,0,0,0,0,450,3500,0,0,23,0,0,0", "f2"),
    ("1,0,100,0,0,0,0,0,450,0,0,0,32,0,0,0", "l1"),
    ("1,0,0,100,0,0,0,0,450,0,0,0,3,0,0,0", "p1on"),
    ("1,x,100,0,0,0,0,0,450,0,0,0,3,0,0,0", "rpt"),
    ("1,0,-5,0,0,0,0,0,450,0,0,0,3,0,0,0", "p1on"),
])
def test_parse_errors_name_the_field(text, field):
    with pytest.raises(tones.ToneError, match=field):
        tones.parse_tone(text)


def test_custom_tone_level_and_frequency():
    pcm, _ = render(tones.parse_tone("1,0,100,0,0,0,0,0,450,0,0,0,23,0,0,0"), 1000)
    s = samples(pcm)
    ms = sum(v * v for v in s) / len(s)
    assert dbm0(ms) == pytest.approx(-20, abs=0.2)
    p450 = goertzel_power(s, 450)
    for f in (350, 400, 500, 900):
        assert goertzel_power(s, f) < p450 / 1000


def test_mixed_frequencies_each_at_its_level():
    spec = tones.parse_tone("3,0,1000,0,0,0,0,0,400,1000,2000,0,10,13,16,0")
    pcm, _ = render(spec, 1000)
    s = samples(pcm)
    n = len(s)
    for f, lv in spec.freqs:
        amp = 2 * math.sqrt(goertzel_power(s, f)) / n
        level = 20 * math.log10(amp / tones.amplitude_for(0))
        assert level == pytest.approx(tones.level_to_dbm0(lv), abs=0.3)


def test_repeat_count_ends_the_tone():
    spec = tones.parse_tone("1,2,100,100,0,0,0,0,1000,0,0,0,10,0,0,0")
    pcm, g = render(spec, 1000)
    assert g.finished
    assert runs(pcm)[:4] == [(True, 100), (False, 100), (True, 100), (False, 700)]


@pytest.mark.parametrize("country, kind, freqs, cadence", [
    ("CN", "dial", (450,), None),
    ("CN", "busy", (450,), [(True, 350), (False, 350)] * 3),
    ("CN", "ringback", (450,), [(True, 1000), (False, 4000), (True, 1000)]),
    ("US", "dial", (350, 440), None),
    ("US", "ringback", (440, 480), [(True, 2000), (False, 4000), (True, 2000)]),
    ("US", "busy", (480, 620), [(True, 500), (False, 500)] * 3),
    ("UK", "ringback", (400, 450), [(True, 400), (False, 200), (True, 400), (False, 2000)]),
    ("UK", "busy", (400,), [(True, 375), (False, 375)] * 3),
    ("EU", "busy", (425,), [(True, 500), (False, 500)] * 3),
    ("EU", "call_waiting", (425,), [(True, 200), (False, 200), (True, 200), (False, 9000)]),
    ("US", "call_waiting", (440,), [(True, 300), (False, 9700)]),
])
def test_presets_measured(country, kind, freqs, cadence):
    spec = tones.preset(country, kind)
    total = 12000 if cadence else 1000
    pcm, _ = render(spec, total)
    measured = runs(pcm)
    if cadence is None:
        assert measured == [(True, total)]
    else:
        assert measured[:len(cadence)] == cadence
    on = samples(pcm[:2 * 8 * 150])  # the first 150 ms are always "on"
    for f in freqs:
        p = goertzel_power(on, f)
        probe = f + 60 if all(abs(f + 60 - g) > 50 for g in freqs) else f - 60
        assert p > 100 * goertzel_power(on, probe)
    level = dbm0(sum(v * v for v in on) / len(on))
    assert -20 < level < -5


def test_every_preset_exists():
    for country in ("CN", "US", "UK", "EU"):
        for kind in tones.KINDS:
            assert tones.preset(country, kind).freqs
    with pytest.raises(tones.ToneError):
        tones.preset("XX", "dial")


def test_phase_continuous_across_frames():
    g = tones.ToneGenerator(tones.preset("EU", "dial"))
    a = samples(g.frame(160) + g.frame(160))
    jumps = max(abs(a[i + 1] - a[i]) for i in range(len(a) - 1))
    assert jumps < 2 * tones.amplitude_for(-10) * math.sin(math.pi * 425 / 8000) + 2
