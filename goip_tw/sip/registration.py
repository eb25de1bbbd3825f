"""Registration client: the gateway's accounts at SIP servers (F-410..F-414, RFC 3261 §10).

One ``Registration`` keeps one account bound at its registrar: REGISTER with
digest auth, refresh before the granted expiry, retry after failures, fail over
to the backup server after ``failover_after`` consecutive failures and return to
the main server when a probe REGISTER succeeds there (manual §4.3 "backup server:
used only while the main server is unavailable"), and unregister (Expires: 0)
on ``stop()``.  ``enable()``/``disable()`` follow the line's mobile registration:
a line whose SIM is not registered has its VoIP registration off (F-304).

``registrations_for(voip, lines)`` turns the configured mode into the set of
registrations: one ``main`` (single server, F-410), one per line (``lineN``,
F-412, auto-configure applied), one per group (``group:<name>``, F-413), or at
most one ``trunk`` (F-414, only when the trunk expiry is > 0).

Network I/O is injected so the state machine runs on a ``Clock`` in tests:
``send(request, server) -> Deferred[Response]`` is one non-INVITE client
transaction to ``server`` (``"host:port"``), erring with a timeout on Timer F;
``authorize(request, challenge, username, password) -> Request | None`` adds
the digest answer to a 401/407 (``goip_tw.sip.auth`` client side).
"""

from __future__ import annotations

import os
from typing import Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.config.sections.voip import SipAccount, VoipConfig, line_accounts
from goip_tw.sip.message import NameAddr, Request, Response, SipURI

log = Logger(namespace="goip.sip.registration")

#: states, for the UI and tests
IDLE, REGISTERING, REGISTERED, FAILED, DISABLED, STOPPED = (
    "idle", "registering", "registered", "failed", "disabled", "stopped")

UNREGISTER_TIMEOUT = 5.0


