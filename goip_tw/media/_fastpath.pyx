# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The per-packet core of a call's media path, in C.

Every bridged call costs one RTP send, one RTP receive and two 20 ms frames
per tick; with hundreds of calls on a core the Python around those few
syscalls decided how many calls fit (issue 6: ~15 us per call per tick in
Python, of which the syscalls were ~5).  These base classes hold the hot state
of :class:`~goip_tw.media.rtp.RtpStream`, :class:`~goip_tw.media.bridge.LegMedia`,
:class:`~goip_tw.media.bridge.LineMedia` and :class:`~goip_tw.media.bridge.Session`
as C fields with the same attribute names, so the Python subclasses (which
keep the rarely used logic: SRTP, DTMF events, VAD and comfort noise, odd
packet times, malformed packets, latching) and their callers read and write
them exactly as before, while the common case of a tick runs here:

* send: header built in a stack buffer and ``sendto(2)`` straight from C to a
  cached ``sockaddr`` (the destination is converted once per remote address);
* receive: the socket is drained with one ``recvmmsg(2)``; a packet from the
  latched source with a plain header, the current SSRC and an audio payload
  type goes straight to the reception statistics and the jitter buffer;
  anything else takes the Python path (``RtpStream.datagramReceived``), which
  validates, counts and logs as RFC 3550 asks.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.errno cimport errno, EINTR
from libc.stdint cimport int16_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID
from libc.string cimport memcpy, memset, memcmp, strchr

from twisted.logger import Logger

from goip_tw.media import _g711
from goip_tw.media._g711 cimport Decoder as G711Decoder, encode_frame, LAW_ALAW, LAW_NONE, LAW_ULAW
from goip_tw.media._jitter cimport JB_AUDIO, JB_LOST, JitterBuffer
from goip_tw.media._meter cimport OneWayAudio
from goip_tw.media._rxstats cimport ReceptionStats

log = Logger()

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    cdef struct sockaddr:
        sa_family_t sa_family
    cdef struct sockaddr_storage:
        sa_family_t ss_family
    cdef struct iovec:
        void *iov_base
        size_t iov_len
    cdef struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    cdef struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    ssize_t sendto(int fd, const void *buf, size_t n, int flags, const sockaddr *addr,
                   socklen_t addrlen)
    int recvmmsg(int fd, mmsghdr *vmessages, unsigned int vlen, int flags, void *tmo)
    int MSG_DONTWAIT
    int MSG_TRUNC
    int AF_INET
    int AF_INET6

cdef extern from "<netinet/in.h>" nogil:
    cdef struct in_addr:
        unsigned int s_addr
    cdef struct in6_addr:
        unsigned char s6_addr[16]
    cdef struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    cdef struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        unsigned int sin6_flowinfo
        in6_addr sin6_addr
        unsigned int sin6_scope_id
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)

DEF MAX_DATAGRAM = 2048    # what the Python path reads too
DEF MAX_BATCH = 16         # packets drained per socket per tick (bounded work)
DEF FRAME_BYTES = 320      # 20 ms of 8 kHz 16-bit PCM
DEF FRAME_SAMPLES = 160
DEF CN_PT = 13             # RFC 3389 comfort noise

cdef bytes SILENCE = bytes(FRAME_BYTES)

# one receive area for every socket: drain() copies each datagram out at once
cdef unsigned char _rx_buf[MAX_BATCH][MAX_DATAGRAM]
cdef sockaddr_storage _rx_addr[MAX_BATCH]
cdef iovec _rx_iov[MAX_BATCH]
cdef mmsghdr _rx_msgs[MAX_BATCH]
# set while a batch is being handled in place in _rx_buf: a receive started
# from a callback meanwhile (it would overwrite the batch) reads nothing and
# leaves its packets in the kernel for the next tick
cdef bint _rx_busy = False


cdef inline void _reset_rx(int got) noexcept:
    """Give back to the kernel what recvmmsg changed, for the next socket."""
    cdef int i
    for i in range(got):
        _rx_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
        _rx_msgs[i].msg_hdr.msg_flags = 0


cdef int _recv_batch(int fd, int limit) noexcept:
    """One recvmmsg into the shared area; how many datagrams (0: none or an error)."""
    cdef int got, want = limit if 0 < limit < MAX_BATCH else MAX_BATCH
    while True:
        got = recvmmsg(fd, _rx_msgs, want, MSG_DONTWAIT, NULL)
        if got >= 0 or errno != EINTR:
            break
    return got if got > 0 else 0  # EAGAIN: nothing waiting (or a transient ICMP error)


cdef void _init_rx() noexcept:
    cdef int i
    memset(_rx_msgs, 0, sizeof(_rx_msgs))
    for i in range(MAX_BATCH):
        _rx_iov[i].iov_base = _rx_buf[i]
        _rx_iov[i].iov_len = MAX_DATAGRAM
        _rx_msgs[i].msg_hdr.msg_name = &_rx_addr[i]
        _rx_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
        _rx_msgs[i].msg_hdr.msg_iov = &_rx_iov[i]
        _rx_msgs[i].msg_hdr.msg_iovlen = 1


