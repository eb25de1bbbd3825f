# C-level interface of the G.711 codec (implementation: _g711.pyx).
#
# The per-call tick (_fastpath.pyx) encodes straight into the RTP packet and
# decodes without a Python call:
#
#     from goip_tw.media._g711 cimport Decoder, encode_frame, LAW_ALAW
#     encode_frame(LAW_ALAW, pcm, packet + 12, 160)
#     pcm = decoder.decode(payload)          # cpdef: a C call from Cython

from libc.stdint cimport int16_t, uint8_t

cdef enum:
    LAW_NONE = 0
    LAW_ALAW = 1
    LAW_ULAW = 2

cdef void encode_frame(int law, const int16_t *src, uint8_t *dst, Py_ssize_t n) noexcept nogil


cdef class Decoder:
    cdef const int16_t *_table
    cdef public bytes _last
    cdef public double _fade

    cpdef bytes decode(self, bytes payload)
