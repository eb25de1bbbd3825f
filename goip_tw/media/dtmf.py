"""DTMF in every form a line may use (F-427).

* RFC 4733 telephone events (formerly RFC 2833): :class:`Rfc4733Sender` keeps
  the event's start timestamp, grows the duration every packet and repeats the
  end packet three times (RFC 4733 section 2.5.1.4); :class:`Rfc4733Receiver`
  reports each event once, even when end packets are lost or repeated.
* SIP INFO bodies: ``application/dtmf-relay`` (``Signal=`` / ``Duration=``) and
  ``application/dtmf`` (the bare digit).
* In-band: :func:`generate` makes the tone pair; :class:`DtmfDetector` finds
  digits in PCM with a Goertzel filter bank, checking level, twist, the share
  of the window's energy in the two tones and duration in the spirit of
  ITU-T Q.24 (accept >= 40 ms, reject < 23 ms).
"""

from __future__ import annotations

import math
import struct
from typing import Callable

import attrs

from goip_tw.media import _dsp
from goip_tw.media.levels import amplitude_for, dbm0

DIGITS = "0123456789*#ABCD"
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
_CODE = {d: i for i, d in enumerate(DIGITS)}


class DtmfError(ValueError):
    """Bad DTMF input; the message names the field."""


@attrs.frozen
class DtmfEvent:
    digit: str
    duration_ms: int
    source: str  # "rfc4733", "info" or "inband"


def _check_digit(digit: str) -> str:
    d = digit.upper() if isinstance(digit, str) else ""
    if len(d) != 1 or d not in _CODE:
        raise DtmfError(f"dtmf: digit {digit!r} is not one of {DIGITS}")
    return d


def freqs(digit: str) -> tuple[float, float]:
    d = _check_digit(digit)
    for r, row in enumerate(KEYPAD):
        c = row.find(d)
        if c >= 0:
            return ROWS[r], COLS[c]
    raise AssertionError(d)


# -- RFC 4733 ---------------------------------------------------------------------

def encode_event(digit: str, duration: int, end: bool = False, volume: int = 10) -> bytes:
    """Telephone-event payload; ``duration`` in timestamp units, ``volume`` in -dBm0."""
    return struct.pack("!BBH", _CODE[_check_digit(digit)], (0x80 if end else 0) | (volume & 0x3F),
                       min(duration, 0xFFFF))


def decode_event(payload: bytes) -> tuple[str, bool, int, int]:
    """``(digit, end, volume, duration)``; events other than 0-15 raise DtmfError."""
    if len(payload) < 4:
        raise DtmfError(f"rfc4733: payload of {len(payload)} bytes, need 4")
    code, flags, duration = struct.unpack_from("!BBH", payload)
    if code >= len(DIGITS):
        raise DtmfError(f"rfc4733: event code {code} is not a DTMF digit")
    return DIGITS[code], bool(flags & 0x80), flags & 0x3F, duration


class Rfc4733Sender:
    """Turns queued digits into one telephone-event packet per packet time.

    Call :meth:`tick` once per packet time with the stream; it returns True
    when it sent an event packet (the voice frame of that tick is then not sent).
    """

    def __init__(self, payload_type: int = 101, packet_samples: int = 160,
                 volume: int = 10, end_repeats: int = 3, pause_ms: int = 60):
        self.payload_type = payload_type
        self.packet_samples = packet_samples
        self.volume = volume
        self.end_repeats = end_repeats
        self.pause_packets = pause_ms * 8 // packet_samples
        self._queue: list[tuple[str, int]] = []
        self._digit = None
        self._ts = 0
        self._elapsed = 0
        self._total = 0
        self._ends_left = 0
        self._pause = 0
        self.sent_digits = 0

    def queue(self, digit: str, duration_ms: int = 100) -> None:
        d = _check_digit(digit)
        if not 40 <= duration_ms <= 5000:
            raise DtmfError(f"dtmf: duration_ms {duration_ms} outside 40-5000")
        self._queue.append((d, duration_ms * 8))

    @property
    def busy(self) -> bool:
        return bool(self._digit or self._queue or self._pause)

    def tick(self, stream) -> bool:
        if self._digit is None:
            if self._pause:
                self._pause -= 1
                return False
            if not self._queue:
                return False
            self._digit, self._total = self._queue.pop(0)
            self._ts = stream.timestamp
            self._elapsed = 0
            self._ends_left = self.end_repeats
            first = True
        else:
            first = False
        if self._elapsed < self._total:
            self._elapsed = min(self._total, self._elapsed + self.packet_samples)
            end = self._elapsed >= self._total
        else:
            end = True
        payload = encode_event(self._digit, self._elapsed, end, self.volume)
        stream.send(payload, self.payload_type, self.packet_samples, marker=first,
                    timestamp=self._ts)
        if end:
            self._ends_left -= 1
            if self._ends_left <= 0:
                self._digit = None
                self.sent_digits += 1
                self._pause = self.pause_packets
        return True


