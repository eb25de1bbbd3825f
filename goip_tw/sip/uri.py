"""SIP URIs, name-addr and Via values (RFC 3261 §19.1, §20.10, §20.42; RFC 3581;
RFC 5118 IPv6 references), as frozen attrs values with ``parse(text)``/``str()``.

Also the C-speed syntax checks (compiled regexes) that ``Message.validate()`` runs
before falling back to these parsers to name a problem.  ``goip_tw.sip.message``
re-exports everything public here.
"""

from __future__ import annotations

import re
import socket

import attrs

_TOKEN_FULL = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+").fullmatch


class SipParseError(ValueError):
    """The message cannot be understood; ``field`` names the part that failed."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _isnum(text: str) -> bool:
    """ASCII digits only, short enough for ``int()`` to be cheap and safe."""
    return text.isdigit() and text.isascii() and len(text) < 12


def _is_token(text: str) -> bool:
    return _TOKEN_FULL(text) is not None


def split_commas(value: str) -> list[str]:
    """Split a list header on commas outside quotes and angle brackets."""
    if "," not in value:
        return [value.strip()]
    out, depth, quoted, start, i, n = [], 0, False, 0, 0, len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def _split_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``;a=b;c`` -> ``(("a", "b"), ("c", None))``; names lower-cased."""
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        out.append((name, val.strip() if eq else None))
    return tuple(out)


def _join_params(params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params, name: str, default=None):
    for k, v in params:
        if k == name:
            return v
    return default


def _with_param(params, name: str, value):
    rest = tuple((k, v) for k, v in params if k != name)
    return rest + ((name, value),)


# --------------------------------------------------------------------- values


@attrs.frozen
class SipURI:
    """``sip:``/``sips:`` URI (RFC 3261 §19.1), IPv6 references per RFC 5118.

    ``tel:`` and other schemes are kept opaque in ``host`` with ``scheme`` set.
    """

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: tuple = ()
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SipURI":
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not scheme or not _is_token(scheme):
            raise SipParseError("uri", f"no scheme in {text[:80]!r}")
        if scheme not in ("sip", "sips"):
            if not rest:
                raise SipParseError("uri", f"empty {scheme} URI")
            return cls(host=rest, scheme=scheme)
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            user, pc, pw = userinfo.partition(":")
            password = pw if pc else None
            if not user:
                raise SipParseError("uri", "empty user part")
        rest, q, hdrs = rest.partition("?")
        hostport, _, params = rest.partition(";")
        host, port = _parse_hostport(hostport, "uri")
        return cls(host=host.lower(), user=user, port=port, scheme=scheme,
                   password=password, params=_split_params(params),
                   headers=hdrs if q else None)

    def param(self, name: str, default=None):
        return _param(self.params, name, default)

    def with_param(self, name: str, value=None) -> "SipURI":
        return attrs.evolve(self, params=_with_param(self.params, name, value))

    @property
    def transport(self) -> str:
        t = self.param("transport")
        if t:
            return t.lower()
        return "tls" if self.scheme == "sips" else "udp"

    def __str__(self) -> str:
        if self.scheme not in ("sip", "sips"):
            return f"{self.scheme}:{self.host}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_join_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


def _parse_hostport(hostport: str, field: str) -> tuple[str, int | None]:
    """host[:port] with bracketed IPv6 references (RFC 5118 §4.1-4.3)."""
    port = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(field, f"unterminated IPv6 reference {hostport!r}")
        host = hostport[:end + 1]
        tail = hostport[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise SipParseError(field, f"junk after IPv6 reference {tail!r}")
            port = _parse_port(tail[1:], field)
        try:
            socket.inet_pton(socket.AF_INET6, host[1:-1])
        except OSError:
            raise SipParseError(field, f"bad IPv6 reference {host!r}") from None
        return host, port
    host, pc, p = hostport.partition(":")
    if pc:
        port = _parse_port(p, field)
    if not host or any(c in host for c in " \t<>\"[]:,;?@"):
        raise SipParseError(field, f"bad host {hostport[:60]!r}")
    return host, port


def _closing_quote(text: str) -> int:
    i = 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


_VIA = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+"
                  r"([^;\s]+(?:\s*:\s*\d+)?)\s*((?:;.*)?)$", re.S | re.I)


def _parse_port(text: str, field: str) -> int:
    if not _isnum(text) or not 0 < int(text) < 65536:
        raise SipParseError(field, f"bad port {text[:20]!r}")
    return int(text)


