"""SIP messages: bytes on the wire, ``str`` inside (RFC 3261 §7, §20, §25).

Public API (stable; the upper SIP layer builds on it):

- ``parse_message(data: bytes) -> Request | Response`` raises ``SipParseError``
  (with ``.field`` naming the offending part) for anything a UAS must answer with
  400 or drop.  The start line and framing are checked at once; header lines are
  split lazily on first access, so a transaction layer that only needs Via, CSeq
  and Call-ID pays for little more than a ``bytes.split``.
- ``Request(method, uri, headers=None, body=b"")`` and
  ``Response(status, reason=None, headers=None, body=b"")``; both have
  ``.headers`` (a ``Headers`` multimap keyed by canonical lower-case name, compact
  forms expanded), ``.body`` (bytes), ``.to_bytes()`` (Content-Length always
  recomputed in *bytes*), and shortcuts ``call_id``, ``cseq`` -> ``(int, str)``,
  ``top_via`` -> ``Via``, ``from_``/``to`` -> ``NameAddr``.
- ``Request.make_response(status, reason=None, to_tag=None)`` copies the headers
  §8.2.6.2 demands (Via list, From, To, Call-ID, CSeq).
- ``msg.validate()`` checks what every UAS needs (mandatory and single-valued
  headers, Via/From/To/CSeq/Request-URI syntax, Content-Length) and returns the
  CSeq; the transaction layer calls it for every request.
- Value types (frozen attrs, defined in ``uri.py``, re-exported here):
  ``SipURI``, ``NameAddr``, ``Via``; each has ``parse(text)`` and ``str()``.

Limits guard memory: ``MAX_MESSAGE`` bytes and ``MAX_HEADERS`` header lines.
"""

from __future__ import annotations

from goip_tw.sip.uri import (_NAMEADDR_CHECK, _RURI_CHECK, _VIA_CHECK, NameAddr,  # noqa: F401
                             SipParseError, SipURI, Via, _is_token, _isnum, split_commas)

MAX_MESSAGE = 65535
MAX_HEADERS = 2048

#: RFC 3261 §7.3.3 compact forms plus the common extension ones (RFC 3265, 3515,
#: 3841, 4028, 4474).
COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
    "v": "via", "o": "event", "r": "refer-to", "u": "allow-events",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "x": "session-expires", "y": "identity", "n": "identity-info", "b": "referred-by",
}

_CANONICAL = {
    n.lower(): n for n in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route",
        "Record-Route", "Content-Type", "Content-Length", "Content-Encoding",
        "Expires", "Allow", "Supported", "Require", "Unsupported", "User-Agent",
        "Server", "Authorization", "Proxy-Authorization", "WWW-Authenticate",
        "Proxy-Authenticate", "Authentication-Info", "Event", "Subject", "Accept",
        "Allow-Events", "Min-Expires", "Retry-After", "Timestamp", "Date", "Warning",
        "Refer-To", "Referred-By", "Session-Expires", "Min-SE", "P-Asserted-Identity",
        "Remote-Party-ID", "Privacy", "Reason", "Organization", "Priority",
        "Proxy-Require", "In-Reply-To", "Reply-To", "MIME-Version", "Accept-Encoding",
        "Accept-Language", "Content-Language", "Content-Disposition", "Alert-Info",
        "Call-Info", "Error-Info", "Identity", "Identity-Info", "RSeq", "RAck",
    )
}

#: Headers whose values may be comma-joined lists (§7.3.1); everything else with
#: a comma (Date, auth headers, quoted display names) is one value.
LIST_HEADERS = frozenset({
    "via", "route", "record-route", "contact", "allow", "supported", "require",
    "unsupported", "proxy-require", "accept", "accept-encoding", "accept-language",
    "allow-events", "content-encoding", "content-language", "in-reply-to",
    "warning", "call-info", "alert-info", "error-info",
})

def canonical_name(key: str) -> str:
    """Wire spelling for a lower-case header name."""
    name = _CANONICAL.get(key)
    if name is None:
        name = "-".join(p[:1].upper() + p[1:] for p in key.split("-"))
    return name


# -------------------------------------------------------------------- headers


_KEYS: dict[str, str] = {}


