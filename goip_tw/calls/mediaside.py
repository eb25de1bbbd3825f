"""IMediaSide for the controller, plus the SDP hooks the SIP adapter needs.

``MediaSide.from_gateway`` uses the media subsystem's session/bridge API when it
is there (``goip_tw/media/bridge.py``); without it the gateway still signals
calls through ``NullMedia`` (SDP that announces G.711 and telephone-event, no
audio), so signalling can be tested and a missing media build never blocks a call.
"""

from __future__ import annotations

import itertools

from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.calls.interfaces import IMediaSide, IStoppable, MediaStats

log = Logger()


@implementer(IStoppable)
class _Nothing:
    def __init__(self, result=None):
        self.result = result

    def stop(self):
        return self.result


@implementer(IMediaSide)
class NullMedia:
    """Signalling only: SDP offers/answers with no RTP behind them."""

    def __init__(self, address: str = "127.0.0.1", first_port: int = 40000):
        self.address = address
        self._ports = itertools.count(first_port, 2)
        self._legs: dict[int, int] = {}

    def _sdp(self, port: int) -> bytes:
        a = self.address
        return (f"v=0\r\no=goip 1 1 IN IP4 {a}\r\ns=goip-tw\r\nc=IN IP4 {a}\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n"
                "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n").encode()

    # SIP adapter hooks
    def local_sdp(self, leg, offer):
        port = self._legs.setdefault(id(leg), next(self._ports))
        return self._sdp(port)

    def remote_sdp(self, leg, sdp):
        pass

    def release(self, leg):
        self._legs.pop(id(leg), None)

    def codec_of(self, leg):
        return None

    # IMediaSide
    def bridge(self, line, leg):
        return _Nothing(MediaStats())

    def tone_to_line(self, line, tone):
        return _Nothing()

    def tone_to_leg(self, leg, tone):
        return _Nothing()

    def detect_line_dtmf(self, line, callback):
        return _Nothing()

    def detect_leg_dtmf(self, leg, callback):
        return _Nothing()


class MediaSide:
    @staticmethod
    def from_gateway(gateway, calls_service):
        media = gateway.subsystem("media")
        factory = getattr(media, "calls_media", None)
        if factory is not None:
            return factory(calls_service)
        log.warn("media subsystem offers no call media: calls carry signalling only")
        return NullMedia()
