"""SDP sessions (RFC 4566) and the RFC 3264 offer/answer model for the SIP side.

``goip_tw.media.sdp`` describes the one audio stream the media engine runs; this
module keeps the *whole* session description a peer sent, so an answer has one
``m=`` line per offered stream (RFC 3264 §6: unwanted streams answered with port
0), the ``o=`` version grows on every change (§8), and attributes we do not use
survive a parse/serialise round trip.

Public API:

- ``Session.parse(data) -> Session`` (raises ``SdpError`` naming the line),
  ``Session.to_bytes()``; ``Media`` per ``m=`` line with ``rtpmap``, ``fmtp``,
  ``direction``, ``ptime``, ``codecs()``.
- ``make_offer(address, port, codecs, ptime=20, dtmf_pt=101, direction=...)``.
- ``make_answer(offer, address, port, codecs, ptime=20, dtmf=True, hold=None)``:
  codecs in *our* configured order (F-440; §6.1 lets the answerer choose), the
  first match only unless ``multiple=True``, ``telephone-event`` with the
  offerer's payload type when offered (RFC 4733 §7.1), ``ptime`` raised to the
  codec's minimum; ``NoCommonCodec`` (answer 488) when nothing matches.
- ``hold(session, mode="sendonly"|"inactive")`` / ``resume(session)`` for our
  re-INVITEs (§8.4), ``answer_direction(offered, local)``.
"""

from __future__ import annotations

import attrs

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

#: Static payload types (RFC 3551 Table 4) for the codecs a gateway meets.
STATIC = {0: ("PCMU", 8000), 3: ("GSM", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000),
          18: ("G729", 8000), 13: ("CN", 8000)}
#: Smallest packet time a codec can carry, in ms (G.729 frames are 10 ms).
MIN_PTIME = {"G729": 10, "PCMU": 10, "PCMA": 10, "G722": 10, "GSM": 20}


class SdpError(ValueError):
    def __init__(self, field: str, detail: str):
        super().__init__(f"sdp {field}: {detail}")
        self.field = field


class NoCommonCodec(SdpError):
    """No offered audio codec is in our list: answer 488 (RFC 3261 §13.3.1.3)."""


@attrs.frozen
class Media:
    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()
    other: tuple[str, ...] = ()  # b=, i=, k= lines kept verbatim

    def attr(self, name: str, default=None):
        for k, v in self.attributes:
            if k == name:
                return v
        return default

    @property
    def rtpmap(self) -> dict[str, tuple[str, int]]:
        out = {}
        for k, v in self.attributes:
            if k == "rtpmap" and v:
                pt, _, enc = v.partition(" ")
                name, _, rest = enc.partition("/")
                rate = rest.partition("/")[0]
                out[pt] = (name.upper(), int(rate) if rate.isdigit() else 8000)
        return out

    @property
    def fmtp(self) -> dict[str, str]:
        return {v.partition(" ")[0]: v.partition(" ")[2] for k, v in self.attributes
                if k == "fmtp" and v}

    def codecs(self) -> list[tuple[str, str, int]]:
        """``(payload type, NAME, rate)`` in offer order."""
        rtpmap = self.rtpmap
        out = []
        for pt in self.formats:
            if pt in rtpmap:
                out.append((pt, *rtpmap[pt]))
            elif pt.isdigit() and int(pt) in STATIC:
                out.append((pt, *STATIC[int(pt)]))
        return out

    @property
    def direction(self) -> str:
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k
        return "sendrecv"

    @property
    def ptime(self) -> int | None:
        v = self.attr("ptime")
        try:
            return int(float(v)) if v else None
        except ValueError:
            return None


