"""Audio SDP offer/answer (RFC 4566, RFC 3264) for one RTP stream per call.

Only what a voice gateway needs: one ``m=audio`` line, static and dynamic
payload types (``a=rtpmap``), RFC 4733 telephone-event, ``a=ptime``, the
direction attributes (hold, RFC 3264 section 8.4), and SDES ``a=crypto``
(RFC 4568) for ``RTP/SAVP``.  Parsing never raises on unknown lines; missing
essentials raise :class:`SdpError` naming the field.
"""

from __future__ import annotations

import attrs

from goip_tw.media import codecs


class SdpError(ValueError):
    """Unusable SDP; the message names the field."""


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@attrs.frozen
class AudioDescription:
    address: str
    port: int
    payload_types: tuple[int, ...]
    rtpmap: dict = attrs.field(factory=dict, eq=False)   # pt -> "NAME/rate"
    fmtp: dict = attrs.field(factory=dict, eq=False)     # pt -> params
    ptime: int | None = None
    direction: str = "sendrecv"
    profile: str = "RTP/AVP"
    crypto: tuple[str, ...] = ()

    def codec_name(self, pt: int) -> str | None:
        if pt in self.rtpmap:
            return self.rtpmap[pt].split("/")[0].upper()
        codec = codecs.BY_PAYLOAD_TYPE.get(pt)
        if codec is not None:
            return codec.name
        return {13: "CN"}.get(pt)

    def telephone_event_pt(self) -> int | None:
        for pt in self.payload_types:
            if self.codec_name(pt) == "TELEPHONE-EVENT":
                return pt
        return None


def parse(data: bytes | str) -> AudioDescription:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    session_addr = None
    media = None
    attrs_: list[str] = []
    media_addr = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if media is not None and media[0] == "audio":
                break  # only the first audio stream
            media = value.split()
            attrs_ = []
            media_addr = None
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"sdp: c= line {value!r} is incomplete")
            if media is None:
                session_addr = parts[2].split("/")[0]
            else:
                media_addr = parts[2].split("/")[0]
        elif kind == "a" and media is not None:
            attrs_.append(value)
    if media is None or media[0] != "audio":
        raise SdpError("sdp: no m=audio line")
    if len(media) < 4:
        raise SdpError("sdp: m=audio line has no payload types")
    try:
        port = int(media[1].split("/")[0])
    except ValueError:
        raise SdpError(f"sdp: m=audio port {media[1]!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise SdpError(f"sdp: m=audio port {port} out of range")
    try:
        pts = tuple(int(p) for p in media[3:])
    except ValueError:
        raise SdpError("sdp: m=audio payload types must be numbers") from None
    if any(not 0 <= p <= 127 for p in pts):
        raise SdpError("sdp: m=audio payload type out of range")
    address = media_addr or session_addr
    if address is None:
        raise SdpError("sdp: no c= connection address")
    rtpmap, fmtp, crypto = {}, {}, []
    ptime = None
    direction = "sendrecv"
    for a in attrs_:
        name, _, val = a.partition(":")
        if name == "rtpmap":
            pt, _, enc = val.partition(" ")
            if pt.isdigit():
                rtpmap[int(pt)] = enc.strip()
        elif name == "fmtp":
            pt, _, params = val.partition(" ")
            if pt.isdigit():
                fmtp[int(pt)] = params.strip()
        elif name == "ptime":
            try:
                ptime = int(float(val))
            except ValueError:
                raise SdpError(f"sdp: a=ptime {val!r} is not a number") from None
        elif name in DIRECTIONS:
            direction = name
        elif name == "crypto":
            crypto.append(val.strip())
    if address in ("0.0.0.0", "::") and direction == "sendrecv":
        direction = "sendonly"  # RFC 2543-style hold
    return AudioDescription(address, port, pts, rtpmap, fmtp, ptime, direction, media[2],
                            tuple(crypto))


def build(address: str, port: int, codec_list, *, dtmf_pt: int | None = 101,
          ptime: int = 20, direction: str = "sendrecv", crypto: str | None = None,
          session_id: int = 1, version: int = 1, cn: bool = False) -> bytes:
    ip = "IP6" if ":" in address else "IP4"
    pts = [c.payload_type for c in codec_list]
    if cn:
        pts.append(codecs.CN_PAYLOAD_TYPE)
    if dtmf_pt is not None:
        pts.append(dtmf_pt)
    profile = "RTP/SAVP" if crypto else "RTP/AVP"
    lines = ["v=0", f"o=goip-tw {session_id} {version} IN {ip} {address}", "s=goip-tw",
             f"c=IN {ip} {address}", "t=0 0",
             f"m=audio {port} {profile} {' '.join(map(str, pts))}"]
    for c in codec_list:
        lines.append(f"a=rtpmap:{c.rtpmap()}")
        if c.fmtp:
            lines.append(f"a=fmtp:{c.payload_type} {c.fmtp}")
    if cn:
        lines.append(f"a=rtpmap:{codecs.CN_PAYLOAD_TYPE} CN/8000")
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines.append(f"a=ptime:{ptime}")
    if crypto:
        lines.append(f"a=crypto:{crypto}")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def answer_direction(offered: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(offered, offered)


def negotiate(offer: AudioDescription, our_order: list) -> list:
    """Codecs we share with the offer, in the offerer's order (RFC 3264 s. 6.1)."""
    ours = {c.name: c for c in our_order}
    out = []
    for pt in offer.payload_types:
        name = offer.codec_name(pt)
        if name in ours:
            c = ours[name]
            if pt != c.payload_type:
                c = attrs.evolve(c, payload_type=pt)
            out.append(c)
    return out