_init_rx()


cdef int _to_sockaddr(object addr, sockaddr_storage *out, socklen_t *outlen):
    """(host, port) with a numeric host -> sockaddr; 0 when it is not one."""
    cdef sockaddr_in *v4 = <sockaddr_in *>out
    cdef sockaddr_in6 *v6 = <sockaddr_in6 *>out
    cdef bytes host
    cdef int port
    try:
        host = (<str>addr[0]).encode("ascii")
        port = addr[1]
    except (TypeError, ValueError, IndexError, UnicodeError, OverflowError):
        return 0
    if not 0 <= port <= 65535:
        return 0
    memset(out, 0, sizeof(sockaddr_storage))
    if strchr(host, b':') == NULL:
        if inet_pton(AF_INET, host, &v4.sin_addr) != 1:
            return 0
        v4.sin_family = AF_INET
        v4.sin_port = htons(port)
        outlen[0] = sizeof(sockaddr_in)
    else:
        if inet_pton(AF_INET6, host, &v6.sin6_addr) != 1:
            return 0
        v6.sin6_family = AF_INET6
        v6.sin6_port = htons(port)
        outlen[0] = sizeof(sockaddr_in6)
    return 1


cdef bint _same_addr(const sockaddr_storage *a, const sockaddr_storage *b):
    cdef const sockaddr_in *a4
    cdef const sockaddr_in *b4
    cdef const sockaddr_in6 *a6
    cdef const sockaddr_in6 *b6
    if a.ss_family != b.ss_family:
        return False
    if a.ss_family == AF_INET:
        a4 = <const sockaddr_in *>a
        b4 = <const sockaddr_in *>b
        return a4.sin_port == b4.sin_port and a4.sin_addr.s_addr == b4.sin_addr.s_addr
    if a.ss_family == AF_INET6:
        a6 = <const sockaddr_in6 *>a
        b6 = <const sockaddr_in6 *>b
        return (a6.sin6_port == b6.sin6_port
                and memcmp(&a6.sin6_addr, &b6.sin6_addr, 16) == 0)
    return False


cdef object _from_sockaddr(const sockaddr_storage *sa):
    """The ``(host, port)`` tuple Twisted hands to ``datagramReceived``."""
    cdef char text[64]
    cdef const sockaddr_in *v4
    cdef const sockaddr_in6 *v6
    if sa.ss_family == AF_INET:
        v4 = <const sockaddr_in *>sa
        inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(v4.sin_port))
    if sa.ss_family == AF_INET6:
        v6 = <const sockaddr_in6 *>sa
        inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(v6.sin6_port))
    return ("", 0)


cdef class RtpCounters:
    """Packet counters of one RTP stream (figures for CDRs, the status page, the API)."""

    cdef public long long received, received_octets, sent, sent_octets, malformed
    cdef public long long unknown_payload_type, foreign_source, srtp_failed, send_errors

    FIELDS = ("received", "received_octets", "sent", "sent_octets", "malformed",
              "unknown_payload_type", "foreign_source", "srtp_failed", "send_errors")

    def asdict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self):
        return "RtpCounters(%s)" % ", ".join(f"{k}={v}" for k, v in self.asdict().items())

    def __eq__(self, other):
        if not isinstance(other, RtpCounters):
            return NotImplemented
        return self.asdict() == other.asdict()