@attrs.frozen
class Session:
    origin: tuple[str, str, int, str]  # username, session id, version, address
    connection: str | None
    media: tuple[Media, ...]
    name: str = "-"
    attributes: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, data: bytes | str) -> "Session":
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        origin = None
        connection = None
        name = "-"
        sattrs: list = []
        media: list[dict] = []
        for n, raw in enumerate(text.splitlines()[:1000], 1):
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError("line", f"{n}: {line[:40]!r} is not type=value")
            kind, value = line[0], line[2:]
            cur = media[-1] if media else None
            if kind == "o":
                parts = value.split()
                if len(parts) != 6 or not parts[2].isdigit():
                    raise SdpError("o", f"bad origin {value[:60]!r}")
                origin = (parts[0], parts[1], int(parts[2]), parts[5])
            elif kind == "s":
                name = value or "-"
            elif kind == "c":
                parts = value.split()
                if len(parts) != 3:
                    raise SdpError("c", f"bad connection {value[:60]!r}")
                addr = parts[2].split("/")[0]
                if cur is None:
                    connection = addr
                else:
                    cur["connection"] = addr
            elif kind == "m":
                parts = value.split()
                if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                    raise SdpError("m", f"bad media line {value[:60]!r}")
                port = int(parts[1].split("/")[0])
                if port > 65535:
                    raise SdpError("m", f"port {port} out of range")
                media.append({"kind": parts[0], "port": port, "proto": parts[2],
                              "formats": tuple(parts[3:]), "attributes": [], "other": []})
            elif kind == "a":
                k, colon, v = value.partition(":")
                target = cur["attributes"] if cur is not None else sattrs
                target.append((k, v if colon else None))
            elif cur is not None and kind in "bik":
                cur["other"].append(line)
        if origin is None:
            raise SdpError("o", "missing origin line")
        ms = []
        for m in media:
            ms.append(Media(m["kind"], m["port"], m["proto"], m["formats"],
                            m.get("connection"), tuple(m["attributes"]), tuple(m["other"])))
            if ms[-1].port and (ms[-1].connection or connection) is None:
                raise SdpError("c", f"no connection address for m={m['kind']}")
        return cls(origin, connection, tuple(ms), name, tuple(sattrs))

    def to_bytes(self) -> bytes:
        user, sid, version, addr = self.origin
        lines = ["v=0", f"o={user} {sid} {version} IN {_ip(addr)} {addr}", f"s={self.name}"]
        if self.connection:
            lines.append(f"c=IN {_ip(self.connection)} {self.connection}")
        lines.append("t=0 0")
        lines += [_attr_line(k, v) for k, v in self.attributes]
        for m in self.media:
            lines.append(f"m={m.kind} {m.port} {m.proto} {' '.join(m.formats)}")
            if m.connection:
                lines.append(f"c=IN {_ip(m.connection)} {m.connection}")
            lines += list(m.other)
            lines += [_attr_line(k, v) for k, v in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode()

    def audio(self) -> Media | None:
        for m in self.media:
            if m.kind == "audio" and m.port:
                return m
        return None

    def address_of(self, media: Media) -> str | None:
        return media.connection or self.connection


def _ip(addr: str) -> str:
    return "IP6" if ":" in addr else "IP4"


def _attr_line(k: str, v: str | None) -> str:
    return f"a={k}" if v is None else f"a={k}:{v}"


def _audio_attrs(chosen, dtmf_pt, ptime, direction):
    attrs_ = []
    for pt, name, rate in chosen:
        attrs_.append(("rtpmap", f"{pt} {name}/{rate}"))
        if name == "G729":
            attrs_.append(("fmtp", f"{pt} annexb=no"))
    if dtmf_pt is not None:
        attrs_ += [("rtpmap", f"{dtmf_pt} telephone-event/8000"), ("fmtp", f"{dtmf_pt} 0-16")]
    attrs_.append(("ptime", str(ptime)))
    attrs_.append((direction, None))
    return tuple(attrs_)


_DEFAULT_PT = {name: pt for pt, (name, _) in STATIC.items()}


def make_offer(address: str, port: int, codecs, ptime: int = 20, dtmf_pt: int | None = 101,
               direction: str = "sendrecv", session_id: str = "1", version: int = 1) -> Session:
    """Our offer: one audio stream, codecs in configured order (F-440)."""
    chosen = []
    next_dynamic = 96
    for name in codecs:
        name = name.upper()
        pt = _DEFAULT_PT.get(name)
        if pt is None:
            pt, next_dynamic = next_dynamic, next_dynamic + 1
        chosen.append((str(pt), name, 8000))
    ptime = max([ptime] + [MIN_PTIME.get(n, 10) for _, n, _ in chosen])
    formats = tuple(pt for pt, _, _ in chosen) + ((str(dtmf_pt),) if dtmf_pt else ())
    media = Media("audio", port, "RTP/AVP", formats, None,
                  _audio_attrs(chosen, dtmf_pt, ptime, direction))
    return Session(("goip-tw", session_id, version, address), address, (media,), "goip-tw")


def answer_direction(offered: str, local: str = "sendrecv") -> str:
    """RFC 3264 §6.1: the answer's direction given the offer's and what we want."""
    send = offered in ("sendrecv", "recvonly") and local in ("sendrecv", "sendonly")
    recv = offered in ("sendrecv", "sendonly") and local in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, recv)]


