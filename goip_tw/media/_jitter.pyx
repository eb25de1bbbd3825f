# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The jitter buffer of goip_tw.media.jitterbuffer, in C.

put() and pop() run for every packet of every call; as a cdef class they cost
a fraction of the Python version and the per-call tick (_fastpath.pyx) calls
them without Python overhead (see _jitter.pxd).  The buffer holds at most
``max_packets`` (a handful) packets, so a linear scan of a small C array of
extended sequence numbers is cheaper than a dict and min().
"""

import math

from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.math cimport fabs

AUDIO, LOST, EMPTY = "audio", "lost", "empty"

cdef str _AUDIO = AUDIO
cdef tuple _LOST_PAIR = (LOST, None)
cdef tuple _EMPTY_PAIR = (EMPTY, None)


cdef inline Py_ssize_t _find(JitterBuffer jb, long long ext) noexcept:
    """Index of ``ext`` among the buffered packets, -1 when absent."""
    cdef Py_ssize_t i
    for i in range(jb._count):
        if jb._seqs[i] == ext:
            return i
    return -1


cdef inline Py_ssize_t _oldest(JitterBuffer jb) noexcept:
    """Index of the lowest extended sequence number (the buffer is not empty)."""
    cdef Py_ssize_t i, best = 0
    cdef long long low = jb._seqs[0]
    for i in range(1, jb._count):
        if jb._seqs[i] < low:
            low = jb._seqs[i]
            best = i
    return best


cdef inline object _remove(JitterBuffer jb, Py_ssize_t i):
    """Take packet ``i`` out (the last one fills its place); returns its payload."""
    cdef Py_ssize_t last = jb._count - 1
    cdef list payloads = jb._payloads
    payload = payloads[i]
    jb._seqs[i] = jb._seqs[last]
    payloads[i] = payloads[last]
    payloads[last] = None
    jb._count = last
    return payload


cdef inline void _update_target(JitterBuffer jb) noexcept:
    cdef double want = (3 * jb.jitter * 1000 + jb.packet_ms) / jb.packet_ms
    cdef long long target = <long long>want
    if target < want:
        target += 1
    if target < jb._lo:
        target = jb._lo
    jb._target = <int>(target if target < jb._max_packets else jb._max_packets)


cdef inline void _resync(JitterBuffer jb) noexcept:
    """The sender jumped (restart, re-INVITE to another box): start over."""
    cdef Py_ssize_t i
    for i in range(jb._count):
        jb._payloads[i] = None
    jb._count = 0
    jb._has_expected = False
    jb._has_highest = False
    jb._playing = False
    jb.resyncs += 1


cdef inline void _drop_one(JitterBuffer jb):
    cdef Py_ssize_t i = _oldest(jb)
    cdef long long oldest = jb._seqs[i]
    _remove(jb, i)
    jb.shrunk += 1
    if jb._has_expected and oldest >= jb._expected:
        jb._expected = oldest + 1


cdef class JitterBuffer:
    """Adaptive jitter buffer (the behaviour is described in goip_tw.media.jitterbuffer)."""

    def __cinit__(self):
        self._seqs = NULL
        self._payloads = []

    def __dealloc__(self):
        PyMem_Free(self._seqs)

    def __init__(self, clock_rate=8000, packet_ms=20, min_delay_ms=20, max_delay_ms=200,
                 shrink_after=50):
        # bounds fixed for the buffer's life (a new ptime makes a new buffer),
        # computed with Python arithmetic so odd settings fail as they always did
        max_delay_ms = max(max_delay_ms, min_delay_ms + packet_ms)
        max_packets = max(1, max_delay_ms // packet_ms)
        lo = max(1, math.ceil(min_delay_ms / packet_ms))
        capacity = max_packets + 1   # put() adds before it trims
        cdef long long *seqs = <long long *>PyMem_Realloc(self._seqs,
                                                          capacity * sizeof(long long))
        if seqs == NULL:
            raise MemoryError()
        self._seqs = seqs
        self._payloads = [None] * capacity
        self._count = 0
        self._capacity = capacity
        self.clock_rate = clock_rate
        self.packet_ms = packet_ms
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.shrink_after = shrink_after
        self._max_packets = max_packets
        self._lo = lo
        self._has_expected = False
        self._has_highest = False
        self._playing = False
        self._above = 0
        self._has_transit = False
        self._popped = None
        self.jitter = 0.0
        self.played = 0
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.overflow_dropped = 0
        self.shrunk = 0
        self.underruns = 0
        self.resyncs = 0
        _update_target(self)

    # -- depth ------------------------------------------------------------------
    @property
    def max_packets(self):
        return max(1, (<object>self.max_delay_ms) // self.packet_ms)

    @property
    def target_packets(self):
        return self._target

    @property
    def depth(self):
        return self._count

    @property
    def delay_ms(self):
        """Current buffering delay (what this buffer adds to the mouth-to-ear delay)."""
        return self._count * self.packet_ms

    # -- input ------------------------------------------------------------------
    cpdef put(self, long long seq, unsigned int timestamp, object payload, double arrival):
        """Add one packet (``arrival`` in seconds on any monotonic clock)."""
        cdef double transit = arrival - timestamp / <double>self.clock_rate
        cdef double d
        cdef long long ext, ref, oldest
        cdef Py_ssize_t i
        if self._has_transit:
            d = fabs(transit - self._transit)
            if d < 1.0:  # a timestamp jump (new talkspurt/source) is not jitter
                self.jitter += (d - self.jitter) / 16.0
                _update_target(self)
        self._transit = transit
        self._has_transit = True
        # extend the 16-bit number around the next one to play (or the highest)
        if self._has_expected or self._has_highest:
            ref = self._expected if self._has_expected else self._highest
            ext = ref + ((seq - ref + 32768) & 0xFFFF) - 32768
        else:
            ext = seq
        if self._has_expected:
            if ext < self._expected:
                if self._expected - ext > 1000:
                    _resync(self)
                else:
                    self.late += 1
                    return None
            elif ext - self._expected > 1000:
                _resync(self)
        if _find(self, ext) >= 0:
            self.duplicates += 1
            return None
        self._seqs[self._count] = ext
        self._payloads[self._count] = payload
        self._count += 1
        if not self._has_highest or ext > self._highest:
            self._highest = ext
            self._has_highest = True
        while self._count > self._max_packets:
            i = _oldest(self)
            oldest = self._seqs[i]
            _remove(self, i)
            self.overflow_dropped += 1
            self._expected = oldest + 1
            self._has_expected = True
        return None

    # -- output -----------------------------------------------------------------
    cdef int pop_kind(self) except -1:
        """The next packet time as JB_AUDIO (payload via take_payload()), JB_LOST or JB_EMPTY."""
        cdef long long first, exp
        cdef Py_ssize_t i
        if not self._playing:
            if self._count < self._target:
                return JB_EMPTY
            self._playing = True
            first = self._seqs[_oldest(self)]
            if self._has_expected and first > self._expected:
                self.lost += first - self._expected  # the gap that caused the underrun
            self._expected = first
            self._has_expected = True
        if self._count == 0:
            self._playing = False
            self.underruns += 1
            return JB_EMPTY
        if self._count > self._target + 1:
            self._above += 1
            if self._above >= self.shrink_after:
                self._above = 0
                _drop_one(self)
        else:
            self._above = 0
        exp = self._expected
        self._expected = exp + 1
        i = _find(self, exp)
        if i >= 0:
            payload = _remove(self, i)
            if payload is not None:
                self.played += 1
                self._popped = payload
                return JB_AUDIO
        # its playout time has come and later packets are already waiting: lost
        self.lost += 1
        return JB_LOST

    cdef object take_payload(self):
        """The payload of the last JB_AUDIO pop_kind(); the buffer lets go of it."""
        payload = self._popped
        self._popped = None
        return payload

    cpdef tuple pop(self):
        """The next packet time: ``("audio", payload)``, ``("lost", None)`` or ``("empty", None)``."""
        cdef int kind = self.pop_kind()
        if kind == JB_AUDIO:
            return (_AUDIO, self.take_payload())
        return _LOST_PAIR if kind == JB_LOST else _EMPTY_PAIR

    def figures(self):
        return {"jb_delay_ms": self.delay_ms, "jb_target_ms": self._target * self.packet_ms,
                "jb_jitter_ms": round(self.jitter * 1000, 2), "jb_played": self.played,
                "jb_lost": self.lost, "jb_late": self.late, "jb_duplicates": self.duplicates,
                "jb_overflow_dropped": self.overflow_dropped, "jb_shrunk": self.shrunk,
                "jb_underruns": self.underruns}
