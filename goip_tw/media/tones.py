"""Call progress tones: the Appendix B syntax (F-1601) and country presets (F-404).

Syntax: ``nf,rpt,p1on,p1off,p2on,p2off,p3on,p3off,f1,f2,f3,f4,l1,l2,l3,l4`` -
``nf`` 1-4 mixed frequencies, ``rpt`` cadence repetitions (0 = forever), three
on/off steps in ms, frequencies 300-3000 Hz (unused ones 0) and levels 0-31
where 0 = +3 dBm0 and each step is 1 dB lower (23 = -20 dBm0).

Preset frequencies and cadences are those published for each country in the
ITU-T E.180 supplement (China, USA, UK, and the CEPT/ITU 425 Hz tones for
"EU").
"""

from __future__ import annotations

import array
import math

import attrs

from goip_tw.media.levels import amplitude_for  # noqa: F401 (re-exported)

RATE = 8000


class ToneError(ValueError):
    """A bad tone definition; the message names the field."""


def level_to_dbm0(level: int) -> float:
    return 3.0 - level


@attrs.frozen
class ToneSpec:
    freqs: tuple[tuple[float, int], ...]     #: (Hz, level 0-31) per mixed frequency
    cadence: tuple[tuple[int, int], ...]     #: (on ms, off ms) steps, 1-3 of them
    repeat: int = 0                           #: cadence cycles, 0 = forever

    @property
    def cycle_ms(self) -> int:
        return sum(on + off for on, off in self.cadence)

    def to_string(self) -> str:
        fs = [f for f, _ in self.freqs] + [0] * (4 - len(self.freqs))
        ls = [lv for _, lv in self.freqs] + [0] * (4 - len(self.freqs))
        steps = list(self.cadence) + [(0, 0)] * (3 - len(self.cadence))
        nums = [len(self.freqs), self.repeat] + [x for s in steps for x in s] + fs + ls
        return ",".join(str(int(x)) for x in nums)


_NAMES = ("nf", "rpt", "p1on", "p1off", "p2on", "p2off", "p3on", "p3off",
          "f1", "f2", "f3", "f4", "l1", "l2", "l3", "l4")


def parse_tone(text: str) -> ToneSpec:
    """Parse the Appendix B syntax; every error names the offending field."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 16:
        raise ToneError(f"tone: expected 16 comma-separated fields, got {len(parts)}")
    vals = {}
    for name, p in zip(_NAMES, parts):
        try:
            vals[name] = int(p)
        except ValueError:
            raise ToneError(f"tone: field {name} = {p!r} is not an integer") from None
        if vals[name] < 0:
            raise ToneError(f"tone: field {name} = {p} is negative")
    nf = vals["nf"]
    if not 1 <= nf <= 4:
        raise ToneError(f"tone: field nf = {nf} must be 1-4")
    freqs = []
    for i in range(1, nf + 1):
        f, lv = vals[f"f{i}"], vals[f"l{i}"]
        if not 300 <= f <= 3000:
            raise ToneError(f"tone: field f{i} = {f} must be 300-3000 Hz")
        if not 0 <= lv <= 31:
            raise ToneError(f"tone: field l{i} = {lv} must be 0-31")
        freqs.append((float(f), lv))
    steps = []
    for i in (1, 2, 3):
        on, off = vals[f"p{i}on"], vals[f"p{i}off"]
        if on > 60000 or off > 60000:
            raise ToneError(f"tone: field p{i}on/p{i}off must be at most 60000 ms")
        if on or off:
            steps.append((on, off))
    if not steps or not any(on for on, _ in steps):
        raise ToneError("tone: field p1on must be positive (the tone never sounds)")
    return ToneSpec(tuple(freqs), tuple(steps), vals["rpt"])


def _t(freqs, cadence, level=None):
    lv = level if level is not None else (13 if len(freqs) == 1 else 16)
    return ToneSpec(tuple((float(f), lv) for f in freqs), tuple(cadence), 0)


#: name -> {kind -> ToneSpec}; kinds: dial, ringback, busy, call_waiting
PRESETS: dict[str, dict[str, ToneSpec]] = {
    "CN": {"dial": _t([450], [(1000, 0)]),
           "ringback": _t([450], [(1000, 4000)]),
           "busy": _t([450], [(350, 350)]),
           "call_waiting": _t([450], [(400, 4000)])},
    "US": {"dial": _t([350, 440], [(1000, 0)]),
           "ringback": _t([440, 480], [(2000, 4000)]),
           "busy": _t([480, 620], [(500, 500)]),
           "call_waiting": _t([440], [(300, 9700)])},
    "UK": {"dial": _t([350, 450], [(1000, 0)]),
           "ringback": _t([400, 450], [(400, 200), (400, 2000)]),
           "busy": _t([400], [(375, 375)]),
           "call_waiting": _t([400], [(100, 2500)])},
    "EU": {"dial": _t([425], [(1000, 0)]),
           "ringback": _t([425], [(1000, 4000)]),
           "busy": _t([425], [(500, 500)]),
           "call_waiting": _t([425], [(200, 200), (200, 9000)])},
}
KINDS = ("dial", "ringback", "busy", "call_waiting")


def preset(country: str, kind: str) -> ToneSpec:
    try:
        return PRESETS[country.upper()][kind]
    except KeyError:
        raise ToneError(f"tone: no {kind!r} tone for standard {country!r}") from None


class ToneGenerator:
    """Phase-continuous PCM for a :class:`ToneSpec`, one frame at a time."""

    def __init__(self, spec: ToneSpec, rate: int = RATE):
        self.spec = spec
        self.rate = rate
        self._osc = [(2 * math.pi * f / rate, amplitude_for(level_to_dbm0(lv)))
                     for f, lv in spec.freqs]
        # cadence as (samples, on) segments, zero-length ones removed
        self._segments = [seg for on, off in spec.cadence
                          for seg in ((on * rate // 1000, True), (off * rate // 1000, False))
                          if seg[0]]
        if not self._segments:
            raise ToneError("tone: cadence has no duration")
        self._seg = 0
        self._left = self._segments[0][0]
        self._cycles = 0
        self._n = 0  # sample counter for phase continuity
        self.finished = False

    def frame(self, samples: int = 160) -> bytes:
        out = array.array("h", bytes(2 * samples))
        i = 0
        while i < samples and not self.finished:
            take = min(self._left, samples - i)
            if self._segments[self._seg][1]:
                n0 = self._n
                for j in range(take):
                    v = 0.0
                    t = n0 + j
                    for w, a in self._osc:
                        v += a * math.sin(w * t)
                    out[i + j] = max(-32768, min(32767, int(round(v))))
            self._n += take
            i += take
            self._left -= take
            if self._left == 0:
                self._advance()
        return out.tobytes()

    def _advance(self) -> None:
        self._seg += 1
        if self._seg == len(self._segments):
            self._seg = 0
            self._cycles += 1
            if self.spec.repeat and self._cycles >= self.spec.repeat:
                self.finished = True
                return
        self._left = self._segments[self._seg][0]