class Rfc4733Receiver:
    """Reports each received telephone event once, with its duration."""

    def __init__(self, on_digit: Callable[[DtmfEvent], None], clock_rate: int = 8000):
        self.on_digit = on_digit
        self.clock_rate = clock_rate
        self._current: tuple[int, str, int] | None = None  # (timestamp, digit, duration)
        self._done: list[int] = []
        self.malformed = 0

    def packet(self, pkt) -> None:
        try:
            digit, end, _volume, duration = decode_event(pkt.payload)
        except DtmfError:
            self.malformed += 1
            return
        ts = pkt.timestamp
        if ts in self._done:
            return
        if self._current is not None and self._current[0] != ts:
            self.flush()
        self._current = (ts, digit, max(duration, self._current[2] if self._current else 0))
        if end:
            self.flush()

    def flush(self) -> None:
        """End the event in progress (its end packets were lost); call on voice."""
        if self._current is None:
            return
        ts, digit, duration = self._current
        self._current = None
        self._done = (self._done + [ts])[-8:]
        self.on_digit(DtmfEvent(digit, duration * 1000 // self.clock_rate, "rfc4733"))


# -- SIP INFO -----------------------------------------------------------------------

DTMF_RELAY = "application/dtmf-relay"
DTMF_PLAIN = "application/dtmf"


def info_body(digit: str, duration_ms: int = 160,
              content_type: str = DTMF_RELAY) -> tuple[str, bytes]:
    d = _check_digit(digit)
    if content_type == DTMF_RELAY:
        return content_type, f"Signal={d}\r\nDuration={int(duration_ms)}\r\n".encode()
    if content_type == DTMF_PLAIN:
        return content_type, d.encode()
    raise DtmfError(f"sip info: content type {content_type!r} is not a DTMF type")


def parse_info(content_type: str, body: bytes) -> DtmfEvent:
    ctype = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DtmfError("sip info: body is not UTF-8") from None
    if ctype == DTMF_PLAIN:
        return DtmfEvent(_check_digit(text), 160, "info")
    if ctype != DTMF_RELAY:
        raise DtmfError(f"sip info: content type {content_type!r} is not a DTMF type")
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip().lower()] = v.strip()
    if "signal" not in fields:
        raise DtmfError("sip info: Signal field missing")
    try:
        duration = int(fields.get("duration", "160"))
    except ValueError:
        raise DtmfError(f"sip info: Duration {fields['duration']!r} is not a number") from None
    if not 0 < duration <= 60000:
        raise DtmfError(f"sip info: Duration {duration} out of range")
    return DtmfEvent(_check_digit(fields["signal"]), duration, "info")


# -- in-band -----------------------------------------------------------------------

def generate(digit: str, duration_ms: int = 100, level_dbm0: float = -7.0,
             twist_db: float = 2.0, rate: int = 8000, freq_scale: float = 1.0) -> bytes:
    """PCM of one DTMF tone: low tone at ``level_dbm0``, high tone ``twist_db`` higher."""
    lo, hi = freqs(digit)
    a_lo = amplitude_for(level_dbm0)
    a_hi = amplitude_for(level_dbm0 + twist_db)
    n = rate * duration_ms // 1000
    w_lo = 2 * math.pi * lo * freq_scale / rate
    w_hi = 2 * math.pi * hi * freq_scale / rate
    out = bytearray(2 * n)
    for i in range(n):
        v = int(round(a_lo * math.sin(w_lo * i) + a_hi * math.sin(w_hi * i)))
        struct.pack_into("<h", out, 2 * i, max(-32768, min(32767, v)))
    return bytes(out)


class DtmfDetector:
    """Goertzel DTMF detector over a 102-sample window sliding by 40 samples (5 ms).

    A window "hits" a digit when both tones are above ``min_level_dbm0``, each
    is the clear maximum of its group, the twist is within limits and the two
    tones carry most of the window's energy (speech spreads its energy over
    harmonics).  Windows that only partly overlap the tone carry less of it,
    so the run of windows at no less than half the run's peak power measures
    the tone's length: a 23 ms tone yields at most 4 such windows, a 35 ms tone
    at least 5 and a 40 ms tone at least 6 whatever its alignment, so the
    default ``min_windows=5`` accepts >= 40 ms and rejects < 23 ms (Q.24).
    """

    WINDOW = 102
    HOP = 40

    def __init__(self, on_digit: Callable[[DtmfEvent], None], *, rate: int = 8000,
                 min_level_dbm0: float = -30.0, max_high_over_low_db: float = 8.0,
                 max_low_over_high_db: float = 4.0, min_tone_share: float = 0.65,
                 min_windows: int = 5, rel_peak_db: float = 8.0):
        self.on_digit = on_digit
        self.rate = rate
        self._coeffs = _dsp.coefficients(ROWS + COLS, rate)
        self.min_level = min_level_dbm0
        self.max_hi_lo = max_high_over_low_db
        self.max_lo_hi = max_low_over_high_db
        self.min_share = min_tone_share
        self.rel_peak = 10 ** (rel_peak_db / 10)
        self.min_windows = min_windows
        self._buf = b""
        self._run_digit: str | None = None
        self._run: list[float] = []
        self._reported = False
        self._misses = 0

    def feed(self, pcm: bytes) -> None:
        buf = self._buf + pcm
        n = len(buf) // 2
        start = 0
        while start + self.WINDOW <= n:
            self._window(buf, start)
            start += self.HOP
        self._buf = buf[2 * start:]

    def _classify(self, buf: bytes, start: int):
        p = _dsp.goertzel(buf, start, self.WINDOW, self._coeffs)
        energy = p[8]
        if energy <= 0:
            return None, 0.0
        rows, cols = p[0:4], p[4:8]
        r = max(range(4), key=rows.__getitem__)
        c = max(range(4), key=cols.__getitem__)
        pr, pc = rows[r], cols[c]
        scale = 2.0 / self.WINDOW  # |X|^2 of a sine -> its energy in the window
        er, ec = pr * scale, pc * scale
        if (er + ec) < self.min_share * energy:
            return None, 0.0
        n = self.WINDOW
        lvl_r = dbm0(er / n)
        lvl_c = dbm0(ec / n)
        if lvl_r < self.min_level or lvl_c < self.min_level:
            return None, 0.0
        twist = lvl_c - lvl_r
        if twist > self.max_hi_lo or -twist > self.max_lo_hi:
            return None, 0.0
        for i in range(4):
            if i != r and rows[i] * self.rel_peak > pr:
                return None, 0.0
            if i != c and cols[i] * self.rel_peak > pc:
                return None, 0.0
        return KEYPAD[r][c], er + ec

    def _window(self, buf: bytes, start: int) -> None:
        digit, power = self._classify(buf, start)
        if digit is not None and digit == self._run_digit:
            self._run.append(power)
            self._misses = 0
        elif digit is not None:
            self._end_run()
            self._run_digit = digit
            self._run = [power]
        else:
            self._end_run()
            return
        if not self._reported:
            peak = max(self._run)
            strong = sum(1 for x in self._run if x >= peak * 0.5)
            if strong >= self.min_windows:
                self._reported = True
                self.on_digit(DtmfEvent(digit, int(strong * self.HOP * 1000 / self.rate), "inband"))

    def _end_run(self) -> None:
        self._run_digit = None
        self._run = []
        self._reported = False