@attrs.frozen
class NameAddr:
    """``"Display" <uri>;tag=x`` (RFC 3261 §20.10, §25.1 name-addr / addr-spec).

    In the addr-spec form (no angle brackets) parameters after the URI belong to
    the header, not to the URI (§20.10).
    """

    uri: SipURI
    display: str | None = None
    params: tuple = ()

    @classmethod
    def parse(cls, text: str, field: str = "name-addr") -> "NameAddr":
        text = text.strip()
        display = None
        if text.startswith('"'):
            end = _closing_quote(text)
            if end < 0:
                raise SipParseError(field, "unterminated quoted display name")
            display = re.sub(r"\\(.)", r"\1", text[1:end])
            text = text[end + 1:].lstrip()
            if not text.startswith("<"):
                raise SipParseError(field, "display name without <uri>")
        lt = text.find("<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError(field, "missing '>'")
            if lt:
                words = text[:lt].split()
                if not all(_is_token(w) for w in words):
                    raise SipParseError(field, f"unquoted display name {text[:lt]!r} "
                                        "is not a token list")
                display = " ".join(words)
            uri_text, rest = text[lt + 1:gt], text[gt + 1:]
        else:
            uri_text, _, rest = text.partition(";")
            uri_text = uri_text.strip()
            rest = ";" + rest if rest else ""
            if any(c in uri_text for c in " \t,?"):
                raise SipParseError(field, "addr-spec with space, comma or '?' "
                                    "needs <...> (§20.10)")
        try:
            uri = SipURI.parse(uri_text)
        except SipParseError as e:
            raise SipParseError(field, e.detail) from None
        return cls(uri=uri, display=display, params=_split_params(rest))

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def param(self, name: str, default=None):
        return _param(self.params, name, default)

    def with_param(self, name: str, value=None) -> "NameAddr":
        return attrs.evolve(self, params=_with_param(self.params, name, value))

    def with_tag(self, tag: str) -> "NameAddr":
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        disp = ""
        if self.display:
            d = self.display.replace("\\", "\\\\").replace('"', '\\"')
            disp = f'"{d}" '
        return f"{disp}<{self.uri}>{_join_params(self.params)}"


@attrs.frozen
class Via:
    """One Via value (RFC 3261 §20.42) with ``received``/``rport`` (RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: tuple = ()

    @classmethod
    def parse(cls, text: str) -> "Via":
        m = _VIA.match(text)
        if m is None:
            raise SipParseError("via", f"bad Via {text.strip()[:60]!r}")
        transport, sent_by, params = m.groups()
        host, port = _parse_hostport("".join(sent_by.split()), "via")
        params = _split_params(params or "")
        if any(not k or not _is_token(k) for k, _ in params):
            raise SipParseError("via", f"bad Via parameter in {text.strip()[:60]!r}")
        return cls(transport=transport.upper(), host=host.lower(), port=port,
                   params=params)

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _param(self.params, "received")

    @property
    def rport(self) -> int | None:
        v = _param(self.params, "rport")
        return int(v) if v and _isnum(v) else None

    @property
    def wants_rport(self) -> bool:
        return any(k == "rport" for k, _ in self.params)

    def param(self, name: str, default=None):
        return _param(self.params, name, default)

    def with_param(self, name: str, value=None) -> "Via":
        if any(k == name for k, _ in self.params):
            params = tuple((k, value if k == name else v) for k, v in self.params)
        else:
            params = self.params + ((name, value),)
        return attrs.evolve(self, params=params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{_join_params(self.params)}"


_TOKEN_RE = r"[A-Za-z0-9.!%*_+`'~-]+"
_QUOTED_RE = r'"(?:[^"\\]|\\.)*"'
_HOST_RE = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.-]*)"
_LWS_RE = r"[ \t]*"
_PVAL_RE = r'(?:[^\s;,"<>=]+|' + _QUOTED_RE + ")"
_PARAMS_RE = rf"(?:{_LWS_RE};{_LWS_RE}{_TOKEN_RE}(?:{_LWS_RE}={_LWS_RE}{_PVAL_RE})?)*"
_SCHEME_OTHER_RE = r"(?!(?i:sips?):)[A-Za-z][A-Za-z0-9+.-]*:"
_URI_RE = (rf"(?:(?i:sips?):(?:[^@\s<>\"]+@)?{_HOST_RE}(?::[0-9]{{1,5}})?"
           rf"(?:;[^\s<>\"?;]*)*(?:\?[^\s<>\"]*)?|{_SCHEME_OTHER_RE}[^\s<>\"]+)")
_ADDRSPEC_RE = (rf"(?:(?i:sips?):(?:[^@\s<>\";?,]+@)?{_HOST_RE}(?::[0-9]{{1,5}})?"
                rf"|{_SCHEME_OTHER_RE}[^\s<>\";,?]+)")
#: Syntax checks at C speed for ``validate()``; anything they reject (or that
#: holds an IPv6 reference) goes through the object parsers, which name the field.
_VIA_CHECK = re.compile(
    rf"SIP{_LWS_RE}/{_LWS_RE}2\.0{_LWS_RE}/{_LWS_RE}{_TOKEN_RE}[ \t]+{_HOST_RE}"
    rf"(?:{_LWS_RE}:{_LWS_RE}[0-9]{{1,5}})?{_PARAMS_RE}{_LWS_RE}")
_NAMEADDR_CHECK = re.compile(
    rf"(?:(?:{_QUOTED_RE}{_LWS_RE}|(?:{_TOKEN_RE}[ \t]+)*(?:{_TOKEN_RE})?{_LWS_RE})"
    rf"<{_URI_RE}>|{_ADDRSPEC_RE}){_PARAMS_RE}{_LWS_RE}")
_RURI_CHECK = re.compile(_URI_RE)

#: Headers that must not repeat (RFC 4475 §3.3.9, §3.3.10).
