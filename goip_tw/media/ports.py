"""RTP port allocation: even RTP port, RTCP on the next odd one (RFC 3550 s. 11).

Ports are handed out round-robin across the configured range (F-440) so a
port freed by one call is not immediately reused by the next, which keeps late
packets of an old call out of a new one.  Ports another program holds are
skipped; the search is bounded by the size of the range.
"""

from __future__ import annotations

from twisted.internet.error import CannotListenError
from twisted.logger import Logger

log = Logger()


class NoPortsAvailable(RuntimeError):
    pass


class PortAllocator:
    def __init__(self, low: int = 16384, high: int = 32768):
        low += low % 2
        if high - low < 1:
            raise ValueError(f"rtp port range {low}-{high} holds no even/odd pair")
        self.low = low
        self.high = high
        self._pairs = (high - low + 1) // 2
        self._next = 0
        self.in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return self._pairs

    def candidates(self):
        """Free even ports, starting after the last one handed out."""
        for i in range(self._pairs):
            port = self.low + 2 * ((self._next + i) % self._pairs)
            if port not in self.in_use:
                yield port

    def listen_pair(self, reactor, rtp_protocol, rtcp_protocol=None,
                    interface: str = "0.0.0.0"):
        """Bind both protocols on the next free pair; returns ``(rtp_port, rtcp_port)``.

        ``rtcp_port`` is ``None`` when no RTCP protocol was given (the odd port is
        still reserved)."""
        for port in self.candidates():
            try:
                rtp = reactor.listenUDP(port, rtp_protocol, interface=interface)
            except CannotListenError:
                continue
            rtcp = None
            if rtcp_protocol is not None:
                try:
                    rtcp = reactor.listenUDP(port + 1, rtcp_protocol, interface=interface)
                except CannotListenError:
                    rtp.stopListening()
                    continue
            self.in_use.add(port)
            self._next = (port - self.low) // 2 + 1
            return rtp, rtcp
        raise NoPortsAvailable(f"no free RTP port pair in {self.low}-{self.high}")

    def release(self, port: int) -> None:
        self.in_use.discard(port)
