# C-level interface of the signal kernels (implementation: _dsp.pyx).
#
#     from goip_tw.media._dsp cimport mean_square
#     ms = mean_square(samples, n, &peak)    # no Python objects, no GIL needed

from libc.stdint cimport int16_t

cdef double mean_square(const int16_t *s, Py_ssize_t n, int *peak_out) noexcept nogil