def host_port(text: str, default_port: int = 5060) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` -> (host, port); the port defaults to 5060."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def refresh_delay(granted: int) -> float:
    """When to re-REGISTER: half-way for short expiries, 60 s early for long ones."""
    if granted <= 120:
        return max(granted / 2.0, 1.0)
    return float(granted - 60)


@attrs.frozen
class RegistrationState:
    """What the UI shows (F-304 VOIP Y/N) and the event bus carries."""

    key: str
    state: str
    server: str
    registered: bool
    expires: int = 0
    reason: str = ""


class Registration:
    """Keeps one account registered; see the module docstring."""

    def __init__(self, key: str, account: SipAccount, *, clock, send, authorize,
                 contact_host: str, contact_port: int, transport: str = "udp",
                 retry: float = 30.0, failover_after: int = 2, probe: float = 60.0,
                 user_agent: str = "goip-tw",
                 on_change: Callable[[RegistrationState], None] | None = None):
        self.key = key
        self.account = account
        self.clock = clock
        self._send = send
        self._authorize = authorize
        self.contact_host = contact_host
        self.contact_port = contact_port
        self.transport = transport
        self.retry = retry
        self.failover_after = failover_after
        self.probe_interval = probe
        self.user_agent = user_agent
        self.on_change = on_change or (lambda state: None)
        self.servers = [s for s in (account.registrar, account.backup_registrar) if s]
        self.current = 0                       # index into servers
        self.state = IDLE
        self.granted = 0
        self.failures = 0
        self.reason = ""
        self._timer = None
        self._probe_timer = None
        self._call_ids = {s: f"{os.urandom(8).hex()}@{contact_host}" for s in self.servers}
        self._cseq = {s: 0 for s in self.servers}
        self._tag = os.urandom(4).hex()
        self._enabled = True
        self._running = False
        self._inflight: defer.Deferred | None = None

    # -- public ----------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.state == REGISTERED

    @property
    def server(self) -> str:
        return self.servers[self.current] if self.servers else ""

    @property
    def user(self) -> str:
        return self.account.user

    def snapshot(self) -> RegistrationState:
        return RegistrationState(self.key, self.state, self.server, self.registered,
                                 self.granted, self.reason)

    def start(self) -> None:
        """Begin registering (at once, unless disabled)."""
        if not self.servers or not self.account.auth_id or self.account.expires == 0:
            self._set(DISABLED, "nothing to register")
            return
        self._running = True
        if self._enabled:
            self._attempt()
        else:
            self._set(DISABLED, "line not registered to the mobile network")

    def enable(self) -> None:
        """The line's SIM registered: turn VoIP registration on (F-304)."""
        if self._enabled:
            return
        self._enabled = True
        if self._running:
            self._attempt()

    def disable(self) -> defer.Deferred:
        """The line's SIM lost its network: unregister and stay off (F-304)."""
        if not self._enabled:
            return defer.succeed(None)
        self._enabled = False
        self._cancel_timers()
        was = self.registered
        self._set(DISABLED, "line not registered to the mobile network")
        return self._unregister(self.server) if (was and self._running) else defer.succeed(None)

    def stop(self) -> defer.Deferred:
        """Unregister (Expires: 0) and stop all timers; fires when done or timed out."""
        self._cancel_timers()
        was = self.registered
        self._running = False
        self._set(STOPPED, "shutdown")
        if was:
            return self._unregister(self.server)
        return defer.succeed(None)

    # -- internals -------------------------------------------------------

    def _set(self, state: str, reason: str = "") -> None:
        changed = (state, reason) != (self.state, self.reason)
        self.state, self.reason = state, reason
        if changed:
            log.info("sip registration {key} at {server}: {state} {reason}",
                     key=self.key, server=self.server, state=state, reason=reason)
            self.on_change(self.snapshot())

    def _cancel_timers(self) -> None:
        for name in ("_timer", "_probe_timer"):
            timer = getattr(self, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(self, name, None)

    def _schedule(self, delay: float, fn) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, fn)

    def _attempt(self) -> None:
        self._timer = None
        if not (self._running and self._enabled):
            return
        if self.state != REGISTERED:
            self._set(REGISTERING)
        server = self.server
        d = self._register(server, self.account.expires)
        d.addCallbacks(lambda granted: self._succeeded(server, granted),
                       lambda f: self._failed(server, f.getErrorMessage()))

    def _succeeded(self, server: str, granted: int) -> None:
        if not (self._running and self._enabled) or server != self.server:
            return
        self.failures = 0
        self.granted = granted
        self._set(REGISTERED, f"expires {granted}s")
        self._schedule(refresh_delay(granted), self._attempt)
        if self.current != 0 and self._probe_timer is None:
            self._probe_timer = self.clock.callLater(self.probe_interval, self._probe)

    def _failed(self, server: str, why: str) -> None:
        if not (self._running and self._enabled) or server != self.server:
            return
        self.failures += 1
        self.granted = 0
        self._set(FAILED, why)
        if len(self.servers) > 1 and self.failures >= self.failover_after:
            self.current = (self.current + 1) % len(self.servers)
            self.failures = 0
            log.warn("sip registration {key}: failing over to {server}", key=self.key,
                     server=self.server)
            if self.current == 0 and self._probe_timer is not None:
                self._probe_timer.cancel()
                self._probe_timer = None
            self._schedule(0, self._attempt)
        else:
            self._schedule(self.retry, self._attempt)

    def _probe(self) -> None:
        """While on the backup: try the main server; on success move back to it."""
        self._probe_timer = None
        if not (self._running and self._enabled) or self.current == 0:
            return
        main, backup = self.servers[0], self.server
        d = self._register(main, self.account.expires)

        def back(granted):
            if not (self._running and self._enabled) or self.current == 0:
                return
            log.info("sip registration {key}: main server {server} is back", key=self.key,
                     server=main)
            self.current = 0
            self.failures = 0
            self._unregister(backup)
            self._succeeded(main, granted)

        def still_down(f):
            if self._running and self._enabled and self.current != 0:
                self._probe_timer = self.clock.callLater(self.probe_interval, self._probe)

        d.addCallbacks(back, still_down)

    def _unregister(self, server: str) -> defer.Deferred:
        d = self._register(server, 0)
        timeout = self.clock.callLater(UNREGISTER_TIMEOUT, d.cancel)

        def done(result):
            if timeout.active():
                timeout.cancel()
            return None

        return d.addBoth(done)

    def _build(self, server: str, expires: int) -> Request:
        acct = self.account
        host, port = host_port(server)
        domain = acct.home_domain or host
        self._cseq[server] += 1
        aor = SipURI.parse(f"sip:{acct.user}@{domain}")
        req = Request("REGISTER", SipURI.parse(
            f"sip:{host}" + (f":{port}" if port != 5060 else "")
            + (f";transport={self.transport}" if self.transport != "udp" else "")))
        h = req.headers
        from_ = NameAddr(display=acct.display_name or None, uri=aor).with_tag(self._tag)
        h.add("From", str(from_))
        h.add("To", str(NameAddr(display=None, uri=aor)))
        h.add("Call-ID", self._call_ids[server])
        h.add("CSeq", f"{self._cseq[server]} REGISTER")
        h.add("Max-Forwards", "70")
        contact = f"<sip:{acct.user}@{self.contact_host}:{self.contact_port}"
        if self.transport != "udp":
            contact += f";transport={self.transport}"
        h.add("Contact", contact + ">")
        h.add("Expires", str(expires))
        if acct.outbound_proxy:
            ohost, oport = host_port(acct.outbound_proxy)
            h.add("Route", f"<sip:{ohost}:{oport};lr>")
        h.add("User-Agent", self.user_agent)
        return req

    @defer.inlineCallbacks
    def _register(self, server: str, expires: int):
        """One REGISTER (a few challenges/423s at most); fires with the granted expiry.

        The answer to a challenge is built from the request as sent (the digest
        client checks Call-ID, CSeq and branch), with the CSeq raised by one
        (§10.2.4).
        """
        target = self.account.outbound_proxy or server
        req = self._build(server, expires)
        answered = False
        for _ in range(5):      # 423, challenge, stale challenge, ... then give up
            response: Response = yield self._send(req, target)
            if response.status in (401, 407):
                if answered and not _is_stale(response):
                    raise RegistrationError(f"{response.status} credentials refused")
                retry = self._authorize(req, response, self.account.auth_id,
                                        self.account.password)
                if retry is None:
                    raise RegistrationError(f"{response.status} challenge not answerable")
                answered = True
                self._cseq[server] += 1
                retry.headers.set("CSeq", f"{self._cseq[server]} REGISTER")
                req = retry
                continue
            if response.status == 423 and expires:
                minimum = response.headers.get("min-expires") or ""
                if minimum.strip().isdigit() and int(minimum) > expires:
                    expires = int(minimum)
                    req = self._build(server, expires)
                    continue
            if 200 <= response.status < 300:
                return self._granted(response, expires)
            raise RegistrationError(f"{response.status} {response.reason}")
        raise RegistrationError("too many challenges")

    def _granted(self, response: Response, asked: int) -> int:
        """The expiry the registrar granted for our Contact (§10.2.4)."""
        if asked == 0:
            return 0
        mine = f"{self.contact_host}:{self.contact_port}"
        for value in response.headers.get_all("contact"):
            try:
                contact = NameAddr.parse(value)
            except ValueError:
                continue
            uri = contact.uri
            if f"{uri.host}:{uri.port or 5060}" == mine and uri.user == self.account.user:
                exp = contact.param("expires")
                if exp and exp.isdigit():
                    return int(exp)
        header = response.headers.get("expires")
        if header and header.strip().isdigit():
            return int(header)
        return asked


def _is_stale(response: Response) -> bool:
    """A challenge with ``stale=true`` (RFC 2617 §3.2.1): the nonce expired, retry."""
    for name in ("www-authenticate", "proxy-authenticate"):
        for value in response.headers.get_all(name):
            if "stale=true" in value.replace(" ", "").lower():
                return True
    return False


class RegistrationError(Exception):
    """A REGISTER ended without a 2xx."""


# --- the configured set -------------------------------------------------------------


@attrs.frozen
class PlannedRegistration:
    """One account to register: its key, the account and the lines it stands for."""

    key: str
    account: SipAccount
    lines: tuple[int, ...]


def registrations_for(voip: VoipConfig, line_count: int) -> tuple[PlannedRegistration, ...]:
    """The registrations the configured mode asks for (F-410, F-412, F-413, F-414)."""
    all_lines = tuple(range(1, line_count + 1))
    if voip.mode == "single":
        return (PlannedRegistration("main", voip.account, all_lines),)
    if voip.mode == "per_line":
        return tuple(PlannedRegistration(f"line{n}", acct, (n,))
                     for n, acct in enumerate(line_accounts(voip, line_count), start=1))
    if voip.mode == "per_group":
        return tuple(
            PlannedRegistration(f"group:{g.name or i + 1}", g.account,
                                tuple(n for n in g.lines if 1 <= n <= line_count))
            for i, g in enumerate(voip.groups))
    # trunk: register gateway 1 only when its expiry is > 0
    if voip.trunk_expires <= 0 or not voip.trunk_gateway1:
        return ()
    acct = attrs.evolve(voip.account, registrar=voip.trunk_gateway1,
                        backup_registrar="", expires=voip.trunk_expires)
    return (PlannedRegistration("trunk", acct, all_lines),)
