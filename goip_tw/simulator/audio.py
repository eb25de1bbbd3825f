"""Audio for simulated calls: one shared 20 ms ticker and sound sources.

Every active call moves one 320-byte frame (8 kHz, s16le, mono, 20 ms) each
way per tick.  A single ``LoopingCall`` serves all modules, and it only runs
while some call is active, so an idle simulator costs nothing.
"""

from __future__ import annotations

import math
import struct
import wave

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

RATE = 8000
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)
MAX_CATCH_UP = 5


class AudioTicker:
    def __init__(self, network, interval: float = 0.02):
        self.network = network
        self.interval = interval
        self._loop = None
        self.ticks = 0

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    def start(self) -> None:
        """Called by the network; the loop itself starts with the first call."""

    def ensure(self) -> None:
        if self.running:
            return
        self._loop = LoopingCall.withCount(self.tick)
        self._loop.clock = self.network.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self.running:
            self._loop.stop()
        self._loop = None

    def tick(self, count: int = 1) -> None:
        calls = self.network.audio_calls()
        if not calls:
            self.stop()
            return
        for _ in range(min(max(count, 1), MAX_CATCH_UP)):
            self.ticks += 1
            for call in calls:
                if call.state == "alerting" and call.ringback is not None:
                    early = getattr(call.a, "push_early_audio", None)
                    if early is not None:
                        early(call, call.ringback.frame())
                    continue
                if call.state != "active" or call.b is None:
                    continue
                try:
                    from_a = call.a.pull_audio(call)
                    from_b = call.b.pull_audio(call)
                    call.a.push_audio(call, from_b)
                    call.b.push_audio(call, from_a)
                except Exception:
                    log.failure("simulator audio failed for call {call}", call=call.id)


class ToneSource:
    """A continuous sine tone (phase kept across frames)."""

    def __init__(self, freq: float, amplitude: int = 8000):
        if not 50 <= freq <= 3900:
            raise ValueError("tone frequency must be 50..3900 Hz")
        self.step = 2 * math.pi * freq / RATE
        self.amplitude = amplitude
        self.phase = 0.0

    def frame(self) -> bytes:
        samples = []
        phase = self.phase
        for _ in range(FRAME_SAMPLES):
            samples.append(int(self.amplitude * math.sin(phase)))
            phase += self.step
        self.phase = phase % (2 * math.pi)
        return struct.pack(f"<{FRAME_SAMPLES}h", *samples)


class CadenceSource:
    """A tone switched on and off (ringback: 425 Hz, 1 s on, 4 s off, as in
    ITU-T E.180 / most of Europe)."""

    def __init__(self, freq: float = 425, on_ms: int = 1000, off_ms: int = 4000,
                 amplitude: int = 6000):
        self.tone = ToneSource(freq, amplitude)
        self.on_frames = max(1, on_ms // 20)
        self.period = self.on_frames + max(0, off_ms // 20)
        self.position = 0

    def frame(self) -> bytes:
        on = self.position < self.on_frames
        self.position = (self.position + 1) % self.period
        return self.tone.frame() if on else SILENCE


class WavSource:
    """Loops a WAV file that must already be 8 kHz, 16-bit, mono."""

    def __init__(self, path: str):
        with wave.open(path, "rb") as w:
            if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (RATE, 2, 1):
                raise ValueError(f"{path}: need 8000 Hz 16-bit mono WAV")
            self.data = w.readframes(w.getnframes())
        if len(self.data) < FRAME_BYTES:
            self.data = self.data + bytes(FRAME_BYTES - len(self.data))
        self.pos = 0

    def frame(self) -> bytes:
        end = self.pos + FRAME_BYTES
        if end <= len(self.data):
            chunk = self.data[self.pos:end]
            self.pos = end % len(self.data)
        else:
            chunk = self.data[self.pos:] + self.data[:end - len(self.data)]
            self.pos = end - len(self.data)
        return chunk


def rms(pcm: bytes) -> float:
    """Root mean square level of s16le samples (0 for silence)."""
    n = len(pcm) // 2
    if n == 0:
        return 0.0
    samples = struct.unpack(f"<{n}h", pcm[:n * 2])
    return math.sqrt(sum(s * s for s in samples) / n)


def dominant_frequency(pcm: bytes) -> float:
    """A rough frequency estimate from zero crossings (enough for tests)."""
    n = len(pcm) // 2
    if n < 2:
        return 0.0
    samples = struct.unpack(f"<{n}h", pcm[:n * 2])
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings * RATE / (2 * n)
