"""RTP packets and streams (RFC 3550), with symmetric RTP and anti-bleed latching.

An :class:`RtpStream` is one call's RTP socket.  It keeps its own SSRC, sequence
number and timestamp for the whole call, so a re-INVITE that changes codec or
remote address continues the same stream (RFC 3264 section 8).  Incoming
packets are checked in the order RFC 3550 section 5.1 suggests (version, CSRC
list, header extension, padding) and then against the negotiated payload
types; anything else is counted and dropped.  The first good packet latches the
remote address (symmetric RTP, RFC 4961 - we then send where the peer sends
from, which gets through NAT); after that, packets from any other address are
dropped ("RTP bleed").  A re-INVITE calls :meth:`RtpStream.set_remote`, which
re-opens the latch for the new address.
"""

from __future__ import annotations

import random
import struct
from typing import Callable, Iterable

import attrs
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from goip_tw.media._fastpath import RtpCore, RtpCounters
from goip_tw.media.rtcp import ReceptionStats

log = Logger()

_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """A malformed RTP packet; the message names the offending field."""


@attrs.frozen
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None

    def to_bytes(self) -> bytes:
        first = 0x80 | len(self.csrcs) | (0x10 if self.extension is not None else 0)
        out = _HEADER.pack(first, (0x80 if self.marker else 0) | self.payload_type,
                           self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        if self.csrcs:
            out += struct.pack(f"!{len(self.csrcs)}I", *self.csrcs)
        if self.extension is not None:
            profile, data = self.extension
            data += b"\x00" * (-len(data) % 4)
            out += struct.pack("!HH", profile, len(data) // 4) + data
        return out + self.payload

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        n = len(data)
        if n < 12:
            raise RtpError(f"rtp: packet of {n} bytes is shorter than the header")
        first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        if first == 0x80:  # the usual packet: no padding, extension or CSRCs
            return cls(second & 0x7F, seq, ts, ssrc, data[12:], second > 0x7F)
        if first >> 6 != 2:
            raise RtpError(f"rtp: version {first >> 6}, expected 2")
        cc = first & 0x0F
        pos = 12 + 4 * cc
        if pos > n:
            raise RtpError(f"rtp: csrc count {cc} overruns the packet")
        csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        extension = None
        if first & 0x10:
            if pos + 4 > n:
                raise RtpError("rtp: extension header overruns the packet")
            profile, words = struct.unpack_from("!HH", data, pos)
            end = pos + 4 + 4 * words
            if end > n:
                raise RtpError(f"rtp: extension length {words} overruns the packet")
            extension = (profile, data[pos + 4:end])
            pos = end
        end = n
        if first & 0x20:
            pad = data[-1]
            if pad == 0 or pos + pad > n:
                raise RtpError(f"rtp: padding count {pad} invalid")
            end = n - pad
        return cls(second & 0x7F, seq, ts, ssrc, data[pos:end], bool(second & 0x80),
                   tuple(csrcs), extension)


class RtpStream(RtpCore, DatagramProtocol):
    """One call's RTP endpoint.

    ``on_packet(packet)`` gets every accepted packet.  ``on_timeout()`` runs once
    when nothing was accepted for ``timeout`` seconds (F-440 RTP timeout; 0 turns
    it off).  ``srtp`` is an object with ``protect``/``unprotect`` (and the RTCP
    variants), see :mod:`goip_tw.media.srtp`.

    The per-packet state and the send path live in
    :class:`goip_tw.media._fastpath.RtpCore` (C); this class keeps the
    validation, latching and timeout logic.
    """

    clock_rate = 8000

    def __init__(self, clock, *, payload_types: Iterable[int],
                 on_packet: Callable[[RtpPacket], None] = lambda p: None,
                 timeout: float = 0, on_timeout: Callable[[], None] | None = None,
                 rng: random.Random | None = None, srtp=None):
        rng = rng or random.SystemRandom()
        self.clock = clock
        self.payload_types = frozenset(payload_types)
        self.on_packet = on_packet
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.srtp = srtp
        self.ssrc = rng.getrandbits(32)
        self.sequence = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self.rx_ssrc: int | None = None
        self.rx_stats = ReceptionStats(self.clock_rate)
        self.counters = RtpCounters()
        self.last_received: float | None = None
        self.started_at: float | None = None
        self.rtcp = None
        self._timeout_call = None
        self._timed_out = False

    # -- configuration -------------------------------------------------------------
    def set_remote(self, addr: tuple[str, int] | None) -> None:
        """The address from SDP (call start or re-INVITE); re-opens the latch."""
        self.remote = addr
        self.latched = False
        if self.rtcp is not None:
            self.rtcp.remote = None

    def set_payload_types(self, payload_types: Iterable[int]) -> None:
        self.payload_types = frozenset(payload_types)

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        self.started_at = self.clock.seconds()
        if self.timeout and self._timeout_call is None:
            self._timeout_call = self.clock.callLater(self.timeout, self._check_timeout)

    def stop(self) -> None:
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None

    def _check_timeout(self) -> None:
        self._timeout_call = None
        last = self.last_received if self.last_received is not None else self.started_at
        due = last + self.timeout
        now = self.clock.seconds()
        if now >= due:
            self._timed_out = True
            log.info("rtp: no media from {remote} for {timeout}s", remote=self.remote,
                     timeout=self.timeout)
            if self.on_timeout is not None:
                self.on_timeout()
            return
        self._timeout_call = self.clock.callLater(due - now, self._check_timeout)

    def doStart(self) -> None:
        self._forget_socket()
        super().doStart()

    def doStop(self) -> None:
        self._forget_socket()  # the port closes the socket right after this
        super().doStop()

    # -- receiving -----------------------------------------------------------------
    def datagramReceived(self, data: bytes, addr) -> None:
        c = self.counters
        if self.latched and addr != self.remote:
            c.foreign_source += 1
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect(data)
            except Exception:
                c.srtp_failed += 1
                return
        try:
            pkt = RtpPacket.parse(data)
        except RtpError as e:
            c.malformed += 1
            log.debug("rtp: dropped packet from {addr}: {error}", addr=addr, error=e)
            return
        if pkt.payload_type not in self.payload_types:
            c.unknown_payload_type += 1
            return
        if not self.latched:
            if self.remote is not None and addr != self.remote:
                log.info("rtp: peer sends from {addr}, not {sdp}: answering there",
                         addr=addr, sdp=self.remote)
            self.remote = addr
            self.latched = True
        if pkt.ssrc != self.rx_ssrc:
            self.rx_ssrc = pkt.ssrc
            self.rx_stats = ReceptionStats(self.clock_rate)
        now = self.clock.seconds()
        if not self.rx_stats.update_seq(pkt.sequence):
            return
        self.rx_stats.update_jitter(now, pkt.timestamp)
        c.received += 1
        c.received_octets += len(pkt.payload)
        self.last_received = now
        self.on_packet(pkt)

    def remote_bye(self, ssrcs) -> None:
        if self.rx_ssrc in ssrcs:
            log.info("rtp: remote source {ssrc:08x} said BYE", ssrc=self.rx_ssrc)

    # -- reporting -----------------------------------------------------------------
    def figures(self) -> dict:
        """Per-call media figures for CDRs, the status page and the API."""
        st = self.rx_stats
        out = self.counters.asdict()
        out.update(lost=max(0, st.lost) if st.started else 0,
                   jitter_ms=round(st.jitter_ms, 2),
                   remote=None if self.remote is None else f"{self.remote[0]}:{self.remote[1]}")
        if self.rtcp is not None:
            out.update(self.rtcp.figures())
        return out