class Headers:
    """Ordered header multimap keyed by canonical lower-case name.

    Built lazily from the raw header block: ``_raw`` holds the undecoded text
    until the first access.
    """

    __slots__ = ("_items", "_raw")

    def __init__(self, items=None):
        self._raw = None
        self._items = []
        if items:
            for name, value in (items.items() if isinstance(items, dict) else items):
                self.add(name, value)

    @classmethod
    def _lazy(cls, raw: str) -> "Headers":
        h = cls.__new__(cls)
        h._raw = raw
        h._items = None
        return h

    def _load(self) -> list:
        items = self._items
        if items is None:
            items = self._items = _parse_header_block(self._raw)
            self._raw = None
        return items

    @staticmethod
    def _key(name: str) -> str:
        key = _KEYS.get(name)
        if key is None:
            key = name.strip().lower()
            key = COMPACT.get(key, key)
            if len(_KEYS) < 4096:
                _KEYS[name] = key
        return key

    def get(self, name: str, default=None):
        """The first value of ``name`` (raw text, may be comma-joined)."""
        key = _KEYS.get(name) or self._key(name)
        items = self._items
        if items is None:
            items = self._load()
        for k, v in items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value, list headers split on top-level commas (§7.3.1)."""
        key = self._key(name)
        vals = [v for k, v in self._load() if k == key]
        if key in LIST_HEADERS:
            return [x for v in vals for x in split_commas(v)]
        return vals

    def __contains__(self, name: str) -> bool:
        key = self._key(name)
        return any(k == key for k, _ in self._load())

    def add(self, name: str, value, first: bool = False) -> None:
        items = self._load()
        entry = (self._key(name), str(value))
        if first:
            items.insert(0, entry)
        else:
            items.append(entry)

    def set(self, name: str, value) -> None:
        """Replace every ``name`` by one value, at the first one's position."""
        key = self._key(name)
        items = self._load()
        pos = next((i for i, (k, _) in enumerate(items) if k == key), len(items))
        items[:] = [e for e in items if e[0] != key]
        items.insert(min(pos, len(items)), (key, str(value)))

    def set_all(self, name: str, values) -> None:
        key = self._key(name)
        items = self._load()
        pos = next((i for i, (k, _) in enumerate(items) if k == key), len(items))
        items[:] = [e for e in items if e[0] != key]
        items[pos:pos] = [(key, str(v)) for v in values]

    def remove(self, name: str) -> None:
        key = self._key(name)
        self._load()[:] = [e for e in self._load() if e[0] != key]

    def items(self) -> list[tuple[str, str]]:
        return list(self._load())

    def copy(self) -> "Headers":
        if self._items is None:
            return Headers._lazy(self._raw)
        h = Headers()
        h._items = list(self._items)
        return h

    def __len__(self) -> int:
        return len(self._load())

    def __repr__(self) -> str:
        return f"Headers({self._load()!r})"


def _parse_header_block(raw: str) -> list:
    """Split header lines; a plain split/partition pass without line folding."""
    if "\r\n " in raw or "\r\n\t" in raw or raw.count("\n") != raw.count("\r\n"):
        return _parse_header_block_slow(raw)
    lines = raw.split("\r\n")
    if len(lines) > MAX_HEADERS:
        raise SipParseError("headers", f"more than {MAX_HEADERS} header lines")
    items = []
    append = items.append
    compact = COMPACT
    names = _NAMES
    for line in lines:
        n, c, v = line.partition(":")
        k = names.get(n)
        if k is None or not c:
            k = n.rstrip().lower()
            if not c or not k or " " in k or "\t" in k:
                return _parse_header_block_slow(raw)
            k = compact.get(k, k)
            if len(names) < 4096:
                names[n] = k
        append((k, v.strip()))
    return items


#: raw header name as seen on the wire -> canonical key (bounded cache)
_NAMES: dict[str, str] = {}


