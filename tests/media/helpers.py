"""Signal helpers shared by the media tests (pure Python, measured not trusted)."""

from __future__ import annotations

import array
import math
import random


def sine(freq: float, ms: int, amplitude: float = 8000.0, rate: int = 8000, phase=0.0) -> bytes:
    n = rate * ms // 1000
    return array.array("h", [int(amplitude * math.sin(2 * math.pi * freq * i / rate + phase))
                             for i in range(n)]).tobytes()


def samples(pcm: bytes) -> array.array:
    return array.array("h", pcm)


def rms(pcm: bytes) -> float:
    s = samples(pcm)
    return math.sqrt(sum(v * v for v in s) / max(1, len(s)))


def goertzel_power(s, freq: float, rate: int = 8000) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    q1 = q2 = 0.0
    for v in s:
        q0 = coeff * q1 - q2 + v
        q2, q1 = q1, q0
    return q1 * q1 + q2 * q2 - coeff * q1 * q2


def speech_like(ms: int, seed: int = 1, rate: int = 8000) -> bytes:
    """Noise shaped by a slowly varying envelope and a few moving formant-ish sines."""
    rnd = random.Random(seed)
    n = rate * ms // 1000
    out = array.array("h")
    f1, f2 = 500.0, 1500.0
    for i in range(n):
        if i % 400 == 0:
            f1 = rnd.uniform(300, 900)
            f2 = rnd.uniform(900, 2500)
            env = rnd.uniform(0.1, 1.0)
        t = i / rate
        v = env * (3000 * math.sin(2 * math.pi * f1 * t) + 1500 * math.sin(2 * math.pi * f2 * t)
                   + rnd.gauss(0, 1200))
        out.append(max(-32768, min(32767, int(v))))
    return out.tobytes()
