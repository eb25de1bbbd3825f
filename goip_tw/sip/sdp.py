"""SDP (RFC 4566) and the RFC 3264 offer/answer model: the gateway's one SDP module.

Two views of one parser:

- ``Session``/``Media`` keep the *whole* description a peer sent, so an answer has
  one ``m=`` line per offered stream (RFC 3264 §6: unwanted streams answered with
  port 0), the ``o=`` version grows on every change (§8), and attributes we do not
  use survive a parse/serialise round trip.
- ``AudioDescription`` is the first audio stream checked for what an RTP engine
  needs (numeric payload types, a connection address, ``a=ptime``, SDES
  ``a=crypto`` for ``RTP/SAVP``, RFC 4568); ``goip_tw.media.service`` runs on it.

Public API:

- ``Session.parse(data, strict=True) -> Session`` (raises ``SdpError`` naming the
  field), ``Session.to_bytes()``; ``Media`` per ``m=`` line with ``rtpmap``,
  ``fmtp``, ``direction``, ``ptime``, ``crypto``, ``codecs()``.
- ``parse_audio(data) -> AudioDescription``: lenient about lines it does not need
  (no ``o=`` is fine), strict about the audio stream itself;
  ``offered_direction(data)`` for hold detection (never raises).
- ``make_offer(address, port, codecs, ptime=20, dtmf_pt=101, direction=..., crypto=None)``.
- ``make_answer(offer, address, port, codecs, ptime=20, dtmf=True, ...)``:
  codecs in *our* configured order (F-440; §6.1 lets the answerer choose), the
  first match only unless ``multiple=True``, ``telephone-event`` with the
  offerer's payload type when offered (RFC 4733 §7.1), ``ptime`` raised to the
  codec's minimum; ``NoCommonCodec`` (answer 488) when nothing matches.
- ``build_audio(address, port, codec_list, ...) -> bytes``: our one audio stream
  from codec objects (``name``, ``payload_type``, ``clock_rate``, ``fmtp``), with
  comfort noise (RFC 3389) and ``a=crypto`` (profile ``RTP/SAVP``) when asked;
  ``answer_to=`` the parsed offer keeps the offer's stream count.
- ``negotiate(description, our_codecs)``: the codecs both sides have, in the
  offer's order, renumbered to the offer's payload types.
- ``hold(session, mode="sendonly"|"inactive")`` / ``resume(session)`` for our
  re-INVITEs (§8.4), ``answer_direction(offered, local)``.
"""

from __future__ import annotations

import attrs

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
RTP_PROFILES = ("RTP/AVP", "RTP/SAVP", "RTP/AVPF")

#: Static payload types (RFC 3551 Table 4) for the codecs a gateway meets.
STATIC = {0: ("PCMU", 8000), 3: ("GSM", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000),
          18: ("G729", 8000), 13: ("CN", 8000)}
#: RFC 3389 comfort noise.
CN_PAYLOAD_TYPE = 13
#: Smallest packet time a codec can carry, in ms (G.729 frames are 10 ms).
MIN_PTIME = {"G729": 10, "PCMU": 10, "PCMA": 10, "G722": 10, "GSM": 20}
#: Longest packet time we accept from a peer, in ms.
MAX_PTIME = 1000
#: Addresses that mean "do not send" (RFC 2543-style hold, RFC 3264 §8.4).
NULL_ADDRESSES = ("0.0.0.0", "::")


class SdpError(ValueError):
    """Unusable SDP; ``field`` names the line or attribute that was wrong."""

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
                pt, _, enc = v.strip().partition(" ")
                name, _, rest = enc.strip().partition("/")
                rate = rest.partition("/")[0]
                out[pt] = (name.upper(), int(rate) if _digits(rate) else 8000)
        return out

    @property
    def fmtp(self) -> dict[str, str]:
        return {v.partition(" ")[0]: v.partition(" ")[2].strip() for k, v in self.attributes
                if k == "fmtp" and v}

    @property
    def crypto(self) -> tuple[str, ...]:
        """SDES ``a=crypto`` values in offer order (RFC 4568 §9.1)."""
        return tuple(v.strip() for k, v in self.attributes if k == "crypto" and v)

    def codecs(self) -> list[tuple[str, str, int]]:
        """``(payload type, NAME, rate)`` in offer order."""
        rtpmap = self.rtpmap
        out = []
        for pt in self.formats:
            if pt in rtpmap:
                out.append((pt, *rtpmap[pt]))
            elif _digits(pt) and int(pt) in STATIC:
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
        try:
            return _ptime(self.attr("ptime"))
        except SdpError:
            return None


