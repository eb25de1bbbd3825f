# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""G.729A with Annex B (VAD/DTX/CNG) through Belledonne's bcg729.

One :class:`Encoder`/:class:`Decoder` per call (the codec keeps state between
10 ms frames).  Whole RTP payloads are processed with the GIL released, so a
20 ms packet is one call into C for two frames.  Payload layout follows
RFC 3551 section 4.5.6: zero or more 10-byte voice frames, optionally
followed by one 2-byte SID frame.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, uint8_t
from libc.string cimport memcpy
from goip_tw.media._g729 cimport *

FRAME_SAMPLES = 80
FRAME_BYTES = 10
SID_BYTES = 2


cdef class Encoder:
    """PCM (16-bit LE, multiple of 80 samples) -> G.729 payload."""

    cdef bcg729EncoderChannelContextStruct *ctx
    cdef readonly bint vad

    def __cinit__(self, bint vad=False):
        self.vad = vad
        self.ctx = initBcg729EncoderChannel(1 if vad else 0)
        if self.ctx is NULL:
            raise MemoryError("bcg729 encoder")

    def __dealloc__(self):
        if self.ctx is not NULL:
            closeBcg729EncoderChannel(self.ctx)
            self.ctx = NULL

    def encode(self, bytes pcm not None):
        """Encode whole 10 ms frames; with VAD, silent frames yield 2 (SID) or 0 bytes."""
        cdef Py_ssize_t nframes = PyBytes_GET_SIZE(pcm) // 160
        cdef const int16_t *src = <const int16_t *>PyBytes_AS_STRING(pcm)
        cdef uint8_t buf[10 * 64]
        cdef uint8_t length = 0
        cdef Py_ssize_t i, used = 0
        if nframes > 64:
            raise ValueError("at most 640 ms of audio per call")
        with nogil:
            for i in range(nframes):
                bcg729Encoder(self.ctx, src + i * 80, buf + used, &length)
                used += length
        return PyBytes_FromStringAndSize(<char *>buf, used)

    def comfort_noise_payload(self):
        """RFC 3389 payload (level + 10 reflection coefficients) of the last SID frame."""
        cdef uint8_t payload[11]
        bcg729GetRFC3389Payload(self.ctx, payload)
        return PyBytes_FromStringAndSize(<char *>payload, 11)


cdef class Decoder:
    """G.729 payload -> PCM; lost packets are concealed by the codec itself."""

    cdef bcg729DecoderChannelContextStruct *ctx

    def __cinit__(self):
        self.ctx = initBcg729DecoderChannel()
        if self.ctx is NULL:
            raise MemoryError("bcg729 decoder")

    def __dealloc__(self):
        if self.ctx is not NULL:
            closeBcg729DecoderChannel(self.ctx)
            self.ctx = NULL

    def decode(self, bytes payload not None):
        """Decode voice frames and a trailing SID; a ragged tail is treated as erased."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef const uint8_t *src = <const uint8_t *>PyBytes_AS_STRING(payload)
        cdef Py_ssize_t nvoice = n // 10
        cdef Py_ssize_t rest = n - nvoice * 10
        cdef Py_ssize_t nout = nvoice + (1 if rest else 0)
        cdef Py_ssize_t i
        if nout > 64:
            raise ValueError("payload too long")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, nout * 160)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        with nogil:
            for i in range(nvoice):
                bcg729Decoder(self.ctx, src + i * 10, 10, 0, 0, 0, dst + i * 80)
            if rest == 2:
                bcg729Decoder(self.ctx, src + nvoice * 10, 2, 0, 1, 0, dst + nvoice * 80)
            elif rest:
                bcg729Decoder(self.ctx, NULL, 0, 1, 0, 0, dst + nvoice * 80)
        return out

    def conceal(self, int nframes=2):
        """Frames for lost packets (G.729 frame erasure concealment)."""
        if not 0 < nframes <= 64:
            raise ValueError("nframes must be 1..64")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, nframes * 160)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        cdef int i
        with nogil:
            for i in range(nframes):
                bcg729Decoder(self.ctx, NULL, 0, 1, 0, 0, dst + i * 80)
        return out

    def comfort_noise(self, bytes cn not None, int nframes=2):
        """Frames of comfort noise from an RFC 3389 payload."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(cn)
        cdef const uint8_t *src = <const uint8_t *>PyBytes_AS_STRING(cn)
        if not 0 < nframes <= 64:
            raise ValueError("nframes must be 1..64")
        if n < 1 or n > 255:
            raise ValueError("bad comfort noise payload")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, nframes * 160)
        cdef int16_t *dst = <int16_t *>PyBytes_AS_STRING(out)
        cdef int i
        with nogil:
            bcg729Decoder(self.ctx, src, <uint8_t>n, 0, 1, 1, dst)
            for i in range(1, nframes):
                bcg729Decoder(self.ctx, NULL, 0, 1, 0, 0, dst + i * 80)
        return out
