# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The energy meter and one-way-audio detector of goip_tw.media.vad, in C.

OneWayAudio.update() runs for both directions of every bridged call on every
20 ms tick; as cdef classes with the frame energy computed inline they cost a
fraction of the Python version, and the per-call tick (_fastpath.pyx) calls
them without Python overhead (see _meter.pxd).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from libc.stdint cimport int16_t

from goip_tw.media import _dsp
from goip_tw.media._dsp cimport mean_square
from goip_tw.media.levels import ZERO_DBM0_MEAN_SQUARE, dbm0

NO_AUDIO_FROM_RTP = "no_audio_from_rtp"
NO_AUDIO_FROM_MODULE = "no_audio_from_module"

cdef str _NO_RTP = NO_AUDIO_FROM_RTP
cdef str _NO_MODULE = NO_AUDIO_FROM_MODULE


cdef class EnergyMeter:
    """Level of one direction: last frame, short average, and active frame count."""

    def __init__(self, active_dbm0=-50.0):
        self.active_dbm0 = active_dbm0
        self._active_ms = ZERO_DBM0_MEAN_SQUARE * 10 ** (active_dbm0 / 10)
        self._last_ms = 0.0
        self.peak = 0
        self._avg_ms = 0.0
        self.frames = 0
        self.active_frames = 0

    cpdef bint update(self, object pcm) except -1:
        """Account one frame (``None`` = nothing arrived); returns whether it was active."""
        cdef double ms
        cdef int peak = 0
        self.frames += 1
        if pcm is None or not pcm:
            self._last_ms = 0.0
            self._avg_ms *= 0.9
            return False
        if PyBytes_CheckExact(pcm):
            ms = mean_square(<const int16_t *>PyBytes_AS_STRING(pcm),
                             PyBytes_GET_SIZE(pcm) // 2, &peak)
            self.peak = peak
        else:
            ms, self.peak = _dsp.energy(pcm)  # other types fail there, as they always did
        self._last_ms = ms
        self._avg_ms = 0.9 * self._avg_ms + 0.1 * ms
        if ms > self._active_ms:
            self.active_frames += 1
            return True
        return False

    @property
    def level(self):
        """Level of the last frame in dBm0."""
        return dbm0(self._last_ms)

    @property
    def average_dbm0(self):
        return dbm0(self._avg_ms)


cdef class OneWayAudio:
    """Flags a call whose one direction stays silent while the other talks.

    Fed one frame per direction per 20 ms tick; decides over sliding windows of
    ``window_s``.  ``flag`` is ``None``, ``"no_audio_from_rtp"`` or
    ``"no_audio_from_module"``."""

    def __init__(self, window_s=10.0, frame_ms=20, min_active_s=1.0):
        self.window = int(window_s * 1000 / frame_ms)
        self.min_active = int(min_active_s * 1000 / frame_ms)
        self.rx = EnergyMeter()    # RTP -> module
        self.tx = EnergyMeter()    # module -> RTP
        self._n = 0
        self._rx_active = 0
        self._tx_active = 0
        self.flag = None
        self.flag_count = 0

    cpdef object update(self, object from_rtp, object from_module):
        cdef object new
        self._rx_active += self.rx.update(from_rtp)
        self._tx_active += self.tx.update(from_module)
        self._n += 1
        if self._n >= self.window:
            if self._rx_active == 0 and self._tx_active >= self.min_active:
                new = _NO_RTP
            elif self._tx_active == 0 and self._rx_active >= self.min_active:
                new = _NO_MODULE
            else:
                new = None
            if new is not None and new != self.flag:
                self.flag_count += 1
            self.flag = new
            self._n = self._rx_active = self._tx_active = 0
        return self.flag

    def figures(self):
        return {"rx_level_dbm0": round(self.rx.average_dbm0, 1),
                "tx_level_dbm0": round(self.tx.average_dbm0, 1),
                "one_way_audio": self.flag}