def make_answer(offer: Session, address: str, port: int, codecs, ptime: int = 20,
                dtmf: bool = True, local_direction: str = "sendrecv",
                multiple: bool = False, session_id: str = "1", version: int = 1) -> Session:
    """RFC 3264 §6: one answer stream per offered stream; audio negotiated."""
    ours = [c.upper() for c in codecs]
    answered = []
    used = False
    for m in offer.media:
        if used or m.kind != "audio" or m.port == 0 or m.proto not in (
                "RTP/AVP", "RTP/SAVP", "RTP/AVPF"):
            answered.append(Media(m.kind, 0, m.proto, m.formats[:1]))
            continue
        offered = m.codecs()
        chosen = []
        for name in ours:
            for pt, oname, rate in offered:
                if oname == name and rate == 8000 and (pt, oname, rate) not in chosen:
                    chosen.append((pt, oname, rate))
                    break
            if chosen and not multiple:
                break
        if not chosen:
            raise NoCommonCodec("m", "no common audio codec (offered "
                                f"{', '.join(n for _, n, _ in offered) or 'none'})")
        dtmf_pt = None
        if dtmf:
            for pt, name, rate in offered:
                if name == "TELEPHONE-EVENT" and rate == 8000:
                    dtmf_pt = pt
                    break
        want = max(ptime, *(MIN_PTIME.get(n, 10) for _, n, _ in chosen))
        if m.ptime and m.ptime > want:
            want = m.ptime
        formats = tuple(pt for pt, _, _ in chosen) + ((dtmf_pt,) if dtmf_pt else ())
        direction = answer_direction(m.direction, local_direction)
        answered.append(Media("audio", port, m.proto, formats, None,
                              _audio_attrs(chosen, dtmf_pt, want, direction)))
        used = True
    if not used:
        raise NoCommonCodec("m", "no usable audio stream offered")
    return Session(("goip-tw", session_id, version, address), address, tuple(answered),
                   "goip-tw")


def hold(session: Session, mode: str = "sendonly") -> Session:
    """Our re-INVITE offer putting the call on hold (§8.4): new version, direction."""
    if mode not in ("sendonly", "inactive"):
        raise ValueError(f"hold mode must be sendonly or inactive, not {mode!r}")
    return _redirect(session, mode)


def resume(session: Session) -> Session:
    return _redirect(session, "sendrecv")


def _redirect(session: Session, direction: str) -> Session:
    media = []
    for m in session.media:
        if m.kind == "audio" and m.port:
            kept = tuple((k, v) for k, v in m.attributes if k not in DIRECTIONS)
            m = attrs.evolve(m, attributes=kept + ((direction, None),))
        media.append(m)
    user, sid, version, addr = session.origin
    return attrs.evolve(session, origin=(user, sid, version + 1, addr), media=tuple(media))