@attrs.frozen
class Session:
    # username, session id, version, address; None only from a lenient parse
    origin: tuple[str, str, int, str] | None
    connection: str | None
    media: tuple[Media, ...]
    name: str = "-"
    attributes: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, data: bytes | str, strict: bool = True) -> "Session":
        """Parse a description; ``strict=False`` skips lines that are not
        ``type=value``, accepts a missing ``o=`` and leaves the per-stream
        connection check to the caller (``parse_audio``)."""
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
                if not strict:
                    continue
                raise SdpError("line", f"{n}: {line[:40]!r} is not type=value")
            kind, value = line[0], line[2:]
            cur = media[-1] if media else None
            if kind == "o":
                parts = value.split()
                if len(parts) != 6 or not _digits(parts[2]):
                    raise SdpError("o", f"bad origin {value[:60]!r}")
                origin = (parts[0], parts[1], int(parts[2]), parts[5])
            elif kind == "s":
                name = value or "-"
            elif kind == "c":
                parts = value.split()
                if len(parts) != 3:
                    raise SdpError("c", f"c= line {value[:60]!r} needs network, type, address")
                addr = parts[2].split("/")[0]
                if cur is None:
                    connection = addr
                else:
                    cur["connection"] = addr
            elif kind == "m":
                media.append(_media_line(value))
            elif kind == "a":
                k, colon, v = value.partition(":")
                target = cur["attributes"] if cur is not None else sattrs
                target.append((k, v if colon else None))
            elif cur is not None and kind in "bik":
                cur["other"].append(line)
        if origin is None and strict:
            raise SdpError("o", "missing origin line")
        ms = []
        for m in media:
            ms.append(Media(m["kind"], m["port"], m["proto"], m["formats"],
                            m.get("connection"), tuple(m["attributes"]), tuple(m["other"])))
            if strict and ms[-1].port and (ms[-1].connection or connection) is None:
                raise SdpError("c", f"no connection address for m={m['kind']}")
        return cls(origin, connection, tuple(ms), name, tuple(sattrs))

    def to_bytes(self) -> bytes:
        user, sid, version, addr = self.origin or ("-", "0", 0, self.connection or "0.0.0.0")
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

    def direction_of(self, media: Media) -> str:
        """The stream's direction; a session-level one applies to streams without
        their own (RFC 4566 §6)."""
        for k, _ in media.attributes + self.attributes:
            if k in DIRECTIONS:
                return k
        return "sendrecv"


def _media_line(value: str) -> dict:
    """One ``m=<media> <port>[/<count>] <proto> <fmt> ...`` line (RFC 4566 §5.14)."""
    parts = value.split()
    kind = parts[0] if parts else ""
    if len(parts) < 4:
        raise SdpError("m", f"m={kind} line {value[:60]!r} has no payload types")
    port = parts[1].split("/")[0]
    if not _digits(port):
        raise SdpError("m", f"m={kind} port {parts[1][:20]!r} is not a number")
    if int(port) > 65535:
        raise SdpError("m", f"m={kind} port {port} out of range")
    return {"kind": kind, "port": int(port), "proto": parts[2], "formats": tuple(parts[3:]),
            "attributes": [], "other": []}


@attrs.frozen
class AudioDescription:
    """The first audio stream of a description, checked for the RTP engine."""

    address: str
    port: int
    payload_types: tuple[int, ...]
    rtpmap: dict = attrs.field(factory=dict, eq=False)   # pt -> (NAME, rate)
    fmtp: dict = attrs.field(factory=dict, eq=False)     # pt -> params
    ptime: int | None = None
    direction: str = "sendrecv"
    profile: str = "RTP/AVP"
    crypto: tuple[str, ...] = ()
    #: the whole description and where this stream is in it, to shape an answer
    session: Session | None = attrs.field(default=None, eq=False, repr=False)
    index: int = attrs.field(default=0, eq=False)

    def codec_name(self, pt: int) -> str | None:
        if pt in self.rtpmap:
            return self.rtpmap[pt][0]
        return STATIC.get(pt, (None,))[0]

    def telephone_event_pt(self) -> int | None:
        for pt in self.payload_types:
            if self.codec_name(pt) == "TELEPHONE-EVENT":
                return pt
        return None


