# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Small signal kernels on 16-bit LE PCM ``bytes``: Goertzel bank, energy, gain.

Kept in C because they run on every 20 ms frame of a line (energy meter, VAD,
gain) or on every 5 ms hop while DTMF detection is active.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int16_t
from libc.math cimport cos, M_PI


def coefficients(freqs, int rate=8000):
    """Goertzel coefficients 2*cos(2*pi*f/rate) for ``freqs``."""
    return tuple(2.0 * cos(2.0 * M_PI * f / rate) for f in freqs)


def goertzel(bytes pcm not None, Py_ssize_t start, Py_ssize_t n, tuple coeffs not None):
    """Powers |X(f)|^2 of ``n`` samples from sample ``start`` for each coefficient,
    plus the window energy (sum of squares) as the last element."""
    cdef Py_ssize_t total = PyBytes_GET_SIZE(pcm) // 2
    cdef const int16_t *s = <const int16_t *>PyBytes_AS_STRING(pcm)
    cdef Py_ssize_t i, k, nc = len(coeffs)
    cdef double c, q0, q1, q2, x, energy = 0.0
    cdef double cs[16]
    cdef double out[16]
    if start < 0 or n < 0 or start + n > total:
        raise ValueError("goertzel window outside the buffer")
    if nc > 16:
        raise ValueError("at most 16 frequencies")
    for k in range(nc):
        cs[k] = coeffs[k]
    with nogil:
        for i in range(n):
            x = s[start + i]
            energy += x * x
        for k in range(nc):
            c = cs[k]
            q1 = 0.0
            q2 = 0.0
            for i in range(n):
                q0 = c * q1 - q2 + s[start + i]
                q2 = q1
                q1 = q0
            out[k] = q1 * q1 + q2 * q2 - c * q1 * q2
    return [out[k] for k in range(nc)] + [energy]


cdef enum:
    _EXACT_SAMPLES = 1 << 23    # n * 32768**2 < 2**53: an integer sum is exact


cdef double mean_square(const int16_t *s, Py_ssize_t n, int *peak_out) noexcept nogil:
    """Mean square of ``n`` samples, and their absolute peak in ``peak_out``.

    Below 2**23 samples every partial sum of squares is under 2**53, so the
    integer sum equals the double sum bit for bit, and runs faster."""
    cdef Py_ssize_t i
    cdef long long isum = 0
    cdef double acc = 0.0, x
    cdef int peak = 0, a
    if n <= 0:
        peak_out[0] = 0
        return 0.0
    if n < _EXACT_SAMPLES:
        for i in range(n):
            a = s[i]
            isum += a * a
            if a < 0:
                a = -a
            if a > peak:
                peak = a
        acc = <double>isum
    else:
        for i in range(n):
            x = s[i]
            acc += x * x
            a = s[i] if s[i] >= 0 else -<int>s[i]
            if a > peak:
                peak = a
    peak_out[0] = peak
    return acc / n


def energy(bytes pcm not None):
    """Mean square and absolute peak of a PCM buffer: ``(mean_square, peak)``."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(pcm) // 2
    cdef const int16_t *s = <const int16_t *>PyBytes_AS_STRING(pcm)
    cdef double ms
    cdef int peak = 0
    if n == 0:
        return 0.0, 0
    with nogil:
        ms = mean_square(s, n, &peak)
    return ms, peak


def scale(bytes pcm not None, double gain):
    """Multiply every sample by ``gain`` with saturation (per-line volume, F-1602)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(pcm) // 2, i
    cdef const int16_t *s = <const int16_t *>PyBytes_AS_STRING(pcm)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n * 2)
    cdef int16_t *d = <int16_t *>PyBytes_AS_STRING(out)
    cdef double v
    with nogil:
        for i in range(n):
            v = s[i] * gain
            if v > 32767.0:
                v = 32767.0
            elif v < -32768.0:
                v = -32768.0
            d[i] = <int16_t>(v + 0.5 if v >= 0 else v - 0.5)
    return out


def mix(bytes a not None, bytes b not None):
    """Saturating sum of two PCM buffers (the shorter one is padded with silence)."""
    cdef Py_ssize_t na = PyBytes_GET_SIZE(a) // 2, nb = PyBytes_GET_SIZE(b) // 2, i
    cdef Py_ssize_t n = na if na > nb else nb
    cdef const int16_t *pa = <const int16_t *>PyBytes_AS_STRING(a)
    cdef const int16_t *pb = <const int16_t *>PyBytes_AS_STRING(b)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n * 2)
    cdef int16_t *d = <int16_t *>PyBytes_AS_STRING(out)
    cdef int v
    with nogil:
        for i in range(n):
            v = (pa[i] if i < na else 0) + (pb[i] if i < nb else 0)
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            d[i] = <int16_t>v
    return out
