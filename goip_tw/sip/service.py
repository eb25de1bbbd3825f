"""The SIP subsystem as a twistd service: ``build_service(gateway)`` -> ``SipService``.

Glue only: transports (``transport``), transactions (``transaction``), the
registration clients (``registration``, F-410..F-414), the embedded proxy
(``registrar``, F-415), the admission gate (``admission``, F-425), prefix routing
(``routing``, F-411/F-412) and call legs (``ua``).  Request dispatch:

- OPTIONS: 200 with Allow (keep-alives and monitoring; reveals nothing).
- REGISTER: the embedded registrar when enabled, else 405 (same for every user).
- INVITE/MESSAGE outside a dialog: from a registered softphone -> 407 with the
  proxy password; otherwise the admission gate (accept / 401 / 403).  An admitted
  INVITE whose caller/callee matches no prefix is answered 603 (F-412); else the
  call handler gets an ``InboundLeg``.  An admitted MESSAGE goes to the message
  handler as an ``InboundMessage``.
- Requests with a To tag (BYE, INFO, re-INVITE) go to their dialog, or 481.

The public API for other subsystems is documented in ``goip_tw.sip.ua``.
"""

from __future__ import annotations

import socket

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from goip_tw.config.sections.sip import SipConfig
from goip_tw.config.sections.voip import VoipConfig
from goip_tw.sip import ua as ua_mod
from goip_tw.sip.admission import AddressSet, Admission, DigestAuth
from goip_tw.sip.dialog import check_request
from goip_tw.sip.message import NameAddr, Request, SipParseError, SipURI
from goip_tw.sip.outgoing import Originator
from goip_tw.sip.registrar import Registrar
from goip_tw.sip.registration import (Registration, RegistrationState, host_port,
                                      registrations_for)
from goip_tw.sip.routing import PrefixRouter, Route
from goip_tw.sip.transaction import Timers, TransactionLayer
from goip_tw.sip.transport import Address, KeepAlive, SipResolver, TransportLayer
from goip_tw.sip.ua import is_ip, uri_user

log = Logger(namespace="goip.sip.service")

MAX_MESSAGE_BODY = 4096
ALLOW = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "MESSAGE", "UPDATE")


