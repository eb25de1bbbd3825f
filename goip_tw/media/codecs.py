"""Codec registry: names, RTP payload types (RFC 3551) and per-call coder states.

Every codec offers ``new_encoder()`` / ``new_decoder()``; decoders also
``conceal(samples)`` for packets the jitter buffer reports lost.  G.711 uses a
repeat-and-fade concealment (in the spirit of G.711 Appendix I, simplified);
G.729 uses bcg729's own frame erasure concealment.  When the ``_g729``
extension did not build (no libbcg729-dev), G.729 is listed as unavailable
and never offered in SDP.
"""

from __future__ import annotations

from typing import Callable

import attrs
from twisted.logger import Logger

from goip_tw.media import _g711

log = Logger()

try:
    from goip_tw.media import _g729
except ImportError as e:  # pragma: no cover - depends on the build host
    _g729 = None
    G729_ERROR = str(e)
else:
    G729_ERROR = ""

SAMPLE_RATE = 8000
BYTES_PER_SAMPLE = 2


class G711Encoder:
    """``encode`` is the C codec function itself: the bridge calls it for every
    frame of every call, so no Python frame sits in between."""

    __slots__ = ("encode",)

    def __init__(self, fn):
        self.encode = fn


#: stateless decode plus repeat-and-fade concealment of the last good frame (C)
G711Decoder = _g711.Decoder


class G729Encoder:
    __slots__ = ("_enc", "encode")

    def __init__(self, vad: bool):
        self._enc = _g729.Encoder(vad)
        self.encode = self._enc.encode  # per frame: the C method, no wrapper

    def comfort_noise_payload(self) -> bytes:
        return self._enc.comfort_noise_payload()


class G729Decoder:
    __slots__ = ("_dec", "decode")

    def __init__(self):
        self._dec = _g729.Decoder()
        self.decode = self._dec.decode  # per frame: the C method, no wrapper

    def conceal(self, samples: int) -> bytes:
        return self._dec.conceal(max(1, samples // 80))

    def comfort_noise(self, cn: bytes, samples: int) -> bytes:
        return self._dec.comfort_noise(cn, max(1, samples // 80))


@attrs.frozen
class Codec:
    """One audio codec as SDP and the media path see it."""

    name: str                 #: rtpmap encoding name
    payload_type: int         #: static RTP payload type (RFC 3551)
    frame_samples: int        #: smallest unit the coder works on
    bytes_per_frame: int      #: payload bytes for one ``frame_samples`` unit
    available: bool = True
    reason: str = ""
    _encoder: Callable[[bool], object] | None = attrs.field(default=None, repr=False)
    _decoder: Callable[[], object] | None = attrs.field(default=None, repr=False)
    clock_rate: int = SAMPLE_RATE
    fmtp: str = ""

    @property
    def min_ptime(self) -> int:
        return self.frame_samples * 1000 // self.clock_rate

    def payload_bytes(self, ptime_ms: int) -> int:
        """Payload size of a voice packet of ``ptime_ms``."""
        return ptime_ms * self.clock_rate // 1000 // self.frame_samples * self.bytes_per_frame

    def new_encoder(self, vad: bool = False):
        if not self.available:
            raise LookupError(f"codec {self.name} unavailable: {self.reason}")
        return self._encoder(vad)

    def new_decoder(self):
        if not self.available:
            raise LookupError(f"codec {self.name} unavailable: {self.reason}")
        return self._decoder()

    def rtpmap(self) -> str:
        return f"{self.payload_type} {self.name}/{self.clock_rate}"


PCMU = Codec("PCMU", 0, 1, 1, encoder=lambda vad: G711Encoder(_g711.lin2ulaw),
             decoder=lambda: G711Decoder(False))
PCMA = Codec("PCMA", 8, 1, 1, encoder=lambda vad: G711Encoder(_g711.lin2alaw),
             decoder=lambda: G711Decoder(True))
G729 = Codec("G729", 18, 80, 10, available=_g729 is not None,
             reason=G729_ERROR and f"bcg729 extension not built ({G729_ERROR})",
             encoder=G729Encoder, decoder=G729Decoder, fmtp="annexb=yes")

#: RFC 3389 comfort noise and RFC 4733 telephone events are not voice codecs
CN_PAYLOAD_TYPE = 13

REGISTRY: dict[str, Codec] = {c.name: c for c in (PCMU, PCMA, G729)}
BY_PAYLOAD_TYPE: dict[int, Codec] = {c.payload_type: c for c in REGISTRY.values()}


def get(name: str) -> Codec:
    """Look a codec up by its rtpmap name (case-insensitive); ``KeyError`` if unknown."""
    return REGISTRY[name.upper()]


def available(order=("PCMA", "PCMU", "G729")) -> list[Codec]:
    """Usable codecs in the configured order; unavailable ones are logged once and left out."""
    out = []
    for name in order:
        codec = REGISTRY.get(name.upper())
        if codec is None:
            log.warn("media: unknown codec {codec} in codec list", codec=name)
        elif not codec.available:
            log.warn("media: codec {codec} unavailable: {reason}", codec=name, reason=codec.reason)
        else:
            out.append(codec)
    return out


def status() -> dict[str, dict]:
    """Codec availability for the status page and API."""
    return {c.name: {"payload_type": c.payload_type, "available": c.available,
                     "reason": c.reason} for c in REGISTRY.values()}