def parse_audio(data: bytes | str) -> AudioDescription:
    """The remote audio stream; ``SdpError`` names what is missing or wrong."""
    session = Session.parse(data, strict=False)
    index = _audio_index(session)
    if index is None:
        raise SdpError("m", "no m=audio line")
    m = session.media[index]
    if not all(_digits(p) for p in m.formats):
        raise SdpError("m", "m=audio payload types must be numbers")
    pts = tuple(int(p) for p in m.formats)
    if any(not 0 <= p <= 127 for p in pts):
        raise SdpError("m", "m=audio payload type out of range")
    address = session.address_of(m)
    if address is None:
        raise SdpError("c", "no c= connection address for m=audio")
    ptime = _ptime(m.attr("ptime"))
    rtpmap = {int(pt): v for pt, v in m.rtpmap.items() if _digits(pt)}
    fmtp = {int(pt): v for pt, v in m.fmtp.items() if _digits(pt)}
    return AudioDescription(address, m.port, pts, rtpmap, fmtp, ptime,
                            _offered_direction(session, m), m.proto, m.crypto, session, index)


def offered_direction(data: bytes | str) -> str:
    """The audio direction a (re-)offer asks for, hold included (RFC 3264 §8.4,
    ``c=0.0.0.0`` as in RFC 2543); ``sendrecv`` when the body has no usable audio."""
    try:
        session = Session.parse(data, strict=False)
    except SdpError:
        return "sendrecv"
    index = _audio_index(session)
    return "sendrecv" if index is None else _offered_direction(session, session.media[index])


def _audio_index(session: Session) -> int | None:
    """The first audio stream in use; a refused one (port 0) when it is all there is."""
    audio = [i for i, m in enumerate(session.media) if m.kind == "audio"]
    return next((i for i in audio if session.media[i].port), audio[0] if audio else None)


def _offered_direction(session: Session, m: Media) -> str:
    direction = session.direction_of(m)
    if session.address_of(m) in NULL_ADDRESSES and direction == "sendrecv":
        return "sendonly"  # RFC 2543-style hold
    return direction


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts e.g. "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _ptime(value: str | None) -> int | None:
    """``a=ptime`` in ms (RFC 4566 §6; decimals allowed), bounded so a hostile value
    cannot size our buffers."""
    if value is None or not value.strip():
        return None
    try:
        ms = float(value)
    except ValueError:
        raise SdpError("ptime", f"a=ptime {value[:20]!r} is not a number") from None
    if not 1 <= ms <= MAX_PTIME:
        raise SdpError("ptime", f"a=ptime {value[:20]!r} out of range 1-{MAX_PTIME}")
    return int(ms)


def _ip(addr: str) -> str:
    return "IP6" if ":" in addr else "IP4"


def _attr_line(k: str, v: str | None) -> str:
    return f"a={k}" if v is None else f"a={k}:{v}"


def _audio_media(port, chosen, dtmf_pt, ptime, direction, *, proto="RTP/AVP",
                 crypto=None, cn=False) -> Media:
    """Our audio ``m=`` line; ``chosen`` is ``(pt, NAME, rate, fmtp)`` in our order."""
    formats = [str(pt) for pt, _, _, _ in chosen]
    attrs_ = []
    for pt, name, rate, fmtp in chosen:
        attrs_.append(("rtpmap", f"{pt} {name}/{rate}"))
        if fmtp:
            attrs_.append(("fmtp", f"{pt} {fmtp}"))
    if cn:
        formats.append(str(CN_PAYLOAD_TYPE))
        attrs_.append(("rtpmap", f"{CN_PAYLOAD_TYPE} CN/8000"))
    if dtmf_pt is not None:
        formats.append(str(dtmf_pt))
        attrs_ += [("rtpmap", f"{dtmf_pt} telephone-event/8000"), ("fmtp", f"{dtmf_pt} 0-16")]
    attrs_.append(("ptime", str(ptime)))
    if crypto:
        attrs_.append(("crypto", crypto))
    attrs_.append((direction, None))
    return Media("audio", port, proto, tuple(formats), None, tuple(attrs_))


def _refused(m: Media) -> Media:
    """An answer line refusing an offered stream: port 0, one format (RFC 3264 §6)."""
    return Media(m.kind, 0, m.proto, m.formats[:1])


def _ours(address, media, session_id, version) -> Session:
    return Session(("goip-tw", str(session_id), version, address), address, tuple(media),
                   "goip-tw")


_DEFAULT_PT = {name: pt for pt, (name, _) in STATIC.items()}
#: What we say about G.729 Annex B when the caller gives codec names only.
_NAME_FMTP = {"G729": "annexb=no"}