def _parse_header_block_slow(raw: str) -> list:
    items = []
    append = items.append
    compact = COMPACT
    lines = raw.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_HEADERS:
        raise SipParseError("headers", f"more than {MAX_HEADERS} header lines")
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            continue
        c0 = line[0]
        if c0 == " " or c0 == "\t":
            if not items:
                raise SipParseError("headers", "continuation line before any header")
            k, v = items[-1]
            items[-1] = (k, (v + " " + line.strip()).strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError("headers", f"line without colon {line[:40]!r}")
        key = name.rstrip(" \t").lower()
        if not key or " " in key or "\t" in key:
            raise SipParseError("headers", f"bad header name {name[:40]!r}")
        append((compact.get(key, key), value.strip()))
    return items


# ------------------------------------------------------------------- messages


class _Message:
    __slots__ = ("headers", "body")

    version = "SIP/2.0"

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is the body's length in bytes (§20.14)."""
        out = [self._start_line()]
        names = _CANONICAL
        for k, v in self.headers._load():
            if k != "content-length":
                out.append(f"{names.get(k) or canonical_name(k)}: {v}")
        body = self.body
        out.append(f"Content-Length: {len(body)}")
        out.append("\r\n")
        return "\r\n".join(out).encode("utf-8") + body

    # -- shortcuts --------------------------------------------------------

    def header(self, name: str, default=None):
        return self.headers.get(name, default)

    @property
    def call_id(self) -> str | None:
        return self.headers.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        raw = self.headers.get("cseq")
        if raw is None:
            raise SipParseError("cseq", "missing CSeq")
        return _parse_cseq(raw)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("via")]

    @property
    def top_via(self) -> Via:
        raw = self.headers.get("via")
        if raw is None:
            raise SipParseError("via", "missing Via")
        return Via.parse(split_commas(raw)[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._require("from"), "from")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._require("to"), "to")

    def _require(self, key: str) -> str:
        v = self.headers.get(key)
        if v is None:
            raise SipParseError(key, f"missing {canonical_name(key)}")
        return v

    def validate(self) -> tuple[int, str]:
        """Check what every UAS needs (§8.1.1, §20): raises ``SipParseError``.

        Returns the parsed CSeq.

        One pass over the headers; Via, From and To are checked by regexes and
        only parsed into objects when the regex balks (to name the problem).
        """
        first: dict[str, str] = {}
        vias = []
        single = _SINGLE
        for k, v in self.headers._load():
            if k == "via":
                vias.append(v)
            elif k in first:
                if k in single:
                    raise SipParseError(k, f"{canonical_name(k)} appears more than once")
            else:
                first[k] = v
        for key in ("from", "to", "call-id", "cseq"):
            if key not in first:
                raise SipParseError(key, f"missing {canonical_name(key)}")
        if not vias:
            raise SipParseError("via", "missing Via")
        if len(vias) > 1 or "," in vias[0]:
            vias = [x for v in vias for x in split_commas(v)] if any(
                "," in v for v in vias) else vias
            if len(vias) > MAX_HEADERS:
                raise SipParseError("via", f"more than {MAX_HEADERS} Via values")
        check = _VIA_CHECK.fullmatch
        for v in vias:
            if check(v) is None or "[" in v:
                Via.parse(v)  # names the problem, or accepts what the regex could not
        check = _NAMEADDR_CHECK.fullmatch
        for key in ("from", "to"):
            v = first[key]
            if check(v) is None or "[" in v:
                NameAddr.parse(v, key)
        cseq = _parse_cseq(first["cseq"])
        call_id = first["call-id"]
        if not call_id or " " in call_id or "\t" in call_id:
            raise SipParseError("call-id", f"bad Call-ID {call_id[:40]!r}")
        mf = first.get("max-forwards")
        if mf is not None and (not _isnum(mf) or len(mf) > 5 or int(mf) > 255):
            raise SipParseError("max-forwards", f"bad Max-Forwards {mf[:20]!r}")
        cl = first.get("content-length")
        if cl is not None and (not _isnum(cl) or len(cl) > 9 or int(cl) != len(
                self.body)):
            raise SipParseError("content-length", f"Content-Length {cl[:20]!r} "
                                f"does not match body of {len(self.body)} bytes")
        return cseq


def _parse_cseq(raw: str) -> tuple[int, str]:
    num, _, method = raw.partition(" ")
    method = method.strip()
    if not _isnum(num) or len(num) > 10 or int(num) >= 2 ** 31 or not _is_token(method):
        raise SipParseError("cseq", f"bad CSeq {raw[:40]!r}")
    return int(num), method


_SINGLE = frozenset({"from", "to", "call-id", "cseq", "max-forwards",
                     "content-length", "content-type", "expires"})


