"""Who may place a mobile call or send an SMS through the gateway (F-425, F-414).

Toll fraud is the classic failure of GoIP-style gateways: an open UDP 5060 lets a
stranger dial premium numbers through the SIM cards.  ``Admission.check`` runs
before any INVITE or MESSAGE reaches the call or SMS layer and answers one of:
accept, challenge (401 with a digest challenge), or reject (403).

Modes (manual §4.4 "outgoing call authentication", plus one of ours):

``none``                 accept everything (logged as a warning at start);
``address``              only from the configured servers: registrar, proxy,
                         backup, outbound proxy, trunk gateways 1-3 (``X`` ranges);
``password``             every request proves the account password (401 challenge);
``both``                 a configured address *and* the password;
``address_or_password``  (default) configured addresses, or anyone proving the
                         password.  A fresh install has no servers and no password,
                         so it accepts nothing from anyone: secure by default.

An empty password never authenticates.  Digest verification and lockout are
delegated to a ``verifier`` (``goip_tw.sip.auth`` server side), whose answer must
not depend on whether the user exists.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Protocol

import attrs
from twisted.logger import Logger

from goip_tw.sip.message import Request

log = Logger(namespace="goip.sip.admission")

MODES = ("none", "address", "password", "both", "address_or_password")


# --- address lists --------------------------------------------------------------


@attrs.frozen
class _Pattern:
    """One list item: IPv4 with ``X`` octets, an IP network, or a host name,
    optionally with a port (then only that source port matches)."""

    octets: tuple[str, ...] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    name: str | None = None
    port: int | None = None

    def matches(self, host: str, port: int | None = None) -> bool:
        if self.port is not None and port is not None and port != self.port:
            return False
        if self.octets is not None:
            parts = host.split(".")
            return len(parts) == 4 and all(
                p == "X" or p == q for p, q in zip(self.octets, parts))
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        return self.name == host.lower()


def _split_port(item: str) -> tuple[str, int | None]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, int(rest[1:]) if rest[1:].isdigit() else None
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, int(port) if port.isdigit() else None
    return item, None


def _pattern(item: str) -> _Pattern:
    host, port = _split_port(item.strip())
    parts = host.split(".")
    if len(parts) == 4 and any(p in ("X", "x") for p in parts):
        octets = tuple("X" if p in ("X", "x") else str(int(p)) for p in parts)
        return _Pattern(octets=octets, port=port)
    try:
        return _Pattern(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        return _Pattern(name=host.lower(), port=port)


@attrs.frozen
class AddressSet:
    """Addresses calls are accepted from (F-414: ``192.168.1.X``, X = 0-255).

    An item without a port matches any source port; ``host:port`` (ours) matches
    only that port, so a registrar configured as ``10.0.0.1:5070`` is trusted
    only as that socket.  Host names match literally; the service adds their
    resolved addresses with ``with_hosts``.
    """

    patterns: tuple[_Pattern, ...] = ()

    @classmethod
    def parse(cls, *lists: str) -> "AddressSet":
        items = [i for text in lists for i in text.split(",") if i.strip()]
        return cls(tuple(_pattern(i) for i in items))

    def with_hosts(self, hosts: Iterable[str]) -> "AddressSet":
        return AddressSet(self.patterns + tuple(_pattern(h) for h in hosts if h))

    def contains(self, host: str, port: int | None = None) -> bool:
        return any(p.matches(host, port) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)


# --- decisions ------------------------------------------------------------------


@attrs.frozen
class Verdict:
    """What to do with a request: ``accept``, ``challenge`` or ``reject`` (code 403).

    ``identity`` names who was admitted (``address:<ip>`` or ``user:<auth id>``)
    for logs and CDRs; ``reason`` is for logs only, never sent on the wire.
    """

    action: str
    identity: str = ""
    reason: str = ""
    code: int = 0

    @property
    def accepted(self) -> bool:
        return self.action == "accept"


class CredentialVerifier(Protocol):
    """Server-side digest check (implemented over ``goip_tw.sip.auth``).

    ``verify`` returns ``("ok", user)``, ``("missing", None)`` when the request
    carries no credentials for our realm, ``("bad", None)`` for a wrong or stale
    answer, or ``("locked", None)`` while the source is locked out.
    """

    def verify(self, request: Request, source: tuple[str, int]) -> tuple[str, str | None]:
        ...


class Admission:
    """The F-425 gate for INVITE and MESSAGE."""

    def __init__(self, mode: str, trusted: AddressSet,
                 verifier: CredentialVerifier | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown admission mode {mode!r}")
        self.mode = mode
        self.trusted = trusted
        self.verifier = verifier
        if mode == "none":
            log.warn("outgoing call authentication is off (F-425 'none'): "
                     "anyone who reaches the SIP port can use the lines")

    def check(self, request: Request, source: tuple[str, int]) -> Verdict:
        host = source[0]
        known = self.trusted.contains(host, source[1])
        if self.mode == "none":
            return Verdict("accept", identity=f"address:{host}", reason="auth off")
        if self.mode == "address":
            return (Verdict("accept", identity=f"address:{host}", reason="trusted address")
                    if known else self._reject(request, source, "address not trusted"))
        if self.mode == "both" and not known:
            return self._reject(request, source, "address not trusted")
        if self.mode == "address_or_password" and known:
            return Verdict("accept", identity=f"address:{host}", reason="trusted address")
        return self._password(request, source)

    def _password(self, request: Request, source: tuple[str, int]) -> Verdict:
        if self.verifier is None:
            return self._reject(request, source, "no password configured")
        outcome, user = self.verifier.verify(request, source)
        if outcome == "ok":
            return Verdict("accept", identity=f"user:{user}", reason="password")
        if outcome == "locked":
            return self._reject(request, source, "source locked out")
        if outcome == "bad":
            # a wrong answer gets a fresh challenge, exactly like a first attempt
            return Verdict("challenge", reason="wrong credentials", code=401)
        return Verdict("challenge", reason="credentials needed", code=401)

    def _reject(self, request: Request, source: tuple[str, int], why: str) -> Verdict:
        """403, logged in the fail2ban format of ``goip_tw.sip.auth`` (FAIL2BAN_REGEX)
        so that toll-fraud scanners knocking from unknown addresses get banned too."""
        try:
            user = request.from_.uri.user or ""
        except ValueError:
            user = ""
        safe_user = "".join(c if c.isalnum() or c in "_.@+-" else "?" for c in user)[:64]
        log.warn("auth failure: service=sip user={user} source={host} port={port} "
                 "method={method} reason={reason}", user=safe_user or "-", host=source[0],
                 port=source[1], method=request.method, reason=why.replace(" ", "_"))
        return Verdict("reject", reason=why, code=403)


# --- digest glue -----------------------------------------------------------------------


class DigestAuth:
    """The SIP service's one digest object: ``goip_tw.sip.auth`` client and server.

    One ``DigestServer`` serves admission (401), the proxy's REGISTER (401) and
    proxy clients' calls (407), so a source's failures add up across all of
    them and one lockout covers every path.

    Challenges offer MD5 only unless SHA-256 is asked for (``voip.digest_sha256``),
    and then MD5 still comes first: deployed clients read only the first
    WWW-Authenticate header (sipsak) or reject the whole set when one algorithm
    is unknown (baresip 1.0 answers nothing at all).
    """

    def __init__(self, clock, realm: str = "goip-tw", algorithms=("MD5",)):
        from goip_tw.sip.auth import DigestClient, DigestServer

        self.client = DigestClient()
        self.server = DigestServer(clock, realm=realm, algorithms=algorithms)

    def authorize(self, request, challenge, user: str, password: str):
        """Answer ``challenge`` to ``request`` (as sent); None when we must not."""
        return self.client.authorize(request, challenge, user, password)

    def challenge(self, request, proxy: bool, source):
        return self.server.challenge(request, proxy=proxy, source=source)

    def verifier(self, lookup, proxy: bool = False):
        return self.server.verifier(lookup, proxy=proxy)
