"""RTCP (RFC 3550 section 6): sender/receiver reports, reception statistics, RTT.

:class:`ReceptionStats` follows the algorithms of RFC 3550 appendix A.1
(sequence validation with 16-bit wrap), A.3 (expected/lost/fraction) and A.8
(interarrival jitter).  :class:`RtcpProtocol` sends a compound SR-or-RR + SDES
CNAME every few seconds (randomised 0.5-1.5 x the interval, section 6.3.1) and
computes the round-trip time from the LSR/DLSR fields of the reports it
receives (section 6.4.1).

ReceptionStats runs for every received packet, so it is a Cython class
(``_rxstats.pyx``); Cython code cimports it through ``_rxstats.pxd``.
"""

from __future__ import annotations

import random
import struct

import attrs
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from goip_tw.media._rxstats import (  # noqa: F401 (re-exported)
    MAX_DROPOUT, MAX_MISORDER, RTP_SEQ_MOD, ReceptionStats)

log = Logger()

NTP_EPOCH_OFFSET = 2208988800  # 1900-01-01 to 1970-01-01

PT_SR, PT_RR, PT_SDES, PT_BYE, PT_APP = 200, 201, 202, 203, 204


class RtcpError(ValueError):
    """A malformed RTCP packet; the message names the field."""