def make_offer(address: str, port: int, codecs, ptime: int = 20, dtmf_pt: int | None = 101,
               direction: str = "sendrecv", session_id: str = "1", version: int = 1,
               crypto: str | None = None) -> Session:
    """Our offer: one audio stream, codecs in configured order (F-440);
    ``crypto`` (an RFC 4568 attribute value) makes it ``RTP/SAVP``."""
    chosen = []
    next_dynamic = 96
    for name in codecs:
        name = name.upper()
        pt = _DEFAULT_PT.get(name)
        if pt is None:
            pt, next_dynamic = next_dynamic, next_dynamic + 1
        chosen.append((str(pt), name, 8000, _NAME_FMTP.get(name, "")))
    ptime = max([ptime] + [MIN_PTIME.get(n, 10) for _, n, _, _ in chosen])
    media = _audio_media(port, chosen, dtmf_pt, ptime, direction,
                         proto="RTP/SAVP" if crypto else "RTP/AVP", crypto=crypto)
    return _ours(address, [media], session_id, version)


def answer_direction(offered: str, local: str = "sendrecv") -> str:
    """RFC 3264 §6.1: the answer's direction given the offer's and what we want."""
    send = offered in ("sendrecv", "recvonly") and local in ("sendrecv", "sendonly")
    recv = offered in ("sendrecv", "sendonly") and local in ("sendrecv", "recvonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, recv)]


def make_answer(offer: Session, address: str, port: int, codecs, ptime: int = 20,
                dtmf: bool = True, local_direction: str = "sendrecv",
                multiple: bool = False, session_id: str = "1", version: int = 1,
                crypto: str | None = None) -> Session:
    """RFC 3264 §6: one answer stream per offered stream; audio negotiated.

    An ``RTP/SAVP`` stream is only accepted with our ``crypto`` attribute (RFC 4568
    §7.1.2: no usable key means the stream is refused)."""
    ours = [c.upper() for c in codecs]
    answered = []
    used = False
    for m in offer.media:
        if used or m.kind != "audio" or m.port == 0 or m.proto not in RTP_PROFILES or (
                m.proto == "RTP/SAVP" and not crypto):
            answered.append(_refused(m))
            continue
        offered = m.codecs()
        chosen = []
        for name in ours:
            for pt, oname, rate in offered:
                if oname == name and rate == 8000 and (pt, oname, rate) not in [
                        c[:3] for c in chosen]:
                    chosen.append((pt, oname, rate, _NAME_FMTP.get(oname, "")))
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
        want = max(ptime, *(MIN_PTIME.get(n, 10) for _, n, _, _ in chosen))
        if m.ptime and m.ptime > want:
            want = m.ptime
        direction = answer_direction(offer.direction_of(m), local_direction)
        answered.append(_audio_media(port, chosen, dtmf_pt, want, direction, proto=m.proto,
                                     crypto=crypto if m.proto == "RTP/SAVP" else None))
        used = True
    if not used:
        raise NoCommonCodec("m", "no usable audio stream offered")
    return _ours(address, answered, session_id, version)


def build_audio(address: str, port: int, codec_list, *, dtmf_pt: int | None = 101,
                ptime: int = 20, direction: str = "sendrecv", crypto: str | None = None,
                session_id: int = 1, version: int = 1, cn: bool = False,
                answer_to: AudioDescription | None = None) -> bytes:
    """Our one audio stream from codec objects, in their order: an offer, or with
    ``answer_to`` an answer with every other offered stream refused (RFC 3264 §6)."""
    chosen = [(c.payload_type, c.name, c.clock_rate, c.fmtp) for c in codec_list]
    ours = _audio_media(port, chosen, dtmf_pt, ptime, direction,
                        proto="RTP/SAVP" if crypto else "RTP/AVP", crypto=crypto, cn=cn)
    media = [ours]
    if answer_to is not None and answer_to.session is not None:
        media = [ours if i == answer_to.index else _refused(m)
                 for i, m in enumerate(answer_to.session.media)]
    return _ours(address, media, session_id, version).to_bytes()


def negotiate(offer: AudioDescription, our_codecs) -> list:
    """Codecs we share with the offer, in the offerer's order (RFC 3264 §6.1), each
    renumbered to the payload type the offer uses for it (a dynamic one included)."""
    ours = {c.name: c for c in our_codecs}
    out = []
    for pt in offer.payload_types:
        c = ours.get(offer.codec_name(pt))
        if c is not None:
            out.append(c if pt == c.payload_type else attrs.evolve(c, payload_type=pt))
    return out


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
