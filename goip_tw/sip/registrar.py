"""Embedded registrar/proxy for softphones (F-415, RFC 3261 §10.3).

Manual §4.4 "Proxy mode": a simple SIP proxy inside the gateway; clients register
with one shared password; they can then call through the lines (and receive
calls forwarded to their extension, F-463); clients are never connected to each
other.

``Registrar.handle_register(txn)`` answers REGISTER (digest 401 challenge, then
200 with the bindings, or 423/400/403).  Bindings live in memory with an upper
bound on users and contacts per user, expire on the injected clock, and are
found by ``lookup(user)`` (forwarding to an extension) and ``is_client(host,
port)`` (to know an INVITE comes from a registered softphone, which must then
pass a 407 challenge with the same password).

The digest check is delegated to a verifier with the admission contract
(``verify(request, source) -> (outcome, user)``) and challenges are built by
``challenge(request, proxy: bool, source) -> Response``; both come from
``goip_tw.sip.auth`` so replies never reveal whether a user exists.
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from goip_tw.sip.message import NameAddr, Request, SipParseError, SipURI

log = Logger(namespace="goip.sip.registrar")

MAX_USERS = 512
MAX_CONTACTS = 4
MIN_EXPIRES = 30


@attrs.frozen
class Binding:
    """One registered contact of a softphone."""

    user: str
    contact: SipURI
    source: object            # transport.Address the REGISTER came from
    expires_at: float
    call_id: str
    cseq: int


class Registrar:
    def __init__(self, clock, verifier, challenge, *, max_expires: int = 3600,
                 max_users: int = MAX_USERS, new_tag=None):
        self.clock = clock
        self.verifier = verifier
        self.challenge = challenge
        self.max_expires = max_expires
        self.max_users = max_users
        self._new_tag = new_tag or (lambda: "r" + format(id(self) & 0xFFFFFF, "x"))
        self._bindings: dict[str, list[Binding]] = {}

    # -- REGISTER ----------------------------------------------------------

    def handle_register(self, txn) -> None:
        request: Request = txn.request
        source = txn.source
        outcome, user = self.verifier.verify(request, (source.host, source.port))
        if outcome in ("missing", "bad"):
            txn.respond(self.challenge(request, False, (source.host, source.port)))
            return
        if outcome != "ok":
            txn.respond(request.make_response(403, to_tag=self._new_tag()))
            return
        try:
            aor_user = request.to.uri.user or ""
        except SipParseError:
            txn.respond(request.make_response(400, "Bad To", to_tag=self._new_tag()))
            return
        if aor_user != user:
            # one may only register one's own name (RFC 3261 §10.3 step 6)
            log.info("proxy REGISTER for {aor} by {user} refused", aor=aor_user, user=user)
            txn.respond(request.make_response(403, to_tag=self._new_tag()))
            return
        try:
            status = self._update(aor_user, request, source)
        except (SipParseError, ValueError) as e:
            log.info("proxy REGISTER from {host}: bad Contact/Expires: {error}",
                     host=source.host, error=e)
            txn.respond(request.make_response(400, "Bad Contact", to_tag=self._new_tag()))
            return
        response = request.make_response(status, to_tag=self._new_tag())
        if status == 423:
            response.headers.add("Min-Expires", str(MIN_EXPIRES))
        elif status == 200:
            now = self.clock.seconds()
            for b in self.bindings(aor_user):
                response.headers.add(
                    "Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
        txn.respond(response)

    def _update(self, user: str, request: Request, source) -> int:
        self._expire()
        default = request.headers.get("expires")
        contacts = request.headers.get_all("contact")
        current = self._bindings.get(user, [])
        if not contacts:
            return 200                                   # a query (§10.3 step 8)
        if contacts == ["*"]:
            if (default or "").strip() != "0":
                return 400
            self._bindings.pop(user, None)
            log.info("proxy client {user} unregistered all contacts", user=user)
            return 200
        call_id = request.call_id
        cseq = request.cseq[0]
        updated = list(current)
        for value in contacts:
            contact = NameAddr.parse(value, "contact")
            raw = contact.param("expires", default)
            expires = int(raw) if raw is not None and str(raw).strip().isdigit() else 3600
            if 0 < expires < MIN_EXPIRES:
                return 423
            expires = min(expires, self.max_expires)
            updated = [b for b in updated if b.contact != contact.uri]
            if expires:
                updated.append(Binding(user, contact.uri, source,
                                       self.clock.seconds() + expires, call_id, cseq))
        if len(updated) > MAX_CONTACTS:
            updated = updated[-MAX_CONTACTS:]
        if updated:
            if user not in self._bindings and len(self._bindings) >= self.max_users:
                log.warn("proxy registrar full ({n} users); refusing {user}",
                         n=len(self._bindings), user=user)
                return 503
            self._bindings[user] = updated
            log.info("proxy client {user} registered from {host}:{port}", user=user,
                     host=source.host, port=source.port)
        else:
            self._bindings.pop(user, None)
            log.info("proxy client {user} unregistered", user=user)
        return 200

    # -- queries -----------------------------------------------------------

    def _expire(self) -> None:
        now = self.clock.seconds()
        for user in list(self._bindings):
            alive = [b for b in self._bindings[user] if b.expires_at > now]
            if alive:
                self._bindings[user] = alive
            else:
                del self._bindings[user]

    def bindings(self, user: str) -> list[Binding]:
        self._expire()
        return list(self._bindings.get(user, ()))

    def lookup(self, user: str) -> Binding | None:
        """The newest live contact of ``user`` (forwarding to an extension)."""
        found = self.bindings(user)
        return found[-1] if found else None

    def is_client(self, host: str, port: int | None = None) -> bool:
        """Whether a registered softphone sends from this address."""
        self._expire()
        for bindings in self._bindings.values():
            for b in bindings:
                if b.source.host == host and (port is None or b.source.port == port):
                    return True
        return False

    def is_user(self, user: str) -> bool:
        return bool(self.bindings(user))

    @property
    def users(self) -> list[str]:
        self._expire()
        return sorted(self._bindings)