def ntp_timestamp(seconds: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    return int((seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & ((1 << 64) - 1)


def ntp_middle(ntp: int) -> int:
    return (ntp >> 16) & 0xFFFFFFFF


@attrs.frozen
class ReportBlock:
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_seq: int
    jitter: int
    lsr: int
    dlsr: int

    def to_bytes(self) -> bytes:
        lost = self.cumulative_lost
        lost = max(-(1 << 23), min((1 << 23) - 1, lost)) & 0xFFFFFF
        return struct.pack("!IIIIII", self.ssrc, (self.fraction_lost << 24) | lost,
                           self.highest_seq, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def parse(cls, data: bytes, offset: int) -> "ReportBlock":
        ssrc, fl, hs, jit, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, fl >> 24, lost, hs, jit, lsr, dlsr)


@attrs.frozen
class SenderReport:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    blocks: tuple[ReportBlock, ...] = ()


@attrs.frozen
class ReceiverReport:
    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()


@attrs.frozen
class Bye:
    ssrcs: tuple[int, ...]


def _header(pt: int, count: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def build_sr(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int,
             blocks=()) -> bytes:
    body = struct.pack("!IQIII", ssrc, ntp, rtp_timestamp & 0xFFFFFFFF,
                       packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    body += b"".join(b.to_bytes() for b in blocks)
    return _header(PT_SR, len(blocks), body)


def build_rr(ssrc: int, blocks=()) -> bytes:
    body = struct.pack("!I", ssrc) + b"".join(b.to_bytes() for b in blocks)
    return _header(PT_RR, len(blocks), body)


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    raw = cname.encode("utf-8")[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(raw)) + raw + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _header(PT_SDES, 1, chunk)


def build_bye(ssrc: int) -> bytes:
    return _header(PT_BYE, 1, struct.pack("!I", ssrc))


def parse_compound(data: bytes) -> list:
    """Parse a compound packet into report objects; unknown types are skipped."""
    out = []
    pos = 0
    if len(data) < 8:
        raise RtcpError("rtcp: shorter than a header")
    while pos + 4 <= len(data):
        first, pt, length = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != 2:
            raise RtcpError(f"rtcp: version {first >> 6} at offset {pos}")
        end = pos + (length + 1) * 4
        if end > len(data):
            raise RtcpError(f"rtcp: length {length} overruns packet at offset {pos}")
        count = first & 0x1F
        body = pos + 4
        if pt == PT_SR:
            if body + 24 + 24 * count > end:
                raise RtcpError("rtcp: SR report count overruns length")
            ssrc, ntp, ts, pc, oc = struct.unpack_from("!IQIII", data, body)
            blocks = tuple(ReportBlock.parse(data, body + 24 + 24 * i) for i in range(count))
            out.append(SenderReport(ssrc, ntp, ts, pc, oc, blocks))
        elif pt == PT_RR:
            if body + 4 + 24 * count > end:
                raise RtcpError("rtcp: RR report count overruns length")
            (ssrc,) = struct.unpack_from("!I", data, body)
            blocks = tuple(ReportBlock.parse(data, body + 4 + 24 * i) for i in range(count))
            out.append(ReceiverReport(ssrc, blocks))
        elif pt == PT_BYE:
            if body + 4 * count > end:
                raise RtcpError("rtcp: BYE count overruns length")
            out.append(Bye(tuple(struct.unpack_from("!I", data, body + 4 * i)[0]
                                 for i in range(count))))
        pos = end
    return out


class RtcpProtocol(DatagramProtocol):
    """The RTCP half of an :class:`~goip_tw.media.rtp.RtpStream` (port + 1)."""

    def __init__(self, stream, clock, cname: str = "goip-tw", interval: float = 5.0,
                 rng: random.Random | None = None):
        self.stream = stream
        self.clock = clock
        self.cname = cname
        self.interval = interval
        self.rng = rng or random.Random()
        self.remote: tuple[str, int] | None = None
        self._timer = None
        self._last_sr_middle = 0
        self._last_sr_arrival = 0.0
        self.rtt: float | None = None
        self.remote_fraction_lost = 0
        self.remote_cumulative_lost = 0
        self.remote_jitter_ms = 0.0
        self.reports_sent = 0
        self.reports_received = 0
        self.malformed = 0
        stream.rtcp = self

    def start(self) -> None:
        if self._timer is None:
            self._schedule()

    def stop(self, send_bye: bool = True) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if send_bye and self.transport is not None:
            self._send(self.compound() + build_bye(self.stream.ssrc))

    def _schedule(self) -> None:
        delay = self.interval * (0.5 + self.rng.random())
        self._timer = self.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.send_report()
        self._schedule()

    def report_blocks(self) -> tuple[ReportBlock, ...]:
        st = self.stream
        stats = st.rx_stats
        if st.rx_ssrc is None or stats.received == 0:
            return ()
        dlsr = 0
        if self._last_sr_middle:
            dlsr = int((self.clock.seconds() - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
        return (ReportBlock(st.rx_ssrc, stats.take_fraction_lost(), stats.lost,
                            stats.extended_max & 0xFFFFFFFF, int(stats.jitter) & 0xFFFFFFFF,
                            self._last_sr_middle, dlsr),)

    def compound(self) -> bytes:
        st = self.stream
        blocks = self.report_blocks()
        if st.counters.sent:
            head = build_sr(st.ssrc, ntp_timestamp(self.clock.seconds()), st.timestamp,
                            st.counters.sent, st.counters.sent_octets, blocks)
        else:
            head = build_rr(st.ssrc, blocks)
        return head + build_sdes_cname(st.ssrc, self.cname)

    def send_report(self) -> None:
        if self.transport is None:
            return
        self._send(self.compound())
        self.reports_sent += 1

    def _send(self, data: bytes) -> None:
        remote = self.remote
        if remote is None and self.stream.remote is not None:
            remote = (self.stream.remote[0], self.stream.remote[1] + 1)
        if remote is None:
            return
        if self.stream.srtp is not None:
            data = self.stream.srtp.protect_rtcp(data)
        try:
            self.transport.write(data, remote)
        except OSError as e:
            log.warn("rtcp: send to {remote} failed: {error}", remote=remote, error=e)

    def datagramReceived(self, data: bytes, addr) -> None:
        if self.stream.srtp is not None:
            try:
                data = self.stream.srtp.unprotect_rtcp(data)
            except Exception:
                self.malformed += 1
                return
        try:
            items = parse_compound(data)
        except (RtcpError, struct.error) as e:
            self.malformed += 1
            log.debug("rtcp: dropped packet from {addr}: {error}", addr=addr, error=e)
            return
        if self.remote is None:
            self.remote = addr  # symmetric RTCP
        elif addr != self.remote:
            self.malformed += 1
            return
        now = self.clock.seconds()
        self.reports_received += 1
        for item in items:
            if isinstance(item, SenderReport):
                self._last_sr_middle = ntp_middle(item.ntp)
                self._last_sr_arrival = now
            if isinstance(item, (SenderReport, ReceiverReport)):
                for b in item.blocks:
                    if b.ssrc == self.stream.ssrc:
                        self._take_block(b, now)
            elif isinstance(item, Bye):
                self.stream.remote_bye(item.ssrcs)

    def _take_block(self, b: ReportBlock, now: float) -> None:
        self.remote_fraction_lost = b.fraction_lost
        self.remote_cumulative_lost = b.cumulative_lost
        self.remote_jitter_ms = b.jitter * 1000.0 / self.stream.clock_rate
        if b.lsr:
            a = ntp_middle(ntp_timestamp(now))
            rtt = ((a - b.lsr - b.dlsr) & 0xFFFFFFFF) / 65536.0
            if rtt < 60:
                self.rtt = rtt

    def figures(self) -> dict:
        return {"rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 1),
                "remote_fraction_lost": self.remote_fraction_lost / 256.0,
                "remote_cumulative_lost": self.remote_cumulative_lost,
                "remote_jitter_ms": round(self.remote_jitter_ms, 2),
                "rtcp_sent": self.reports_sent, "rtcp_received": self.reports_received}
