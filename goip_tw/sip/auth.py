"""SIP digest authentication, client and server (RFC 3261 §22, RFC 7616, RFC 8760).

Client (``DigestClient``):

- ``authorize(request, challenge, user, password, sent_to=None, server=None)``
  returns a copy of ``request`` with ``Authorization`` (401) or
  ``Proxy-Authorization`` (407), or ``None`` when the challenge must not be
  answered: it is not a response to *this* request (Call-ID, CSeq and our top
  Via branch must match), the request went somewhere other than ``server``
  (``sent_to`` vs ``server`` hosts), or no offered algorithm is supported.
  MD5 and SHA-256 (RFC 8760) with ``qop=auth``; the first algorithm the server
  lists that we support wins.  ``nc`` counts per nonce, so a re-used nonce is
  answered with an increasing count; a ``stale=true`` challenge is a fresh nonce,
  not a password failure (``is_stale``).

Server (``DigestServer``):

- Stateless nonces: ``<hex time>.<HMAC-SHA256(secret, time|source ip)>``, so no
  table grows with strangers' requests; a nonce is valid for ``nonce_ttl`` and
  only from the address it was issued to; an expired one with a good MAC is
  *stale* (the next challenge says ``stale=true``).
- ``challenge(request, proxy=False, source=None) -> Response`` (401/407 with one
  header per algorithm, in ``algorithms`` order; MD5 only by default because
  deployed clients read only the first challenge (sipsak 0.9.8) or give up on
  the whole set when one algorithm is unknown (baresip 1.0); pass
  ``("MD5", "SHA-256")`` to offer RFC 8760 as well (``voip.digest_sha256``)).  Replies for unknown users and for wrong
  passwords are byte-for-byte the same shape: the verdict never depends on
  whether the user exists, and the digest is compared (``hmac.compare_digest``)
  against a dummy secret when it does not.
- ``verify(request, source, lookup) -> (outcome, user)`` with outcomes
  ``ok``/``missing``/``bad``/``stale``/``locked``; ``lookup(user) -> password |
  None``.  Failures count per source *address* (not per Call-ID, From or user),
  ``max_failures`` within ``window`` seconds lock the address for ``lockout``
  seconds.  Every failure is logged in one fail2ban-matchable line, see
  ``FAIL2BAN_REGEX``.
- ``verifier(lookup)`` adapts this to ``goip_tw.sip.admission.CredentialVerifier``.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import os
import re

from twisted.logger import Logger

from goip_tw.sip.message import Request, Response

log = Logger(namespace="goip.sip.auth")

#: ``failregex`` for fail2ban (``<HOST>`` is fail2ban's own placeholder).
FAIL2BAN_REGEX = r"auth failure: service=sip user=\S* source=<HOST> "

ALGORITHMS = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


_PARAM = re.compile(r'([A-Za-z0-9_-]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_UNESCAPE = re.compile(r"\\(.)")


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """``Digest realm="x", nonce=y`` -> ``("digest", {"realm": "x", ...})``."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    if "\\" not in rest:
        for part in rest.split(",", 64):
            k, eq, v = part.partition("=")
            v = v.strip()
            if v[:1] == '"':
                if len(v) < 2 or v[-1] != '"':
                    break  # a comma inside quotes: take the careful path
                v = v[1:-1]
            elif '"' in v:
                break
            k = k.strip().lower()
            if k:
                params[k] = v
        else:
            return scheme.lower(), params
        params = {}
    for k, v in _PARAM.findall(rest)[:64]:
        if v[:1] == '"':
            v = v[1:-1]
            if "\\" in v:
                v = _UNESCAPE.sub(r"\1", v)
        params[k.lower()] = v
    return scheme.lower(), params


