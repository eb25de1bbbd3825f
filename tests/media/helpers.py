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
    """Voiced/unvoiced segments: a glottal-like harmonic series (f0 90-250 Hz) shaped by
    two moving formants, noise bursts for fricatives and pauses, every 40-120 ms."""
    rnd = random.Random(seed)
    n = rate * ms // 1000
    out = array.array("h")
    i = 0
    while i < n:
        seg = int(rate * rnd.uniform(0.04, 0.12))
        kind = rnd.random()
        env = rnd.uniform(0.2, 1.0) * 6000
        if kind < 0.6:
            f0 = rnd.uniform(90, 250)
            f1, f2 = rnd.uniform(300, 900), rnd.uniform(900, 2500)
            harm = []
            k = 1
            while k * f0 < 3400:
                f = k * f0
                w = 1 / (1 + ((f - f1) / 150) ** 2) + 0.5 / (1 + ((f - f2) / 200) ** 2) + 0.05
                harm.append((2 * math.pi * f / rate, w / k ** 0.5, rnd.uniform(0, 6.28)))
                k += 1
            norm = sum(h[1] for h in harm)
            for j in range(min(seg, n - i)):
                v = sum(w * math.sin(om * (i + j) + ph) for om, w, ph in harm) / norm
                out.append(max(-32768, min(32767, int(env * v + rnd.gauss(0, 100)))))
        elif kind < 0.8:
            for _ in range(min(seg, n - i)):
                out.append(max(-32768, min(32767, int(rnd.gauss(0, env / 4)))))
        else:
            for _ in range(min(seg, n - i)):
                out.append(int(rnd.gauss(0, 30)))
        i += seg
    return out[:n].tobytes()
