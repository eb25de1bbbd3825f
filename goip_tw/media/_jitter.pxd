# C-level interface of the jitter buffer (implementation: _jitter.pyx).
#
# Cython code cimports it to run a call's receive path without Python calls:
#
#     from goip_tw.media._jitter cimport JitterBuffer, JB_AUDIO, JB_LOST
#
#     jb.put(seq, timestamp, payload, arrival)   # cpdef: a C call from Cython
#     kind = jb.pop_kind()                       # JB_AUDIO, JB_LOST or JB_EMPTY
#     if kind == JB_AUDIO:
#         payload = jb.take_payload()            # the bytes just played
#
# Python code keeps using ``jb.pop()``, which returns ``(kind, payload)`` with
# the AUDIO/LOST/EMPTY strings of goip_tw.media.jitterbuffer.

cdef enum:
    JB_AUDIO = 0
    JB_LOST = 1
    JB_EMPTY = 2


cdef class JitterBuffer:
    cdef public int clock_rate
    cdef public int packet_ms
    cdef public int min_delay_ms
    cdef public int max_delay_ms
    cdef public int shrink_after
    cdef public double jitter          # seconds, RFC 3550 A.8 estimator
    cdef public long long played
    cdef public long long lost
    cdef public long long late
    cdef public long long duplicates
    cdef public long long overflow_dropped
    cdef public long long shrunk
    cdef public long long underruns
    cdef public long long resyncs

    # the buffered packets: extended sequence numbers (unordered) and, at the
    # same index, their payloads; at most _max_packets + 1 while put() trims
    cdef long long *_seqs
    cdef list _payloads
    cdef Py_ssize_t _count
    cdef Py_ssize_t _capacity
    cdef long long _expected           # valid when _has_expected
    cdef bint _has_expected
    cdef long long _highest            # valid when _has_highest
    cdef bint _has_highest
    cdef bint _playing
    cdef long long _above
    cdef double _transit               # valid when _has_transit
    cdef bint _has_transit
    cdef int _max_packets
    cdef int _lo
    cdef int _target
    cdef object _popped                # payload of the last JB_AUDIO pop

    cpdef put(self, long long seq, unsigned int timestamp, object payload, double arrival)
    cdef int pop_kind(self) except -1
    cdef object take_payload(self)
    cpdef tuple pop(self)