def digest_response(algorithm: str, user: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, qop: str | None = None, nc: str = "",
                    cnonce: str = "", ha1: str | None = None) -> str:
    """RFC 7616 §3.4.1 (qop=auth) or RFC 2069 style when the server sent no qop."""
    ha1 = ha1 or _h(algorithm, f"{user}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_stale(response: Response) -> bool:
    for name in ("www-authenticate", "proxy-authenticate"):
        for value in response.headers.get_all(name):
            if parse_auth_header(value)[1].get("stale", "").lower() == "true":
                return True
    return False


class DigestClient:
    """Answers 401/407 challenges to requests we sent."""

    def __init__(self, rng=None):
        self._urandom = (lambda n: rng.randbytes(n)) if rng is not None else os.urandom
        self._nc: collections.OrderedDict[str, int] = collections.OrderedDict()

    def authorize(self, request: Request, challenge: Response, user: str, password: str,
                  sent_to=None, server: str | None = None) -> Request | None:
        if challenge.status not in (401, 407):
            return None
        if not _answers(challenge, request):
            log.warn("ignoring {status} challenge that does not answer our "
                     "{method}", status=challenge.status, method=request.method)
            return None
        if server is not None and sent_to is not None and (
                _host(server) != sent_to.host.lower()):
            log.warn("not answering a challenge from {dest}: our account is for "
                     "{server}", dest=str(sent_to), server=server)
            return None
        header = "www-authenticate" if challenge.status == 401 else "proxy-authenticate"
        chosen = None
        for value in challenge.headers.get_all(header):
            scheme, params = parse_auth_header(value)
            alg = params.get("algorithm", "MD5").upper()
            qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
            if scheme == "digest" and alg in ALGORITHMS and "nonce" in params and (
                    not qops or "auth" in qops):
                chosen = (params, alg, "auth" if qops else None)
                break
        if chosen is None:
            return None
        params, alg, qop = chosen
        nonce, realm = params["nonce"], params.get("realm", "")
        uri = str(request.uri)
        nc = self._next_nc(nonce)
        cnonce = self._urandom(8).hex()
        resp = digest_response(alg, user, realm, password, request.method, uri, nonce,
                               qop, f"{nc:08x}", cnonce)
        parts = [f"username={_quote(user)}", f"realm={_quote(realm)}",
                 f"nonce={_quote(nonce)}", f"uri={_quote(uri)}",
                 f"response={_quote(resp)}", f"algorithm={alg}"]
        if qop:
            parts += [f"qop={qop}", f"nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
        if "opaque" in params:
            parts.append(f"opaque={_quote(params['opaque'])}")
        out = request.copy()
        out.headers.remove("via")  # the transaction layer adds a new one
        name = "authorization" if challenge.status == 401 else "proxy-authorization"
        out.headers.remove(name)
        out.headers.add(name, "Digest " + ", ".join(parts))
        return out

    def _next_nc(self, nonce: str) -> int:
        n = self._nc.pop(nonce, 0) + 1
        self._nc[nonce] = n
        while len(self._nc) > 64:
            self._nc.popitem(last=False)
        return n


def _host(server: str) -> str:
    server = server.strip().lower()
    if server.startswith("sip:") or server.startswith("sips:"):
        server = server.split(":", 1)[1].split("@")[-1]
    if server.startswith("["):
        return server[1:].split("]")[0]
    return server.split(":")[0].split(";")[0]


def _answers(response: Response, request: Request) -> bool:
    try:
        if response.call_id != request.call_id:
            return False
        if request.headers.get("via") is None:
            # a fresh retry (new CSeq, §10.2.4/§22.2) of the same dialog-less request
            return response.cseq[1] == request.cseq[1]
        return (response.cseq == request.cseq
                and response.top_via.branch == request.top_via.branch)
    except Exception:
        return False


class DigestServer:
    """Challenges and checks digest credentials without per-request state."""

    def __init__(self, clock, realm: str = "goip-tw", secret: bytes | None = None,
                 nonce_ttl: float = 300.0, algorithms=("MD5",),
                 max_failures: int = 5, window: float = 300.0, lockout: float = 900.0,
                 max_sources: int = 10000):
        self.clock = clock
        self.realm = realm
        self._secret = secret or os.urandom(32)
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(a for a in algorithms if a in ALGORITHMS)
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_sources = max_sources
        self._failures: collections.OrderedDict[str, list] = collections.OrderedDict()
        self._locked: dict[str, float] = {}
        self._dummy = os.urandom(16).hex()
        self._macs: dict[tuple[str, str], str] = {}
        self._ha1: dict[tuple[str, str, str], str] = {}  # H(user:realm:password)

    # -- nonces ----------------------------------------------------------

    def make_nonce(self, source_host: str) -> str:
        ts = f"{int(self.clock.seconds()):x}"
        return f"{ts}.{self._mac(ts, source_host)}"

    def _mac(self, ts: str, host: str) -> str:
        key = (ts, host)
        mac = self._macs.get(key)
        if mac is None:
            mac = hmac.new(self._secret, f"{ts}|{host}".encode(),
                           hashlib.sha256).hexdigest()[:32]
            if len(self._macs) >= 1024:
                self._macs.clear()
            self._macs[key] = mac
        return mac

    def _nonce_state(self, nonce: str, source_host: str) -> str:
        ts, dot, mac = nonce.partition(".")
        if not dot or len(ts) > 12 or not hmac.compare_digest(
                mac.encode(), self._mac(ts, source_host).encode()):
            return "bad"
        try:
            issued = int(ts, 16)
        except ValueError:
            return "bad"
        age = self.clock.seconds() - issued
        if age < -5:
            return "bad"
        return "stale" if age > self.nonce_ttl else "ok"

    # -- replies ---------------------------------------------------------

    def challenge(self, request: Request, proxy: bool = False, source=None,
                  stale: bool | None = None) -> Response:
        """401 (or 407 for a proxy) with one challenge per algorithm."""
        host = _source_host(source)
        if stale is None:
            stale = any(self._nonce_state(p.get("nonce", ""), host) == "stale"
                        for p in self._credentials(request, proxy))
        status = 407 if proxy else 401
        resp = request.make_response(status, to_tag=self.make_nonce(host)[-10:])
        name = "proxy-authenticate" if proxy else "www-authenticate"
        nonce = self.make_nonce(host)
        for alg in self.algorithms:
            value = (f"Digest realm={_quote(self.realm)}, nonce={_quote(nonce)}, "
                     f"algorithm={alg}, qop=\"auth\"")
            if stale:
                value += ", stale=true"
            resp.headers.add(name, value)
        return resp

    # -- verification ----------------------------------------------------

    def _credentials(self, request: Request, proxy: bool) -> list[dict]:
        name = "proxy-authorization" if proxy else "authorization"
        out = []
        for value in request.headers.get_all(name)[:8]:
            scheme, params = parse_auth_header(value)
            if scheme == "digest" and params.get("realm") == self.realm:
                out.append(params)
        return out

    def is_locked(self, source) -> bool:
        host = _source_host(source)
        until = self._locked.get(host)
        if until is None:
            return False
        if self.clock.seconds() >= until:
            del self._locked[host]
            self._failures.pop(host, None)
            return False
        return True

    def verify(self, request: Request, source, lookup, proxy: bool = False):
        """-> ``(outcome, user)``; ``lookup(user)`` gives the password or None."""
        host = _source_host(source)
        if self.is_locked(source):
            self._log_failure(request, source, "", "locked out")
            return "locked", None
        creds = self._credentials(request, proxy)
        if not creds:
            return "missing", None
        params = creds[0]
        user = params.get("username", "")
        state = self._nonce_state(params.get("nonce", ""), host)
        if state == "stale":
            return "stale", None
        alg = params.get("algorithm", "MD5").upper()
        password = lookup(user) if user else None
        ok = state == "ok" and alg in self.algorithms and self._check(
            params, request, alg, user, password)
        if ok:
            self._failures.pop(host, None)
            return "ok", user
        self._failed(request, source, user)
        if self.is_locked(source):
            return "locked", None
        return "bad", None

    def _check(self, params, request, alg, user, password) -> bool:
        qop = params.get("qop")
        if qop not in (None, "auth"):
            return False
        uri = params.get("uri", "")
        exists = password is not None and password != ""
        secret = password if exists else self._dummy
        ha1_key = (alg, user, secret)
        ha1 = self._ha1.get(ha1_key)
        if ha1 is None:
            ha1 = _h(alg, f"{user}:{self.realm}:{secret}")
            if len(self._ha1) >= 1024:
                self._ha1.clear()
            self._ha1[ha1_key] = ha1
        expected = digest_response(
            alg, user, self.realm, secret, request.method, uri, params.get("nonce", ""),
            qop, params.get("nc", ""), params.get("cnonce", ""), ha1=ha1)
        same = hmac.compare_digest(expected.encode(), params.get("response", "").encode())
        return same and exists and uri == str(request.uri)

    def _failed(self, request, source, user) -> None:
        host = _source_host(source)
        now = self.clock.seconds()
        stamps = [t for t in self._failures.pop(host, []) if now - t < self.window]
        stamps.append(now)
        self._failures[host] = stamps
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
        self._log_failure(request, source, user, "bad credentials")
        if len(stamps) >= self.max_failures:
            self._locked[host] = now + self.lockout
            if len(self._locked) > self.max_sources:
                for h in [h for h, t in self._locked.items() if t <= now]:
                    del self._locked[h]
            log.warn("sip source {source} locked out for {seconds:.0f} s after "
                     "{count} auth failures", source=host, seconds=self.lockout,
                     count=len(stamps))

    def _log_failure(self, request, source, user, reason) -> None:
        host = _source_host(source)
        port = source[1] if isinstance(source, tuple) else getattr(source, "port", 0)
        safe_user = re.sub(r"[^A-Za-z0-9_.@+-]", "?", user)[:64] or "-"
        log.warn("auth failure: service=sip user={user} source={host} port={port} "
                 "method={method} reason={reason}", user=safe_user, host=host, port=port,
                 method=request.method, reason=reason)

    def verifier(self, lookup, proxy: bool = False) -> "DigestVerifier":
        return DigestVerifier(self, lookup, proxy)


class DigestVerifier:
    """``CredentialVerifier`` (goip_tw.sip.admission) over a ``DigestServer``."""

    def __init__(self, server: DigestServer, lookup, proxy: bool = False):
        self.server = server
        self.lookup = lookup
        self.proxy = proxy

    def verify(self, request: Request, source) -> tuple[str, str | None]:
        outcome, user = self.server.verify(request, source, self.lookup, self.proxy)
        return ("bad", None) if outcome == "stale" else (outcome, user)


def _source_host(source) -> str:
    if source is None:
        return ""
    if isinstance(source, tuple):
        return source[0]
    return source.host
