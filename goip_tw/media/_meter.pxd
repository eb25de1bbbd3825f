# C-level interface of the energy meter and one-way-audio detector
# (implementation: _meter.pyx).
#
# Cython code cimports them to account a tick's frames without Python calls:
#
#     from goip_tw.media._meter cimport OneWayAudio
#
#     flag = one_way.update(down, up)   # cpdef: a C call; bytes or None each
#     if one_way.flag is not None: ...
#
# Python code uses goip_tw.media.vad.EnergyMeter/OneWayAudio (the same classes).


cdef class EnergyMeter:
    cdef public object active_dbm0     # as given (the threshold used is _active_ms)
    cdef public double _active_ms      # mean square above which a frame is active
    cdef public double _last_ms
    cdef public double _avg_ms
    cdef public int peak
    cdef public long long frames
    cdef public long long active_frames

    cpdef bint update(self, object pcm) except -1


cdef class OneWayAudio:
    cdef public int window
    cdef public int min_active
    cdef readonly EnergyMeter rx       # RTP -> module
    cdef readonly EnergyMeter tx       # module -> RTP
    cdef public int _n
    cdef public int _rx_active
    cdef public int _tx_active
    cdef public object flag            # None, "no_audio_from_rtp" or "no_audio_from_module"
    cdef public long long flag_count

    cpdef object update(self, object from_rtp, object from_module)