class Request(_Message):
    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri, headers=None, body: bytes = b""):
        self.method = method
        self.uri = uri if isinstance(uri, SipURI) else SipURI.parse(str(uri))
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def copy(self) -> "Request":
        return Request(self.method, self.uri, self.headers.copy(), self.body)

    def validate(self) -> tuple[int, str]:
        num, method = super().validate()
        text = str(self.uri)
        if _RURI_CHECK.fullmatch(text) is not None and "[" not in text:
            if "?" in text.rpartition("@")[2] and text[:3].lower() == "sip":
                raise SipParseError("request-uri", "headers are not allowed in a "
                                    "Request-URI (§19.1.5)")
            uri = None
        else:
            uri = self.uri.resolve() if isinstance(self.uri, _LazyURI) else self.uri
        if uri is not None and uri.headers is not None:
            raise SipParseError("request-uri", "headers are not allowed in a "
                                "Request-URI (§19.1.5)")
        if method != self.method:
            raise SipParseError("cseq", f"CSeq method {method} does not match "
                                f"request method {self.method}")
        return num, method

    def make_response(self, status: int, reason: str | None = None,
                      to_tag: str | None = None) -> "Response":
        """A response carrying the headers §8.2.6.2 requires."""
        h = Headers()
        src = self.headers
        for k, v in src._load():
            if k in ("via", "from", "call-id", "cseq") or (k == "to" and not to_tag):
                h._items.append((k, v))
            elif k == "to":
                to = v
                if ";tag=" not in v.replace(" ", "").lower():
                    to = f"{v};tag={to_tag}"
                h._items.append((k, to))
            elif k == "record-route" and 100 < status < 300:
                h._items.append((k, v))
        return Response(status, reason, h)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(_Message):
    __slots__ = ("status", "reason")

    def __init__(self, status: int, reason: str | None = None, headers=None,
                 body: bytes = b""):
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def copy(self) -> "Response":
        return Response(self.status, self.reason, self.headers.copy(), self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete message (a datagram or a framed stream message).

    Leading CRLFs (keep-alives, §7.5) are skipped.  For datagrams the body is
    everything after the blank line, cut to Content-Length when that is shorter
    (§18.3); a Content-Length longer than the body is an error.
    """
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message", f"{len(data)} bytes exceeds {MAX_MESSAGE}")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if data.endswith(b"\r\n") and data.count(b"\r\n") == 1:
            end = len(data) - 2
        else:
            raise SipParseError("message", "no blank line after headers")
    body = data[end + 4:]
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        head = data[:end].decode("latin-1")
    first, _, hdrs = head.partition("\r\n")
    headers = Headers._lazy(hdrs)
    if first[:8] == "SIP/2.0 ":
        code = first[8:11]
        if not _isnum(code) or len(first) > 11 and first[11] != " ":
            raise SipParseError("status-line", f"bad status line {first[:60]!r}")
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError("status-line", f"status {status} out of range")
        msg = Response.__new__(Response)
        msg.status = status
        msg.reason = first[12:]
    else:
        parts = first.split(" ")
        if len(parts) != 3:
            raise SipParseError("request-line", f"bad request line {first[:60]!r}")
        method, uri, version = parts
        if version != "SIP/2.0":
            if version.upper().startswith("SIP/"):
                raise SipParseError("version", f"unsupported version {version[:20]!r}")
            raise SipParseError("request-line", f"bad request line {first[:60]!r}")
        if not _is_token(method):
            raise SipParseError("method", f"bad method {method[:20]!r}")
        msg = Request.__new__(Request)
        msg.method = method
        msg.uri = _LazyURI(uri)
    msg.headers = headers
    msg.body = body
    if body:
        cl = _scan_content_length(hdrs, headers)
        if cl is not None:
            if not _isnum(cl) or len(cl) > 9:
                raise SipParseError("content-length", f"bad Content-Length {cl[:20]!r}")
            n = int(cl)
            if n > len(body):
                raise SipParseError("content-length", f"Content-Length {n} exceeds "
                                    f"body of {len(body)} bytes")
            msg.body = body[:n]
    return msg


def _scan_content_length(hdrs: str, headers: Headers) -> str | None:
    """Find Content-Length without splitting every header (the common case)."""
    low = hdrs.lower()
    i = low.find("\ncontent-length:")
    if i >= 0 and low.find("\ncontent-length", i + 1) < 0 and "\nl" not in low:
        end = low.find("\r", i + 16)
        return hdrs[i + 16:end if end >= 0 else None].strip()
    return headers.get("content-length")


class _LazyURI:
    """Request-URI parsed on first attribute access; ``str()`` is the raw text."""

    __slots__ = ("_text", "_uri")

    def __init__(self, text: str):
        self._text = text
        self._uri = None

    def resolve(self) -> SipURI:
        if self._uri is None:
            self._uri = SipURI.parse(self._text)
        return self._uri

    def __getattr__(self, name):
        return getattr(self.resolve(), name)

    def __str__(self) -> str:
        return self._text if self._uri is None else str(self._uri)

    def __eq__(self, other):
        return self.resolve() == (other.resolve() if isinstance(other, _LazyURI)
                                  else other)

    def __hash__(self):
        return hash(self.resolve())
