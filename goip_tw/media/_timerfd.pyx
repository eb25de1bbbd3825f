# cython: language_level=3
"""A Linux timerfd on CLOCK_MONOTONIC, armed at absolute deadlines.

The media ticker waits on it as a reactor reader: epoll wakes within tens of
microseconds of the deadline, where a ``callLater`` wake-up is rounded up to
the next whole millisecond by the poll timeout.  Deadlines are in seconds on
``time.monotonic()``'s clock (CLOCK_MONOTONIC on Linux).  Python 3.11 has no
``os.timerfd_*``.  Elsewhere the module still builds, ``AVAILABLE`` is False
and creating a timer raises OSError(ENOSYS).
"""

from libc.errno cimport errno, EAGAIN, EINTR
from libc.math cimport floor

cdef extern from *:
    """
    #ifdef __linux__
    #include <sys/timerfd.h>
    #include <time.h>
    #include <unistd.h>
    #include <stdint.h>
    #define GOIP_HAVE_TIMERFD 1
    static int goip_tfd_create(void) {
        return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    }
    static int goip_tfd_set(int fd, long long sec, long nsec) {
        struct itimerspec its = {{0, 0}, {(time_t)sec, nsec}};
        return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    static long long goip_tfd_read(int fd) {
        uint64_t n = 0;
        ssize_t got = read(fd, &n, sizeof n);
        return got == (ssize_t)sizeof n ? (long long)n : -1;
    }
    static int goip_tfd_close(int fd) { return close(fd); }
    #else
    #include <errno.h>
    #define GOIP_HAVE_TIMERFD 0
    static int goip_tfd_create(void) { errno = ENOSYS; return -1; }
    static int goip_tfd_set(int fd, long long sec, long nsec) { errno = ENOSYS; return -1; }
    static long long goip_tfd_read(int fd) { errno = ENOSYS; return -1; }
    static int goip_tfd_close(int fd) { return 0; }
    #endif
    """
    int GOIP_HAVE_TIMERFD
    int goip_tfd_create()
    int goip_tfd_set(int fd, long long sec, long nsec)
    long long goip_tfd_read(int fd)
    int goip_tfd_close(int fd)

AVAILABLE = bool(GOIP_HAVE_TIMERFD)


cdef _raise_errno(str what):
    import os
    cdef int e = errno
    raise OSError(e, f"{what}: {os.strerror(e)}")


cdef class TimerFD:
    """One non-blocking, close-on-exec, one-shot timerfd."""

    cdef int fd

    def __cinit__(self):
        self.fd = goip_tfd_create()
        if self.fd < 0:
            _raise_errno("timerfd_create")

    def fileno(self):
        """The descriptor, -1 once closed (what Twisted expects of a gone reader)."""
        return self.fd

    def arm_at(self, double when):
        """Expire once when CLOCK_MONOTONIC reaches ``when`` seconds (at once
        when that has passed); re-arming replaces the previous deadline."""
        cdef double sec
        cdef long nsec
        if self.fd < 0:
            raise ValueError("timerfd is closed")
        sec = floor(when)
        nsec = <long>((when - sec) * 1e9)
        if nsec > 999999999:
            nsec = 999999999
        elif nsec < 0:
            nsec = 0
        if sec <= 0:
            # an all-zero it_value would disarm instead of firing
            sec, nsec = 0, 1
        if goip_tfd_set(self.fd, <long long>sec, nsec) != 0:
            _raise_errno("timerfd_settime")

    def disarm(self):
        if self.fd >= 0 and goip_tfd_set(self.fd, 0, 0) != 0:
            _raise_errno("timerfd_settime")

    def ack(self):
        """Consume the expirations: how many since the last ack, 0 when none
        (a stale readiness report after a re-arm)."""
        cdef long long n
        if self.fd < 0:
            return 0
        while True:
            n = goip_tfd_read(self.fd)
            if n >= 0:
                return n
            if errno == EAGAIN:
                return 0
            if errno != EINTR:
                _raise_errno("timerfd read")

    def close(self):
        """Idempotent."""
        cdef int fd = self.fd
        if fd >= 0:
            self.fd = -1
            goip_tfd_close(fd)

    @property
    def closed(self):
        return self.fd < 0

    def __dealloc__(self):
        if self.fd >= 0:
            goip_tfd_close(self.fd)
            self.fd = -1