class SipService(Originator, service.Service):
    """One SIP stack for the whole gateway."""

    name = "sip"

    def __init__(self, reactor, sip_config: SipConfig, voip_config: VoipConfig,
                 line_count: int = 1, *, events=None, auth=None, tls_options=None):
        self.reactor = reactor
        self.sip_config = sip_config
        self.voip = voip_config
        self.line_count = line_count
        self.events = events
        self.auth = auth if auth is not None else DigestAuth(
            reactor, algorithms=("MD5", "SHA-256") if voip_config.digest_sha256 else ("MD5",))
        self._tls_options = tls_options
        self._build_stack(sip_config)
        self.registrations: dict[str, Registration] = {}
        self.registrar = None
        self._configure_voip(voip_config)
        self._call_handler = None
        self._message_handler = None
        self._line_network: dict[int, bool] = {}
        self._keepalives: dict[str, KeepAlive] = {}
        self._resolver: SipResolver | None = None

    def _build_stack(self, sip_config: SipConfig) -> None:
        self.sip_config = sip_config
        self.transport = TransportLayer(self.reactor, sip_config, self._tls_options)
        self.transactions = TransactionLayer(self.transport, self.reactor,
                                             Timers.from_config(sip_config))
        self.transactions.request_received = self._request_received
        self.transactions.ack_received = self._ack_received
        self.ua = ua_mod.UaCore(self.transactions, self.transport, self.reactor,
                                self._contact_for, authorize=self.auth.authorize)

    def _configure_voip(self, voip_config: VoipConfig) -> None:
        """Routing, registrations plan, embedded proxy and admission from ``voip``."""
        old = getattr(self, "voip", None)
        self.voip = voip_config
        self.router = PrefixRouter.from_config(voip_config, self.line_count)
        self.plans = registrations_for(voip_config, self.line_count)
        proxy_password = voip_config.proxy_password if voip_config.proxy_enabled else ""
        keep = (old is not None and self.registrar is not None and old.proxy_enabled
                and old.proxy_password == proxy_password
                and old.proxy_max_expires == voip_config.proxy_max_expires)
        if not keep:
            self.registrar = None
            if proxy_password:
                self.registrar = Registrar(
                    self.reactor, self.auth.verifier(lambda user: proxy_password),
                    self.auth.challenge, max_expires=voip_config.proxy_max_expires,
                    new_tag=lambda: self.transactions.new_tag())
        self._proxy_calls = self.auth.verifier(lambda user: proxy_password or None,
                                               proxy=True)
        passwords = self._account_passwords()
        self.admission = Admission(
            voip_config.outgoing_auth, self._trusted(),
            self.auth.verifier(self._password_of) if (passwords or proxy_password) else None)

    # -- wiring for other subsystems -------------------------------------

    def set_call_handler(self, handler) -> None:
        """``handler.incoming_call(leg: ua.InboundLeg)`` for admitted INVITEs."""
        self._call_handler = handler

    def set_message_handler(self, handler) -> None:
        """``handler.message_received(msg: ua.InboundMessage) -> int | Deferred[int]``."""
        self._message_handler = handler

    # -- life cycle ------------------------------------------------------

    def startService(self):
        super().startService()
        self.transport.start()
        self._start_registrations()
        self._resolve_trusted()
        log.info("SIP listening on {ports}; mode {mode}; {n} registration(s)",
                 ports=self.transport.ports, mode=self.voip.mode, n=len(self.plans))

    def _start_registrations(self) -> None:
        host, port = self.transport.sent_by("udp")
        for plan in self.plans:
            kind = plan.account.transport
            contact_host = self._local_host_towards(plan.account.registrar) or host
            reg = Registration(
                plan.key, plan.account, clock=self.reactor,
                send=lambda req, server, kind=kind: self._send_to_server(req, server, kind),
                authorize=self.auth.authorize, contact_host=contact_host,
                contact_port=self.transport.ports.get(kind) or port, transport=kind,
                retry=self.voip.register_retry, failover_after=self.voip.failover_after,
                probe=self.voip.primary_probe, user_agent=self.sip_config.user_agent,
                on_change=self._registration_changed)
            self.registrations[plan.key] = reg
            if not self._plan_line_up(plan):
                reg._enabled = False
            reg.start()

    def _stop_registrations(self) -> defer.Deferred:
        for keepalive in self._keepalives.values():
            keepalive.stop()
        self._keepalives.clear()
        regs, self.registrations = list(self.registrations.values()), {}
        return defer.DeferredList([reg.stop() for reg in regs])

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        self.ua.stop()
        yield self._stop_registrations()
        # let the transaction that delivered the last response finish arming its
        # timers before they are all cancelled
        yield task.deferLater(self.reactor, 0, lambda: None)
        self.transactions.stop()
        yield self.transport.stop()

    @defer.inlineCallbacks
    def reconfig(self, old, new, changed):
        """Apply ``sip``/``voip`` changes: unregister, rebuild, register again.

        A change under ``sip`` (ports, transports, timers) also restarts the
        transports, which ends calls in progress; a ``voip``-only change keeps
        them (and the proxy's bindings when its settings did not change).
        """
        sip_changed = any(k == "sip" or k.startswith("sip.") for k in changed)
        voip_changed = any(k == "voip" or k.startswith("voip.") for k in changed)
        if not (sip_changed or voip_changed):
            return
        log.info("SIP applying new settings: {keys}",
                 keys=sorted(k for k in changed if k.split(".")[0] in ("sip", "voip")))
        running = self.running
        if running:
            yield self._stop_registrations()
        if sip_changed:
            if running:
                self.ua.stop()
                yield task.deferLater(self.reactor, 0, lambda: None)
                self.transactions.stop()
                yield self.transport.stop()
            self._build_stack(new.sip)
            if running:
                self.transport.start()
        self._configure_voip(new.voip)
        if running:
            self._start_registrations()
            self._resolve_trusted()

    @property
    def port(self) -> int:
        return self.transport.ports.get("udp") or self.transport.ports.get("tcp")

    # -- registrations (F-304 VOIP column) ---------------------------------

    def _plan_line_up(self, plan) -> bool:
        if self.voip.mode in ("single", "trunk"):
            return True
        return any(self._line_network.get(n, True) for n in plan.lines)

    def set_line_network(self, line: int, registered: bool) -> None:
        """The line's SIM (un)registered on the mobile network: VoIP follows (F-304)."""
        self._line_network[line] = registered
        for plan in self.plans:
            if line in plan.lines and plan.key in self.registrations:
                reg = self.registrations[plan.key]
                if self._plan_line_up(plan):
                    reg.enable()
                else:
                    reg.disable()

    def line_voip_registered(self, line: int) -> bool:
        """F-304 VOIP Y/N for ``line`` (N while the line's SIM is unregistered).

        A trunk without registration (F-414, expiry 0) needs none: Y while running.
        """
        if not self._line_network.get(line, True):
            return False
        for plan in self.plans:
            if line in plan.lines:
                reg = self.registrations.get(plan.key)
                return bool(reg and reg.registered)
        return self.voip.mode == "trunk" and self.running and 1 <= line <= self.line_count

    def _registration_changed(self, state: RegistrationState) -> None:
        self._keepalive(state)
        if self.events is not None:
            lines = next((list(p.lines) for p in self.plans if p.key == state.key), [])
            self.events.publish("sip.registration", key=state.key, lines=lines,
                                state=state.state, server=state.server,
                                registered=state.registered, reason=state.reason)

    def _keepalive(self, state: RegistrationState) -> None:
        """F-426: keep the NAT binding towards the server we are registered at."""
        mode = self.sip_config.keepalive_mode
        old = self._keepalives.pop(state.key, None)
        if old is not None:
            old.stop()
        if mode == "off" or not state.registered or not self.running:
            return
        host, port = host_port(state.server)
        if not is_ip(host):
            return
        dest = Address("udp", host, port)
        if mode == "crlf":
            send = KeepAlive.crlf_sender(self.transport, dest)
        else:
            def send():
                req = Request("OPTIONS", SipURI(host=host, port=port))
                h = req.headers
                local, lport = self.transport.sent_by("udp")
                h.add("Max-Forwards", "70")
                h.add("From", str(NameAddr(uri=SipURI(host=local, user="keepalive"))
                                  .with_tag(self.transactions.new_tag())))
                h.add("To", f"<sip:{host}:{port}>")
                h.add("Call-ID", f"{self.transactions.new_branch()[7:]}@{local}")
                h.add("CSeq", "1 OPTIONS")
                self.transactions.send_request(req, dest)
        keepalive = KeepAlive(self.reactor, send, self.sip_config.keepalive_interval)
        self._keepalives[state.key] = keepalive
        keepalive.start()

    def _send_to_server(self, request: Request, server: str, transport: str = "udp"):
        """Send to ``host[:port]``; a name without a port is looked up by SRV, then A
        (RFC 3263 through ``SipResolver``), a name with a port by A only."""
        host, port = host_port(server, 5061 if transport == "tls" else 5060)
        if is_ip(host):
            return self.transactions.send_request(request, Address(transport, host, port))
        if ":" not in server.strip().lstrip("[").split("]")[-1]:
            d = self._sip_resolver().resolve(SipURI(host=host), transport)
            d.addCallback(lambda found: found[0])
        else:
            d = self.reactor.resolve(host)
            d.addCallback(lambda ip: Address(transport, ip, port))
        d.addCallback(lambda dest: self.transactions.send_request(request, dest))
        return d

    def _sip_resolver(self) -> SipResolver:
        if self._resolver is None:
            from twisted.names import client

            self._resolver = SipResolver(client.createResolver(reactor=self.reactor))
        return self._resolver

    # -- addresses and accounts -------------------------------------------

    def _accounts(self):
        for plan in self.plans:
            yield plan.key, plan.account
        if self.voip.mode == "trunk" and not self.plans:
            yield "trunk", self.voip.account

    def _password_of(self, user: str) -> str | None:
        """F-425 password: an account's own, or the proxy password of a client
        that is registered right now (F-415)."""
        password = self._account_passwords().get(user)
        if password:
            return password
        if self.registrar is not None and self.registrar.is_user(user):
            return self.voip.proxy_password
        return None

    def _account_passwords(self) -> dict[str, str]:
        return {acct.auth_id: acct.password for _, acct in self._accounts()
                if acct.auth_id and acct.password}

    def _trusted(self) -> AddressSet:
        """F-425 'address': every configured server, trunk gateways 1-3 (F-414)."""
        hosts = []
        for _, acct in self._accounts():
            for value in (acct.registrar, acct.proxy, acct.backup_registrar,
                          acct.outbound_proxy):
                if value:
                    hosts.append(value.strip())
        if self.voip.trunk_gateway1:
            hosts.append(self.voip.trunk_gateway1.strip())
        return AddressSet.parse(self.voip.trunk_gateway2, self.voip.trunk_gateway3
                                ).with_hosts(hosts)

    def _resolve_trusted(self) -> None:
        """Add the addresses of server host names to the trusted set (F-425)."""
        names = {(p.name, p.port) for p in self.admission.trusted.patterns
                 if p.name and not is_ip(p.name)}
        for name, port in names:
            d = self.reactor.resolve(name)

            def add(ip, name=name, port=port):
                item = f"{ip}:{port}" if port and ":" not in ip else ip
                self.admission.trusted = self.admission.trusted.with_hosts([item])
                log.info("trusting {name} as {item}", name=name, item=item)

            d.addCallbacks(add, lambda f, name=name: log.warn(
                "cannot resolve trusted server {name}: {error}", name=name,
                error=f.getErrorMessage()))

    def registration_status(self) -> list[dict]:
        """Per registration, for the status page and API (F-304 VOIP column)."""
        out = []
        for plan in self.plans:
            reg = self.registrations.get(plan.key)
            snap = reg.snapshot() if reg is not None else None
            out.append({"key": plan.key, "lines": list(plan.lines),
                        "user": plan.account.user,
                        "state": snap.state if snap else "idle",
                        "server": snap.server if snap else plan.account.registrar,
                        "registered": bool(snap and snap.registered),
                        "expires": snap.expires if snap else 0,
                        "reason": snap.reason if snap else ""})
        return out

    def _local_host_towards(self, server: str) -> str | None:
        """Our address as seen by ``server`` when we listen on every interface.

        A connected UDP socket makes the kernel pick the outgoing interface; no
        packet is sent.  Only for IP literals (no blocking DNS here).
        """
        bound = self.sip_config.bind_address
        if bound not in ("0.0.0.0", "::", "") or not server or self.transport.advertised_host:
            return None
        host, port = host_port(server)
        if not is_ip(host):
            return None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            probe.connect((host, port))
            return probe.getsockname()[0]
        except OSError:
            return None
        finally:
            probe.close()

    def _contact_for(self, account: str) -> str:
        host, port = self.transport.sent_by("udp")
        user = "gw"
        reg = self.registrations.get(account)
        if reg is not None:
            host = reg.contact_host
        if reg is not None and reg.user:
            user = reg.user
        elif self.voip.account.user:
            user = self.voip.account.user
        return f"<sip:{user}@{host}:{port}>"

    def _account_for_user(self, user: str) -> tuple[str, tuple[int, ...]] | None:
        for plan in self.plans:
            if user and user in (plan.account.user, plan.account.auth_id):
                return plan.key, plan.lines
        return None

    # -- incoming requests ---------------------------------------------------

    def _request_received(self, txn) -> None:
        req: Request = txn.request
        try:
            if req.to.tag:
                self.ua.in_dialog(txn)
                return
            method = req.method
            allow = ALLOW + (("REGISTER",) if self.registrar is not None else ())
            error = check_request(req, allow=allow)
            if error is not None:
                txn.respond(error)
                return
            if method == "OPTIONS":
                resp = req.make_response(200, to_tag=self.transactions.new_tag())
                resp.headers.add("Allow", self.ua.ALLOW)
                resp.headers.add("Accept", "application/sdp, text/plain")
                resp.headers.add("Server", self.sip_config.user_agent)
                txn.respond(resp)
            elif method == "REGISTER":
                if self.registrar is not None:
                    self.registrar.handle_register(txn)
                else:
                    self._reply(txn, 405)
            elif method in ("INVITE", "MESSAGE"):
                self._admit(txn)
            elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
                self._reply(txn, 481)
            else:
                self._reply(txn, 405)
        except SipParseError as e:
            log.info("bad {method} from {source}: {field}: {detail}", method=req.method,
                     source=str(txn.source), field=e.field, detail=e.detail)
            self._reply(txn, 400, f"Bad Request ({e.field})")

    def _reply(self, txn, status: int, reason: str | None = None):
        resp = txn.request.make_response(status, reason, to_tag=self.transactions.new_tag())
        if status == 405:
            resp.headers.add("Allow", self.ua.ALLOW)
        txn.respond(resp)

    def _admit(self, txn) -> None:
        req: Request = txn.request
        src = txn.source
        if self.registrar is not None and self.registrar.is_client(src.host, src.port):
            outcome, user = self._proxy_calls.verify(req, (src.host, src.port))
            if outcome in ("missing", "bad"):
                txn.respond(self.auth.challenge(req, True, (src.host, src.port)))
                return
            if outcome != "ok":
                self._reply(txn, 403)
                return
            identity, account = f"user:{user}", f"proxy:{user}"
        else:
            verdict = self.admission.check(req, (src.host, src.port))
            if verdict.action == "challenge":
                txn.respond(self.auth.challenge(req, False, (src.host, src.port)))
                return
            if not verdict.accepted:
                self._reply(txn, verdict.code or 403)
                return
            identity, account = verdict.identity, ""
            user = identity[5:] if identity.startswith("user:") else ""
            if user and user not in self._account_passwords() and self.registrar is not None:
                account = f"proxy:{user}"
        if req.method == "MESSAGE":
            self._message(txn, identity, account)
        else:
            self._invite(txn, identity, account)

    def _invite(self, txn, identity: str, account: str) -> None:
        req: Request = txn.request
        caller = uri_user(req.from_.uri)
        callee = uri_user(req.uri)
        own = self._account_for_user(callee)
        if self.registrar is not None and self.registrar.is_user(callee):
            log.info("proxy: refusing client-to-client call {caller} -> {callee}",
                     caller=caller, callee=callee)
            self._reply(txn, 403)
            return
        if own is not None:
            key, lines = own
            route = Route(lines=lines, number="", prefix="", entries=(key,))
            account = account or key
        else:
            route = self.router.route(caller, callee)
            if route is None:
                log.info("INVITE {caller} -> {callee}: no line prefix matches (603)",
                         caller=caller, callee=callee)
                self._reply(txn, 603)
                return
            account = account or self.account_for_line(route.lines[0] if route.lines else None)
        if self._call_handler is None:
            self._reply(txn, 480, "No call handler")
            return
        leg = self.ua.offer(txn, account=account, identity=identity, route=route,
                            own_number=own is not None)
        try:
            self._call_handler.incoming_call(leg)
        except Exception:
            log.failure("call handler failed on INVITE {call_id}", call_id=req.call_id)
            leg.reject(500)

    def _message(self, txn, identity: str, account: str) -> None:
        req: Request = txn.request
        if self._message_handler is None or len(req.body) > MAX_MESSAGE_BODY:
            self._reply(txn, 480 if self._message_handler is None else 413)
            return
        msg = ua_mod.InboundMessage(
            sender=uri_user(req.from_.uri), recipient=uri_user(req.uri), body=req.body,
            content_type=req.headers.get("content-type") or "text/plain",
            call_id=req.call_id or "", identity=identity, account=account,
            source=(txn.source.host, txn.source.port))
        d = defer.maybeDeferred(self._message_handler.message_received, msg)

        def done(code):
            code = code if isinstance(code, int) and 200 <= code <= 699 else 500
            self._reply(txn, code)

        def failed(f):
            log.failure("message handler failed", f)
            self._reply(txn, 500)

        d.addCallbacks(done, failed)

    def _ack_received(self, request: Request, source) -> None:
        self.ua.ack_received(request, source)

    def health_state(self) -> str:
        regs = self.registrations.values()
        if not regs:
            return "running"
        up = sum(1 for r in regs if r.registered)
        return f"{up}/{len(regs)} registered"


def _line_count(gateway) -> int:
    modems = gateway.subsystem("modems")
    for attr in ("line_count", "count"):
        value = getattr(modems, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    lines = getattr(modems, "lines", None)
    if lines:
        return len(lines)
    return 4


def build_service(gateway) -> SipService:
    """Factory for ``goip_tw.gateway`` (SUBSYSTEMS entry ``("sip", "goip_tw.sip.service")``).

    Follows each line's mobile registration (event ``line.state``): a line whose
    SIM is not registered has its own VoIP registration off (F-304).
    """
    cfg = gateway.config
    svc = SipService(gateway.reactor, cfg.sip, cfg.voip, _line_count(gateway),
                     events=gateway.events)
    modems = gateway.subsystem("modems")
    for line in getattr(modems, "lines", ()) or ():
        number = getattr(line, "number", None)
        if isinstance(number, int):
            svc._line_network[number] = getattr(line, "state", "") == "registered"
    if gateway.events is not None:
        def line_state(topic, line=None, state=None, **fields):
            if isinstance(line, int):
                svc.set_line_network(line, state == "registered")

        gateway.events.subscribe("line.state", line_state)
    return svc
