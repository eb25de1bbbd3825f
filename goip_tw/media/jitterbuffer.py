"""Adaptive jitter buffer: reorders, de-duplicates and paces received RTP payloads.

The buffer holds packets by extended sequence number (16-bit wrap handled)
and hands out one packet per :meth:`JitterBuffer.pop`.  Its target depth
follows the RFC 3550 interarrival jitter estimate (about three times the
jitter plus one packet), bounded by ``min_delay_ms``/``max_delay_ms``:

* it waits (``"empty"``) until the target depth is buffered, at call start and
  after every underrun, so delay grows when the network gets worse;
* a missing packet whose playout time has come while later ones wait is
  declared ``"lost"`` (the caller conceals it); reordering within the buffer's
  delay is repaired;
* when the depth stays above target for a second it drops one packet, and it
  never holds more than ``max_delay_ms``, so delay shrinks again.
"""

from __future__ import annotations

import math

AUDIO, LOST, EMPTY = "audio", "lost", "empty"


class JitterBuffer:
    def __init__(self, clock_rate: int = 8000, packet_ms: int = 20,
                 min_delay_ms: int = 20, max_delay_ms: int = 200, shrink_after: int = 50):
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max(max_delay_ms, min_delay_ms + packet_ms)
        self.shrink_after = shrink_after
        self._packets: dict[int, bytes] = {}
        self._expected: int | None = None   # extended seq of the next packet to play
        self._highest: int | None = None
        self._playing = False
        self._above = 0
        self._transit: float | None = None
        self.jitter = 0.0          # seconds, RFC 3550 A.8 estimator
        self.played = 0
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.overflow_dropped = 0
        self.shrunk = 0
        self.underruns = 0
        self.resyncs = 0
        # bounds fixed for the buffer's life (a new ptime makes a new buffer);
        # put() runs for every packet of every call, so they are not recomputed
        self._max_packets = max(1, self.max_delay_ms // self.packet_ms)
        self._lo = max(1, math.ceil(self.min_delay_ms / self.packet_ms))
        self._update_target()

    # -- depth ------------------------------------------------------------------
    @property
    def max_packets(self) -> int:
        return max(1, self.max_delay_ms // self.packet_ms)

    @property
    def target_packets(self) -> int:
        return self._target

    def _update_target(self) -> None:
        want = (3 * self.jitter * 1000 + self.packet_ms) / self.packet_ms
        target = int(want)
        if target < want:
            target += 1  # ceil without the call
        if target < self._lo:
            target = self._lo
        self._target = target if target < self._max_packets else self._max_packets

    @property
    def depth(self) -> int:
        return len(self._packets)

    @property
    def delay_ms(self) -> int:
        """Current buffering delay (what this buffer adds to the mouth-to-ear delay)."""
        return self.depth * self.packet_ms

    # -- input ------------------------------------------------------------------
    def _extend(self, seq: int) -> int:
        ref = self._expected if self._expected is not None else self._highest
        if ref is None:
            return seq
        return ref + ((seq - ref + 32768) % 65536) - 32768

    def put(self, seq: int, timestamp: int, payload: bytes, arrival: float) -> None:
        """Add one packet (``arrival`` in seconds on any monotonic clock)."""
        transit = arrival - timestamp / self.clock_rate
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 1.0:  # a timestamp jump (new talkspurt/source) is not jitter
                self.jitter += (d - self.jitter) / 16.0
                self._update_target()
        self._transit = transit
        ext = self._extend(seq)
        if self._expected is not None:
            if ext < self._expected:
                if self._expected - ext > 1000:
                    self._resync(ext)
                else:
                    self.late += 1
                    return
            elif ext - self._expected > 1000:
                self._resync(ext)
        if ext in self._packets:
            self.duplicates += 1
            return
        self._packets[ext] = payload
        if self._highest is None or ext > self._highest:
            self._highest = ext
        while len(self._packets) > self._max_packets:
            oldest = min(self._packets)
            del self._packets[oldest]
            self.overflow_dropped += 1
            self._expected = oldest + 1

    def _resync(self, ext: int) -> None:
        """The sender jumped (restart, re-INVITE to another box): start over."""
        self._packets.clear()
        self._expected = None
        self._highest = None
        self._playing = False
        self.resyncs += 1

    # -- output -----------------------------------------------------------------
    def pop(self) -> tuple[str, bytes | None]:
        """The next packet time: ``("audio", payload)``, ``("lost", None)`` or ``("empty", None)``."""
        if not self._playing:
            if len(self._packets) < self.target_packets:
                return EMPTY, None
            self._playing = True
            first = min(self._packets)
            if self._expected is not None and first > self._expected:
                self.lost += first - self._expected  # the gap that caused the underrun
            self._expected = first
        if not self._packets:
            self._playing = False
            self.underruns += 1
            return EMPTY, None
        if len(self._packets) > self.target_packets + 1:
            self._above += 1
            if self._above >= self.shrink_after:
                self._above = 0
                self._drop_one()
        else:
            self._above = 0
        exp = self._expected
        payload = self._packets.pop(exp, None)
        if payload is not None:
            self._expected = exp + 1
            self.played += 1
            return AUDIO, payload
        # its playout time has come and later packets are already waiting: lost
        self._expected = exp + 1
        self.lost += 1
        return LOST, None

    def _drop_one(self) -> None:
        oldest = min(self._packets)
        del self._packets[oldest]
        self.shrunk += 1
        if self._expected is not None and oldest >= self._expected:
            self._expected = oldest + 1

    def figures(self) -> dict:
        return {"jb_delay_ms": self.delay_ms, "jb_target_ms": self.target_packets * self.packet_ms,
                "jb_jitter_ms": round(self.jitter * 1000, 2), "jb_played": self.played,
                "jb_lost": self.lost, "jb_late": self.late, "jb_duplicates": self.duplicates,
                "jb_overflow_dropped": self.overflow_dropped, "jb_shrunk": self.shrunk,
                "jb_underruns": self.underruns}
