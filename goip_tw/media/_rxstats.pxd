# C-level interface of the RTCP reception statistics (implementation: _rxstats.pyx).
#
# Cython code cimports it to account a received packet without Python calls:
#
#     from goip_tw.media._rxstats cimport ReceptionStats
#
#     if stats.update_seq(seq):                  # cpdef: a C call from Cython
#         stats.update_jitter(arrival, timestamp)
#
# Python code uses goip_tw.media.rtcp.ReceptionStats (the same class).

cdef class ReceptionStats:
    cdef public int clock_rate
    cdef public bint started
    cdef public int base_seq
    cdef public int max_seq
    cdef public int bad_seq
    cdef public long long cycles
    cdef public long long received
    cdef public long long expected_prior
    cdef public long long received_prior
    cdef public double jitter          # RTP timestamp units, RFC 3550 A.8
    cdef public long long duplicates_or_late
    cdef long long _transit            # valid when _has_transit
    cdef bint _has_transit

    cpdef init(self, int seq)
    cpdef bint update_seq(self, int seq) except -1
    cpdef update_jitter(self, double arrival_seconds, long long rtp_timestamp)