cdef class RtpCore:
    """Hot state of an RTP stream (base of :class:`goip_tw.media.rtp.RtpStream`)."""

    cdef public long long ssrc, sequence, timestamp
    cdef public object remote
    cdef public bint latched
    cdef public object rx_stats, counters, last_received, srtp, on_packet
    cdef long long _rx_ssrc          # -1: no source seen yet
    cdef object _payload_types
    cdef unsigned char _pt_ok[128]
    cdef int _fd                     # the socket's fd; -2: look it up at next use
    cdef object _dest_key            # the remote tuple _dest was made from
    cdef sockaddr_storage _dest
    cdef socklen_t _dest_len
    cdef bint _dest_ok

    def __cinit__(self, *args, **kwargs):
        self._fd = -2
        self._rx_ssrc = -1
        self._payload_types = frozenset()

    property rx_ssrc:
        """SSRC of the source being received (``None`` before the first packet)."""
        def __get__(self):
            return None if self._rx_ssrc < 0 else self._rx_ssrc

        def __set__(self, value):
            self._rx_ssrc = -1 if value is None else value

    property payload_types:
        """Payload types accepted on receive (the negotiated ones)."""
        def __get__(self):
            return self._payload_types

        def __set__(self, value):
            cdef int pt
            value = frozenset(value)
            memset(self._pt_ok, 0, sizeof(self._pt_ok))
            for pt in value:
                if 0 <= pt < 128:
                    self._pt_ok[pt] = 1
            self._payload_types = value

    def _forget_socket(self):
        """The transport started or is about to close its socket: look the fd up
        again at next use (a closed fd's number may soon belong to another socket)."""
        self._fd = -2

    cdef int _sock_fd(self) except -2:
        cdef object transport, sock
        if self._fd == -2:
            transport = getattr(self, "transport", None)
            sock = getattr(transport, "socket", None) if transport is not None else None
            if sock is None:
                return -1
            self._fd = sock.fileno()
        return self._fd

    cdef int _send_raw(self, const unsigned char *payload, Py_ssize_t n, int payload_type,
                       unsigned int samples, bint marker, long long timestamp) except -1:
        """Build and send one packet; sequence and timestamp advance either way."""
        cdef unsigned char buf[MAX_DATAGRAM]
        cdef long long ts = self.timestamp if timestamp < 0 else timestamp
        cdef unsigned int seq = <unsigned int>self.sequence
        cdef unsigned int ssrc = <unsigned int>self.ssrc
        cdef unsigned int tsu = <unsigned int>(ts & 0xFFFFFFFF)
        cdef int fd
        cdef ssize_t sent
        cdef object data, transport, sock
        cdef RtpCounters c
        if n > MAX_DATAGRAM - 12:
            raise ValueError(f"rtp: payload of {n} bytes too large for one packet")
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        if self.remote is None:
            return 0
        fd = self._sock_fd()
        if self._dest_key is not self.remote:
            self._dest_key = self.remote
            self._dest_ok = _to_sockaddr(self.remote, &self._dest, &self._dest_len)
        buf[0] = 0x80
        buf[1] = (0x80 if marker else 0) | (payload_type & 0x7F)
        buf[2] = (seq >> 8) & 0xFF
        buf[3] = seq & 0xFF
        buf[4] = tsu >> 24
        buf[5] = (tsu >> 16) & 0xFF
        buf[6] = (tsu >> 8) & 0xFF
        buf[7] = tsu & 0xFF
        buf[8] = ssrc >> 24
        buf[9] = (ssrc >> 16) & 0xFF
        buf[10] = (ssrc >> 8) & 0xFF
        buf[11] = ssrc & 0xFF
        memcpy(buf + 12, payload, n)
        if self.srtp is not None or not self._dest_ok or fd < 0:
            # the general path: SRTP, a host name, a closed or socket-less transport
            transport = getattr(self, "transport", None)
            if transport is None or not getattr(transport, "connected", True):
                return 0  # no port yet, or its socket is closed
            sock = getattr(transport, "socket", None)
            data = PyBytes_FromStringAndSize(<char *>buf, 12 + n)
            if self.srtp is not None:
                data = self.srtp.protect(data)
            try:
                if sock is not None:
                    sock.sendto(data, self.remote)
                else:
                    transport.write(data, self.remote)
            except OSError as e:
                self._send_failed(e)
                return 0
        else:
            sent = sendto(fd, buf, 12 + n, 0, <sockaddr *>&self._dest, self._dest_len)
            if sent < 0:
                self._send_failed(OSError(errno, "sendto failed"))
                return 0
        c = <RtpCounters?>self.counters
        c.sent += 1
        c.sent_octets += n
        return 1

    cdef _send_failed(self, error):
        self.counters.send_errors += 1
        log.debug("rtp: send to {remote} failed: {error}", remote=self.remote, error=error)

    def send(self, bytes payload not None, int payload_type, unsigned int samples,
             bint marker=False, timestamp=None):
        """Send one packet, then advance the timestamp by ``samples``.

        ``timestamp`` overrides the stream's own (RFC 4733 events keep the
        timestamp of the event start while their duration grows)."""
        self._send_raw(<const unsigned char *>PyBytes_AS_STRING(payload),
                       PyBytes_GET_SIZE(payload), payload_type, samples, marker,
                       -1 if timestamp is None else (<long long>timestamp) & 0xFFFFFFFF)

    def skip(self, unsigned int samples):
        """Let media time pass without a packet (VAD silence)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    cdef bint _accept_fast(self, bytes data, int skip_pt) except -1:
        """Account a plain packet from the latched source: ``True`` when it was
        taken (the caller buffers it), ``False`` when the Python path must see it."""
        return self._accept_raw(<const unsigned char *>PyBytes_AS_STRING(data),
                                PyBytes_GET_SIZE(data), skip_pt)

    cdef bint _accept_raw(self, const unsigned char *p, Py_ssize_t n, int skip_pt) noexcept:
        cdef int pt
        cdef long long ssrc
        if n < 12 or p[0] != 0x80 or self.srtp is not None:
            return False
        pt = p[1] & 0x7F
        if not self._pt_ok[pt] or pt == skip_pt or pt == CN_PT:
            return False
        ssrc = (<long long>p[8] << 24) | (p[9] << 16) | (p[10] << 8) | p[11]
        if ssrc != self._rx_ssrc:
            return False
        return True


cdef class LegCore:
    """Hot state of one call leg's media (base of :class:`goip_tw.media.bridge.LegMedia`)."""

    cdef public object clock, stream, codec, dtmf_pt, jb, vad
    cdef public object dtmf_sender, dtmf_receiver, dtmf_listeners, port
    cdef public object _pending, _fifo, _cn, _inbox
    cdef object _encoder, _decoder
    cdef int _law                    # G.711 encoder: encode straight into the packet
    cdef G711Decoder _g711_decoder   # G.711 decoder: decode without a Python call
    cdef object _inbox_from          # the remote the bare bytes in _inbox came from
    cdef public int ptime, remote_ptime, jitter_min_ms, jitter_max_ms, _codec_pt, _sid_age
    cdef public bint sending, _talkspurt, _polled
    cdef public bint _dtmf_active    # RFC 4733 digits queued or being sent
    cdef public bint _dtmf_heard     # an RFC 4733 event came in: flush it on voice
    cdef public long long underflow_frames, vad_suppressed, bad_payloads

    property encoder:
        """The negotiated codec's encoder (``encode(pcm) -> payload``)."""
        def __get__(self):
            return self._encoder

        def __set__(self, encoder):
            fn = getattr(encoder, "encode", None)
            self._law = (LAW_ALAW if fn is _g711.lin2alaw else
                         LAW_ULAW if fn is _g711.lin2ulaw else LAW_NONE)
            self._encoder = encoder

    property decoder:
        """The negotiated codec's decoder (``decode``, ``conceal``)."""
        def __get__(self):
            return self._decoder

        def __set__(self, decoder):
            self._g711_decoder = decoder if type(decoder) is G711Decoder else None
            self._decoder = decoder

    # -- polled receive ------------------------------------------------------------
    cpdef drain(self, int limit=MAX_BATCH):
        """Only read the socket into the inbox; :meth:`deliver` handles it later.
        (The ticker reads and handles at once, in :meth:`receive_now`.)"""
        cdef int fd, got
        cdef RtpCore stream
        if not self._polled or _rx_busy:
            return
        stream = <RtpCore?>self.stream
        fd = stream._sock_fd()  # self.port is the stream's transport
        if fd < 0:
            return
        got = _recv_batch(fd, limit)
        if got:
            self._copy_out(stream, got)

    cdef _copy_out(self, RtpCore stream, int got):
        """Move ``got`` datagrams from the shared receive area into the inbox."""
        cdef int i
        cdef object remote = stream.remote
        cdef bint latched = stream.latched and stream._dest_key is remote and stream._dest_ok
        inbox = self._inbox
        for i in range(got):
            data = PyBytes_FromStringAndSize(<char *>_rx_buf[i], _rx_msgs[i].msg_len)
            if latched and _same_addr(&_rx_addr[i], &stream._dest):
                inbox.append(data)  # from the latched remote (checked again in deliver)
                self._inbox_from = remote
            else:
                inbox.append((data, _from_sockaddr(&_rx_addr[i])))
        _reset_rx(got)

    cpdef deliver(self):
        """Hand what :meth:`drain` read to the RTP stream and jitter buffer."""
        cdef RtpCore stream
        cdef object now, data, addr
        cdef int skip_pt
        if not self._inbox:
            return
        inbox = self._inbox
        stream = <RtpCore?>self.stream
        skip_pt = self.dtmf_pt if self.dtmf_pt is not None else -1
        now = None
        remote = self._inbox_from  # a re-INVITE may have moved stream.remote since
        try:
            for item in inbox:
                if type(item) is bytes:
                    data, addr = item, remote
                    if (stream.latched and stream.remote is remote and self._decoder is not None
                            and stream._accept_fast(<bytes>data, skip_pt)):
                        if now is None:
                            now = self.clock.seconds()
                        self._fast_packet(stream, <const unsigned char *>PyBytes_AS_STRING(data),
                                          PyBytes_GET_SIZE(data), now)
                        continue
                else:
                    data, addr = item
                stream.datagramReceived(data, addr)
        finally:
            del inbox[:]  # handled (or failed) once, never twice

    cpdef receive_now(self, int limit=MAX_BATCH):
        """Read the socket and handle what came, in one pass (the ticker's
        receive phase).  Plain audio from the latched source goes from the
        receive area straight to the statistics and the jitter buffer; a batch
        with anything else takes the drain/deliver path, packet by packet in
        arrival order."""
        global _rx_busy
        cdef int fd, got, i, skip_pt
        cdef RtpCore stream
        cdef object now
        if self._inbox:
            self.deliver()  # read earlier (an explicit drain): older than what waits
        if not self._polled or _rx_busy:
            return
        stream = <RtpCore?>self.stream
        if not (stream.latched and stream._dest_ok and stream._dest_key is stream.remote
                and self._decoder is not None):
            self.drain(limit)
            self.deliver()
            return
        fd = stream._sock_fd()
        if fd < 0:
            return
        got = _recv_batch(fd, limit)
        if got == 0:
            return
        skip_pt = self.dtmf_pt if self.dtmf_pt is not None else -1
        for i in range(got):
            if not (_same_addr(&_rx_addr[i], &stream._dest)
                    and stream._accept_raw(_rx_buf[i], _rx_msgs[i].msg_len, skip_pt)):
                break
        else:
            _rx_busy = True  # the batch is read in place: no other receive meanwhile
            try:
                now = self.clock.seconds()
                for i in range(got):
                    self._fast_packet(stream, _rx_buf[i], _rx_msgs[i].msg_len, now)
            finally:
                _rx_busy = False
                _reset_rx(got)
            return
        # something else in the batch: copy it all out (the slow path may call anything)
        self._copy_out(stream, got)
        self.deliver()

    cdef _fast_packet(self, RtpCore stream, const unsigned char *p, Py_ssize_t n, object now):
        """RtpStream.datagramReceived + LegMedia._on_packet for a plain audio packet."""
        cdef int seq = (p[2] << 8) | p[3]
        cdef unsigned int ts = ((<unsigned int>p[4] << 24) | (<unsigned int>p[5] << 16)
                                | (<unsigned int>p[6] << 8) | p[7])
        cdef ReceptionStats st = <ReceptionStats?>stream.rx_stats
        cdef double t = now
        cdef RtpCounters c
        if not st.update_seq(seq):
            return
        st.update_jitter(t, ts)
        c = <RtpCounters?>stream.counters
        c.received += 1
        c.received_octets += n - 12
        stream.last_received = now
        payload = PyBytes_FromStringAndSize(<char *>p + 12, n - 12)  # before any callout
        self._cn = None
        if self._dtmf_heard:
            self._dtmf_heard = False
            self.dtmf_receiver.flush()
        (<JitterBuffer?>self.jb).put(seq, ts, payload, t)

    # -- receive -------------------------------------------------------------------
    def receive_frame(self):
        """One 20 ms frame for the line, and whether it carried received audio."""
        cdef bint heard = False
        frame = self._receive_frame(&heard)
        return frame, heard

    cdef object _receive_frame(self, bint *heard_out):
        cdef int i, kind
        cdef JitterBuffer jb
        cdef bint heard = False
        cdef object pcm, frame, fifo
        heard_out[0] = False
        if self._decoder is None:
            return SILENCE
        jb = <JitterBuffer?>self.jb
        fifo = self._fifo
        for i in range(8):  # bounded: a packet holds at least 10 ms
            if len(fifo) >= FRAME_BYTES:
                break
            kind = jb.pop_kind()
            if kind == JB_AUDIO:
                if self._g711_decoder is not None:
                    pcm = self._g711_decoder.decode(jb.take_payload())
                    heard = True
                else:
                    try:
                        pcm = self._decoder.decode(jb.take_payload())
                        heard = True
                    except ValueError as e:  # e.g. an oversized G.729 payload
                        self.bad_payloads += 1
                        log.debug("rtp: undecodable payload: {error}", error=e)
                        pcm = self._decoder.conceal(FRAME_SAMPLES)
            elif kind == JB_LOST:
                pcm = self._decoder.conceal(self.remote_ptime * 8)
            else:
                self.underflow_frames += 1
                pcm = self._fill_gap()
            if not pcm:
                pcm = SILENCE
            if not fifo and len(pcm) == FRAME_BYTES:
                self._fifo = b""
                heard_out[0] = heard
                return pcm  # the usual case: one packet, one frame
            fifo = fifo + pcm
        frame, fifo = fifo[:FRAME_BYTES], fifo[FRAME_BYTES:]
        if len(frame) < FRAME_BYTES:
            frame = frame + bytes(FRAME_BYTES - len(frame))
        if len(fifo) > 8 * FRAME_BYTES:
            fifo = fifo[len(fifo) - FRAME_BYTES:]
        self._fifo = fifo
        heard_out[0] = heard
        return frame

    def _fill_gap(self):  # overridden in LegMedia (comfort noise or concealment)
        return self._decoder.conceal(FRAME_SAMPLES)

    # -- send ----------------------------------------------------------------------
    cpdef send_frame(self, object pcm):
        """Account 20 ms of outgoing audio: a DTMF event, a voice packet, or silence."""
        cdef RtpCore stream
        cdef object payload
        cdef unsigned char packet[FRAME_SAMPLES]
        if self._encoder is None:
            return
        if (self.sending and self.vad is None and not self._pending and self.ptime == 20
                and type(pcm) is bytes and PyBytes_GET_SIZE(pcm) == FRAME_BYTES
                and not self._dtmf_active):
            stream = <RtpCore?>self.stream
            if self._law != LAW_NONE:
                encode_frame(self._law, <const int16_t *>PyBytes_AS_STRING(pcm), packet,
                             FRAME_SAMPLES)
                stream._send_raw(packet, FRAME_SAMPLES, self._codec_pt, FRAME_SAMPLES,
                                 self._talkspurt, -1)
                self._talkspurt = False
                return
            payload = self._encoder.encode(pcm)
            if not payload:
                stream.timestamp = (stream.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
                self._talkspurt = True
                return
            stream._send_raw(<const unsigned char *>PyBytes_AS_STRING(payload),
                             PyBytes_GET_SIZE(payload), self._codec_pt, FRAME_SAMPLES,
                             self._talkspurt, -1)
            self._talkspurt = False
            return
        self._send_frame_slow(pcm)  # LegMedia's: held, DTMF, VAD, other packet times


cdef class LineCore:
    """Hot state of a line's voice port (base of :class:`goip_tw.media.bridge.LineMedia`)."""

    cdef public object port
    cdef public long long underruns
    cdef object _gain_in, _gain_out
    cdef bint _unity_in, _unity_out   # 0 dB: frames pass untouched

    property gain_in:
        """Gain on frames from the module (a :class:`~goip_tw.media.vad.Gain`)."""
        def __get__(self):
            return self._gain_in

        def __set__(self, gain):
            self._gain_in = gain
            self._unity_in = gain is None or gain.db == 0.0

    property gain_out:
        """Gain on frames to the module."""
        def __get__(self):
            return self._gain_out

        def __set__(self, gain):
            self._gain_out = gain
            self._unity_out = gain is None or gain.db == 0.0

    cpdef object read(self):
        frame = self.port.read_frame()
        if frame is None:
            self.underruns += 1
            return None
        if self._unity_in:
            return frame
        return self._gain_in.apply(frame)

    cpdef write(self, object frame):
        if getattr(self.port, "closed", False):
            return
        self.port.write_frame(frame if self._unity_out else self._gain_out.apply(frame))


cdef class SessionCore:
    """What the ticker runs for one line and/or one leg (base of
    :class:`goip_tw.media.bridge.Session`)."""

    cdef public object ticker, line, leg, line_tone, leg_tone, line_taps, leg_taps
    cdef public object one_way, _sub, _up
    cdef public bint bridged

    def tick(self):
        """One 20 ms period of work (both ticker phases back to back)."""
        self._tick_send()
        self._tick_receive()

    def tick_send(self):
        """Ticker phase 1: what must leave on time (line frame in, RTP packet out)."""
        self._tick_send()

    def tick_receive(self):
        """Ticker phase 2, after every send of the slot: RTP in, frame to the line."""
        self._tick_receive()

    cdef int _tick_send(self) except -1:
        cdef object up = None, out
        cdef LegCore leg
        if self.line is not None:
            up = (<LineCore?>self.line).read()
            if up is not None and self.line_taps:
                for tap in tuple(self.line_taps):
                    tap(up)
        self._up = up
        if self.leg is None:
            return 0
        leg = <LegCore?>self.leg
        if self.leg_tone is not None:
            out = self.leg_tone.frame(FRAME_SAMPLES)
            if self.leg_tone.finished:
                self.leg_tone = None
        elif self.bridged:
            out = up if up is not None else SILENCE
        else:
            return 0
        leg.send_frame(out)
        return 0

    cdef int _tick_receive(self) except -1:
        cdef object up = self._up, down = None, frame
        cdef bint heard = False
        cdef LegCore leg
        cdef OneWayAudio meter
        if self.leg is not None:
            leg = <LegCore?>self.leg
            leg.receive_now()  # read the socket only now: the sends of the slot went first
            down = leg._receive_frame(&heard)
            if heard and self.leg_taps:
                for tap in tuple(self.leg_taps):
                    tap(down)
        if self.line is not None:
            if self.line_tone is not None:
                frame = self.line_tone.frame(FRAME_SAMPLES)
                if self.line_tone.finished:
                    self.line_tone = None
            elif self.bridged and down is not None:
                frame = down
            else:
                frame = SILENCE
            (<LineCore?>self.line).write(frame)
        if self.bridged:
            meter = <OneWayAudio?>self.one_way
            before = meter.flag
            flag = meter.update(down if heard else None, up)
            if flag != before and flag is not None:
                log.warn("media: one-way audio ({flag}) on {what}", flag=flag,
                         what=getattr(self.leg.stream, "remote", None)
                         if self.leg is not None else None)
        return 0


cdef class Subscription:
    """A ticker member: ``callback`` in the send phase, ``after`` in the receive
    phase.  A member that is a session (``session`` set) is run by a direct C
    call to its tick halves instead of through the two bound methods."""

    cdef public object callback, after
    cdef public int slot
    cdef public bint active
    cdef public SessionCore session

    def __init__(self, callback, slot, after=None, session=None):
        self.callback = callback
        self.after = after
        self.slot = slot
        self.active = True
        self.session = session


cdef int _run_member(Subscription sub, bint after_phase) except -1:
    """One member's phase, guarded: 1 when it raised."""
    if not sub.active:
        return 0
    try:
        if sub.session is not None:
            if after_phase:
                sub.session._tick_receive()
            else:
                sub.session._tick_send()
            return 0
        fn = sub.after if after_phase else sub.callback
        if fn is not None:
            fn()
    except Exception:
        log.failure("media tick callback failed")
        return 1
    return 0


# -- prefetching the members of a slot -------------------------------------------
#
# A call's tick touches some twenty objects (session, leg, line, stream,
# counters, statistics, jitter buffer, codec, meters, port) that are cold when
# its slot comes round: on the test VM the cache misses cost as much as the
# work itself.  While one member runs, the objects of the next few are loaded:
# each step walks one level further down the chain of a member a step closer,
# reading only fields that an earlier step loaded.  Nothing is kept between
# steps (every walk starts again from the tuple), so a member changed or freed
# meanwhile is never followed; a prefetch changes no state.

cdef extern from *:
    """
    #define GOIP_PREFETCH(p) __builtin_prefetch((const void *)(p), 1, 3)
    #define GOIP_IS(o, t) PyObject_TypeCheck((o), (t))
    """
    void GOIP_PREFETCH(const void *p) noexcept nogil
    bint GOIP_IS(PyObject *o, PyTypeObject *t) noexcept

DEF PREFETCH_DEPTH = 5   # levels: subscription, session, leg/line/meter, stream/jb/port, stats

cdef PyTypeObject *_SUB_T
cdef PyTypeObject *_LEG_T
cdef PyTypeObject *_LINE_T
cdef PyTypeObject *_RTP_T
cdef PyTypeObject *_METER_T


cdef inline void _load(PyObject *o, int lines) noexcept nogil:
    cdef int i
    for i in range(lines):
        GOIP_PREFETCH(<char *>o + 64 * i)


cdef void _prefetch(tuple members, Py_ssize_t j, int level) noexcept:
    """Load level ``level`` (1 = the subscription) of member ``j``."""
    cdef PyObject *sub
    cdef PyObject *o
    cdef SessionCore session
    cdef LegCore leg
    cdef RtpCore stream
    cdef JitterBuffer jb
    if j >= PyTuple_GET_SIZE(members):
        return
    sub = PyTuple_GET_ITEM(members, j)
    if not GOIP_IS(sub, _SUB_T):
        return  # run_phase callers may pass anything; the member itself then fails alone
    if level == 1:
        _load(sub, 1)
        return
    o = <PyObject *>(<Subscription>sub).session
    if o == <PyObject *>None:
        return
    if level == 2:
        _load(o, 2)
        return
    session = <SessionCore>o
    if level == 3:
        _load(<PyObject *>session.leg, 6)
        _load(<PyObject *>session.line, 1)
        _load(<PyObject *>session.one_way, 2)
        return
    if level == 4:
        if GOIP_IS(<PyObject *>session.leg, _LEG_T):
            leg = <LegCore>(<PyObject *>session.leg)
            _load(<PyObject *>leg.stream, 8)
            _load(<PyObject *>leg.jb, 3)
            _load(<PyObject *>leg._g711_decoder, 1)
        if GOIP_IS(<PyObject *>session.line, _LINE_T):
            _load(<PyObject *>(<LineCore>(<PyObject *>session.line)).port, 1)
        if GOIP_IS(<PyObject *>session.one_way, _METER_T):
            _load(<PyObject *>(<OneWayAudio>(<PyObject *>session.one_way)).rx, 1)
            _load(<PyObject *>(<OneWayAudio>(<PyObject *>session.one_way)).tx, 1)
        return
    if GOIP_IS(<PyObject *>session.leg, _LEG_T):
        leg = <LegCore>(<PyObject *>session.leg)
        if GOIP_IS(<PyObject *>leg.stream, _RTP_T):
            stream = <RtpCore>(<PyObject *>leg.stream)
            _load(<PyObject *>stream.counters, 2)
            _load(<PyObject *>stream.rx_stats, 2)
        if type(leg.jb) is JitterBuffer:
            jb = <JitterBuffer>(<PyObject *>leg.jb)
            GOIP_PREFETCH(jb._seqs)
            _load(<PyObject *>jb._payloads, 1)


cdef inline void _prefetch_ahead(tuple members, Py_ssize_t i) noexcept:
    """Before member ``i`` runs: level k of member i + PREFETCH_DEPTH + 1 - k."""
    cdef int level
    for level in range(1, PREFETCH_DEPTH + 1):
        _prefetch(members, i + PREFETCH_DEPTH + 1 - level, level)


cdef int _run_phase(tuple members, bint after_phase) except -1:
    cdef int errors = 0
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(members)
    for i in range(n):
        _prefetch_ahead(members, i)
        errors += _run_member(<Subscription?>members[i], after_phase)
    return errors


def run_phase(tuple members, bint after_phase):
    """One phase of a ticker slot: every active member's ``callback`` (or its
    ``after``), each guarded; returns how many raised."""
    return _run_phase(members, after_phase)


cdef inline double _clock(int which) noexcept:
    cdef timespec ts
    clock_gettime(which, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class TickerCore:
    """The slot loop of :class:`goip_tw.media.ticker.Ticker`, in C: its
    bookkeeping adds nothing between the wake-up and the first send, and
    members that are sessions are run by direct C calls.  (The wake-up itself,
    the reactor's dispatch, costs the same as before.)  The subclass keeps
    membership, start and stop; the fields keep the names the Python ticker had."""

    cdef public object clock, now, _members, _deferred, _call, _waker
    cdef public object lateness, completion, slot_end
    cdef public object slot_cpu      # None, or a list: CPU seconds of each slot (bench)
    cdef public double period, step, _epoch
    cdef public int slots, max_catch_up
    cdef public int receive_backlog  # receive phases that may wait while sends are due
    cdef public long long _n, _count, ticks, skipped, errors, _lateness_max
    cdef public bint _pending
    cdef public Py_ssize_t _head     # members of _deferred[0] whose receive already ran
    cdef bint _mono                  # ``now`` is time.monotonic: read the clock from C

    cdef double _now(self) except? -1.0:
        if self._mono:
            return _clock(CLOCK_MONOTONIC)
        return self.now()

    def _use_c_clock(self, bint on):
        """``now`` is CLOCK_MONOTONIC (time.monotonic's clock on Linux)."""
        self._mono = on

    cpdef _schedule(self):
        cdef double deadline = self._epoch + self._n * self.step
        self._pending = True
        if self._waker is not None:
            self._waker.timer.arm_at(deadline)
        else:
            self._call = self.clock.callLater(max(0.0, deadline - self._now()), self._woken)

    def _woken(self):
        self._call = None
        self._pending = False
        self._fire()  # looked up on the instance: a test wraps it

    def _fire(self):
        """Run the slot that is due (and whatever receive phases wait)."""
        cdef double cpu0 = 0.0
        cdef bint timed = self.slot_cpu is not None
        if timed:
            cpu0 = _clock(CLOCK_THREAD_CPUTIME_ID)
        self._fire_slot()
        if timed:
            self.slot_cpu.append(_clock(CLOCK_THREAD_CPUTIME_ID) - cpu0)

    cdef int _receive_one(self) except -1:
        """The receive phase of the oldest waiting member."""
        cdef tuple entry = <tuple>self._deferred[0]   # (deadline, members)
        cdef tuple head = <tuple>entry[1]
        cdef Py_ssize_t i = self._head
        self._head = i + 1
        if i < len(head):
            _prefetch_ahead(head, i)
            self.errors += _run_member(<Subscription?>head[i], True)
        if self._deferred and self._deferred[0] is entry and self._head >= len(head):
            self._deferred.pop(0)
            self._head = 0
            if len(self.slot_end) < self._lateness_max:
                self.slot_end.append(self._now() - <double>entry[0])
        return 0

    cdef int _fire_slot(self) except -1:
        cdef double now = self._now(), deadline, late, next_deadline
        cdef long long behind, nxt
        cdef tuple members
        cdef bint record
        cdef int ran = 0
        # Sends first: the sends of every slot that is due run back to back
        # (at most a period's worth per wake-up), without a trip through the
        # reactor for each; receive phases run afterwards, oldest first, only
        # while the next slot is not yet due.  When the core was slow, the
        # sends catch up first and the receives follow in order; more than
        # receive_backlog waiting (the core is overloaded, not slow for a
        # moment) run at once.
        while True:
            deadline = self._epoch + self._n * self.step
            late = now - deadline
            behind = <long long>(late / self.period)
            if behind > self.max_catch_up:
                self._n += behind * self.slots
                self.skipped += behind
                log.warn("media ticker fell {n} periods behind; skipping ahead", n=behind)
            if len(self.lateness) < self._lateness_max:
                self.lateness.append(late)
            members = tuple(self._members[self._n % self.slots])
            self._n += 1
            self.errors += _run_phase(members, False)
            record = len(self.completion) < self._lateness_max
            if record:
                self.completion.append(self._now() - deadline)
            self._deferred.append((deadline, members))
            self.ticks += 1
            ran += 1
            while len(self._deferred) > self.receive_backlog:
                self._receive_one()
            # a callback that left as the last member and came back (or a new
            # first member) has started a new spell with its own wake-up armed
            if not self._count or self._pending or ran >= self.slots:
                break
            nxt = self._next_busy_slot()
            now = self._now()
            if now < self._epoch + nxt * self.step:
                break
            self._n = nxt
        # member by member: the next wake-up waits for one receive at most
        next_deadline = self._epoch + self._next_busy_slot() * self.step
        while self._deferred and self._now() < next_deadline:
            self._receive_one()
        if self._count and not self._pending:
            self._n = self._next_busy_slot()  # idle phases cost no wake-ups
            self._schedule()
        return 0

    cdef long long _next_busy_slot(self) except -1:
        """Index of the next slot with members (at most a period ahead)."""
        cdef long long n = self._n
        cdef int i
        for i in range(self.slots - 1):
            if self._members[n % self.slots]:
                break
            n += 1
        return n


_SUB_T = <PyTypeObject *>Subscription
_LEG_T = <PyTypeObject *>LegCore
_LINE_T = <PyTypeObject *>LineCore
_RTP_T = <PyTypeObject *>RtpCore
_METER_T = <PyTypeObject *>OneWayAudio
