# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""RTCP reception statistics of goip_tw.media.rtcp, in C.

update_seq() and update_jitter() run for every received RTP packet; as a cdef
class they cost a fraction of the Python version and the per-call tick
(_fastpath.pyx) calls them without Python overhead (see _rxstats.pxd).
"""

cdef enum:
    _SEQ_MOD = 1 << 16
    _MAX_DROPOUT = 3000
    _MAX_MISORDER = 100

RTP_SEQ_MOD = _SEQ_MOD
MAX_DROPOUT = _MAX_DROPOUT
MAX_MISORDER = _MAX_MISORDER


cdef class ReceptionStats:
    """Per-source reception figures (RFC 3550 A.1, A.3, A.8)."""

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self.started = False
        self.init(0)
        self.received = 0

    cpdef init(self, int seq):
        """Start counting at ``seq`` (a new source, or a source that restarted)."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._has_transit = False
        self.duplicates_or_late = 0

    cpdef bint update_seq(self, int seq) except -1:
        """Account one packet; ``False`` means a sequence jump not (yet) believed.

        The source is negotiated and latched, so the first packet is trusted
        without A.1's probation; a large jump is believed when the next packet
        confirms it (the sender restarted, e.g. after a re-INVITE to another box).
        """
        cdef int udelta
        if not self.started:
            self.started = True
            self.init(seq)
            self.received = 1
            return True
        udelta = (seq - self.max_seq) & (_SEQ_MOD - 1)
        if udelta == 0:
            self.duplicates_or_late += 1
            return True
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self.bad_seq:
                self.init(seq)
            else:
                self.bad_seq = (seq + 1) & (_SEQ_MOD - 1)
                return False
        else:
            self.duplicates_or_late += 1
        self.received += 1
        return True

    cpdef update_jitter(self, double arrival_seconds, long long rtp_timestamp):
        cdef long long arrival = <long long>(arrival_seconds * self.clock_rate)
        cdef long long transit = (arrival - rtp_timestamp) & 0xFFFFFFFF
        cdef long long d
        if self._has_transit:
            d = (transit - self._transit) & 0xFFFFFFFF
            if d & 0x80000000:
                d = (1LL << 32) - d
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        self._has_transit = True

    @property
    def extended_max(self):
        return self.cycles + self.max_seq

    @property
    def expected(self):
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self):
        return self.cycles + self.max_seq - self.base_seq + 1 - self.received

    def take_fraction_lost(self):
        """Fraction lost since the previous call, as the 8-bit fixed point of A.3."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    @property
    def jitter_ms(self):
        return self.jitter * 1000.0 / <object>self.clock_rate
