# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""G.711 A-law and mu-law (ITU-T G.711) as 64K/256-entry lookup tables.

Encoding follows G.711's segment tables as in the classic Sun reference
(A-law on the top 13 bits, mu-law on the top 14 bits with bias 0x84, clip
at 8159), which is also what CPython's ``audioop`` computes, so results are
bit-exact with it.  Input and output are ``bytes``: a typed memoryview
argument costs about twice as much per 20 ms frame.  The GIL is released only
for long buffers: for a 20 ms frame releasing it costs more than the loop.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, uint16_t, uint8_t

cdef uint8_t _lin2alaw[65536]
cdef uint8_t _lin2ulaw[65536]
cdef int16_t _alaw2lin[256]
cdef int16_t _ulaw2lin[256]

cdef int _seg(int v, const int *ends) noexcept:
    cdef int i
    for i in range(8):
        if v <= ends[i]:
            return i
    return 8

cdef int _SEG_A[8]
cdef int _SEG_U[8]
_SEG_A[:] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]
_SEG_U[:] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]

cdef uint8_t _enc_alaw(int pcm) noexcept:
    cdef int mask, seg, aval
    pcm = pcm >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _seg(pcm, _SEG_A)
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    aval = seg << 4
    if seg < 2:
        aval |= (pcm >> 1) & 0xF
    else:
        aval |= (pcm >> seg) & 0xF
    return <uint8_t>(aval ^ mask)

cdef uint8_t _enc_ulaw(int pcm) noexcept:
    cdef int mask, seg
    pcm = pcm >> 2
    if pcm < 0:
        pcm = -pcm
        mask = 0x7F
    else:
        mask = 0xFF
    if pcm > 8159:
        pcm = 8159
    pcm += 0x84 >> 2
    seg = _seg(pcm, _SEG_U)
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    return <uint8_t>(((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask)

cdef int16_t _dec_alaw(int a) noexcept:
    cdef int t, seg
    a ^= 0x55
    t = (a & 0xF) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return <int16_t>(t if (a & 0x80) else -t)

cdef int16_t _dec_ulaw(int u) noexcept:
    cdef int t
    u = ~u
    t = ((u & 0xF) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return <int16_t>((0x84 - t) if (u & 0x80) else (t - 0x84))

cdef void _init() noexcept:
    cdef int i
    for i in range(65536):
        _lin2alaw[i] = _enc_alaw(<int16_t><uint16_t>i)
        _lin2ulaw[i] = _enc_ulaw(<int16_t><uint16_t>i)
    for i in range(256):
        _alaw2lin[i] = _dec_alaw(i)
        _ulaw2lin[i] = _dec_ulaw(i)

_init()


cdef inline void _encode_loop(const uint16_t *src, uint8_t *dst, Py_ssize_t n,
                              const uint8_t *table) noexcept nogil:
    # unrolled by four: gcc keeps four independent table loads in flight
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        dst[i] = table[src[i]]
        dst[i + 1] = table[src[i + 1]]
        dst[i + 2] = table[src[i + 2]]
        dst[i + 3] = table[src[i + 3]]
        i += 4
    while i < n:
        dst[i] = table[src[i]]
        i += 1


cdef void encode_frame(int law, const int16_t *src, uint8_t *dst, Py_ssize_t n) noexcept nogil:
    """Encode ``n`` samples into ``dst`` (``law``: LAW_ALAW or LAW_ULAW)."""
    if law == LAW_ALAW:
        _encode_loop(<const uint16_t *>src, dst, n, &_lin2alaw[0])
    else:
        _encode_loop(<const uint16_t *>src, dst, n, &_lin2ulaw[0])


cdef bytes _encode(bytes pcm, const uint8_t *table):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(pcm) >> 1
    cdef const uint16_t *src = <const uint16_t *>PyBytes_AS_STRING(pcm)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t *dst = <uint8_t *>PyBytes_AS_STRING(out)
    if n < 4096:
        _encode_loop(src, dst, n, table)
    else:
        with nogil:
            _encode_loop(src, dst, n, table)
    return out


cdef bytes _decode(bytes data, const int16_t *table):
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i
    cdef const uint8_t *src = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n * 2)
    cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
    for i in range(n):
        dst[i] = table[src[i]]
    return out


def lin2alaw(bytes pcm not None):
    """16-bit little-endian signed PCM -> A-law bytes (odd trailing byte ignored)."""
    return _encode(pcm, _lin2alaw)


def lin2ulaw(bytes pcm not None):
    """16-bit little-endian signed PCM -> mu-law bytes."""
    return _encode(pcm, _lin2ulaw)


def alaw2lin(bytes data not None):
    """A-law bytes -> 16-bit little-endian signed PCM."""
    return _decode(data, _alaw2lin)


def ulaw2lin(bytes data not None):
    """mu-law bytes -> 16-bit little-endian signed PCM."""
    return _decode(data, _ulaw2lin)


cdef class Decoder:
    """One call's G.711 decoder: table decode plus repeat-and-fade concealment
    of the last good frame (in the spirit of G.711 Appendix I, simplified).

    A C class because ``decode`` runs for every received packet of every call;
    ``conceal`` repeats the last frame 6 dB quieter each time, silence after
    ~60 ms."""

    def __cinit__(self, bint alaw):
        if alaw:
            self._table = &_alaw2lin[0]
        else:
            self._table = &_ulaw2lin[0]
        self._last = b""
        self._fade = 1.0

    cpdef bytes decode(self, bytes payload):
        cdef bytes pcm = _decode(payload, self._table)
        self._last = pcm
        self._fade = 1.0
        return pcm

    def conceal(self, int samples):
        cdef Py_ssize_t need = samples * 2, i, m
        cdef const int16_t *src
        cdef int16_t *dst
        cdef bytes out
        if samples < 0:
            raise ValueError("samples must be >= 0")
        m = PyBytes_GET_SIZE(self._last) // 2
        if m == 0 or self._fade < 0.1:
            return bytes(need)
        self._fade *= 0.5
        src = <const int16_t *>PyBytes_AS_STRING(self._last)
        out = PyBytes_FromStringAndSize(NULL, need)
        dst = <int16_t *>PyBytes_AS_STRING(out)
        for i in range(samples):
            dst[i] = <int16_t>(<int>(src[i % m] * self._fade))
        return out
