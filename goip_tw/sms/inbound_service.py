"""The received-SMS side as the gateway mounts it ("sms_inbound").

Assembles, from the config section ``sms_inbound`` and the other subsystems:
InboundSms (exactly-once storage, reassembly) with its interceptors (SMS commands
F-1501, own-number discovery F-510), the Forwarder (F-496/F-497/F-498), the USSD
sessions (F-504) and the history API (F-506). It takes over ``sms_handler`` of
every modem line and tells the "sms" subsystem (SMPP deliver_sm, GoIP SMS server)
about every received message through its ``sms_received`` fan-out.

Start after "modems", "sip" and "sms" (it needs their services), before "web".
"""

from __future__ import annotations

import os
import socket

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sms.commands import CommandSettings, SmsCommands
from goip_tw.sms.forward import ForwardRules, Forwarder, email_sender, mobile_sender, sip_sender
from goip_tw.sms.history import SmsHistory
from goip_tw.sms.inbound import InboundSms
from goip_tw.sms.mailer import SmtpSettings
from goip_tw.sms.ownnumber import OwnNumbers
from goip_tw.sms.ussd import UssdSessions

log = Logger()

SECRET_FILE = "own-number.key"


def rules_from(cfg) -> ForwardRules:
    return ForwardRules(
        sip_target=cfg.forward_sip_target, sip_from_user=cfg.forward_sip_from_user,
        mobile_number=cfg.forward_mobile_number, mobile_line=cfg.forward_mobile_line or None,
        email_to=tuple(cfg.email_to), lines=tuple(cfg.forward_lines))


def smtp_from(cfg) -> SmtpSettings | None:
    if not (cfg.smtp_host and cfg.email_to):
        return None
    return SmtpSettings(
        host=cfg.smtp_host, port=cfg.smtp_port,
        from_addr=cfg.email_from or (cfg.smtp_username if "@" in cfg.smtp_username
                                     else "goip-tw@localhost"),
        to_addrs=tuple(cfg.email_to), username=cfg.smtp_username,
        password=cfg.smtp_password, security=cfg.smtp_security, ca_file=cfg.smtp_ca_file,
        timeout=float(cfg.smtp_timeout))


def command_settings_from(cfg) -> CommandSettings:
    return CommandSettings(
        info_enabled=cfg.info_command, info_interval=float(cfg.info_interval),
        info_max_per_hour=cfg.info_max_per_hour, max_failures=cfg.command_max_failures,
        lockout=float(cfg.command_lockout),
        global_max_failures=cfg.command_global_max_failures)


def load_secret(data_dir: str) -> bytes:
    """The key of own-number tokens: 32 random bytes kept in the data directory
    (created 0600 on first use), so tokens survive restarts."""
    path = os.path.join(data_dir, SECRET_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    data = os.urandom(32)
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


def local_addresses() -> list[str]:
    """This host's non-loopback IPv4/IPv6 addresses (for ###INFO###); no traffic."""
    found: list[str] = []
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addr = info[4][0]
            if addr not in found and not addr.startswith(("127.", "::1")):
                found.append(addr)
    except OSError:
        pass
    return found or ["127.0.0.1"]


class InboundService(service.Service):
    name = "sms_inbound"

    def __init__(self, gateway, *, info_text=None):
        self.gateway = gateway
        cfg = gateway.config.sms_inbound
        clock = gateway.reactor
        store = gateway.store
        self._sms = gateway.subsystem("sms")
        self._sip = gateway.subsystem("sip")
        self._modems = gateway.subsystem("modems")
        queue = getattr(self._sms, "queue", None)
        self.forwarder = Forwarder(store, clock, rules_from(cfg), self._senders(cfg, queue),
                                   base_delay=cfg.forward_retry_base,
                                   max_delay=cfg.forward_retry_max,
                                   max_age=float(cfg.forward_max_age))
        self.commands = SmsCommands(
            clock, check_password=self._check_admin, factory_reset=self._hook("factory_reset"),
            restart=self._hook("restart"), info_text=info_text or self._info_text,
            reply=self._send, settings=command_settings_from(cfg))
        self.ussd = UssdSessions(clock, self._modem_for, idle_timeout=float(cfg.ussd_idle_timeout))
        self.own_numbers = OwnNumbers(
            store, clock, secret=load_secret(gateway.data_dir), ussd=self.ussd,
            send_sms=self._send, token_ttl=float(cfg.own_number_token_ttl),
            timeout=float(cfg.own_number_timeout))
        self.history = SmsHistory(store)
        self.ready: defer.Deferred | None = None
        self.inbound = InboundSms(store, clock, reassembly_timeout=float(cfg.reassembly_timeout),
                                  interceptors=[self.commands, self.own_numbers],
                                  planner=self.forwarder)
        if self._sms is not None and hasattr(self._sms, "sms_received"):
            self.inbound.add_observer(self._sms)
        self._events = getattr(gateway, "events", None)
        if self._events is not None:
            self.inbound.add_observer(self)
            self.ussd.add_listener(self._ussd_event)

    def sms_received(self, msg) -> None:
        """Live UI event ``sms.received`` (commands and tokens never get here)."""
        self._events.publish("sms.received", id=msg.id, line=msg.line, sender=msg.sender,
                             parts=msg.parts, complete=msg.complete)

    def _ussd_event(self, result) -> None:
        self._events.publish("ussd.result", line=result.line, status=result.status,
                             text=result.text, error=result.error)

    # -- collaborators ----------------------------------------------------------------

    def _senders(self, cfg, queue) -> dict:
        senders = {}
        if self._sip is not None and hasattr(self._sip, "send_message"):
            senders["sip"] = sip_sender(self._sip, cfg.forward_sip_from_user)
        if queue is not None:
            senders["mobile"] = mobile_sender(queue, self.gateway.store,
                                              cfg.forward_mobile_line or None)
        smtp = smtp_from(cfg)
        if smtp is not None:
            senders["email"] = email_sender(self.gateway.reactor, smtp)
        return senders

    def _check_admin(self, password: str) -> bool:
        from goip_tw.web.auth import check_user

        return check_user(self.gateway.config.users, "admin", password) == "admin"

    def _hook(self, name: str):
        def call():
            fn = getattr(self.gateway, name, None)
            if fn is None:
                log.error("sms command: the gateway has no {hook}()", hook=name)
                return None
            return fn()

        return call

    def _info_text(self) -> str:
        port = getattr(getattr(self.gateway.config, "web", None), "port", None)
        addrs = " ".join(local_addresses())
        return f"IP: {addrs}" + (f" web port {port}" if port else "")

    def _send(self, line: int, number: str, text: str) -> defer.Deferred:
        from goip_tw.sms.model import Submission

        queue = getattr(self._sms, "queue", None)
        if queue is None:
            return defer.fail(RuntimeError("sms: no outgoing queue"))
        return queue.submit(Submission(recipient=number, text=text, source="gateway",
                                       line=line))

    def _modem_for(self, number: int):
        line = self._modems.line(number) if self._modems is not None else None
        return getattr(line, "modem", None)

    def _sim_of(self, number: int) -> tuple[str, str]:
        line = self._modems.line(number) if self._modems is not None else None
        sim = getattr(getattr(line, "modem", None), "sim", None)
        slot = getattr(line, "sim_slot", None)
        return (getattr(sim, "iccid", None) or "",
                "ABCD"[slot] if isinstance(slot, int) and 0 <= slot < 4 else "")

    def _line_event(self, number: int):
        """Network-initiated USSD (+CUSD nobody waited for) reaches the sessions."""
        from goip_tw.modem.model import UssdNotification

        def observe(event):
            if isinstance(event, UssdNotification):
                self.ussd.notification(number, event.reply)

        return observe

    def line_sms_handler(self, number: int, sms) -> defer.Deferred:
        """``LineService.sms_handler(line, IncomingSms)``: durable before it fires."""
        return self.inbound.handler_for(number, lambda: self._sim_of(number))(sms)

    def discover(self, line: int, iccid: str, method: str) -> defer.Deferred:
        """F-510 with the configured parameters; fires with the number or fails
        with DiscoveryFailed naming what is missing."""
        from goip_tw.sms.ownnumber import DiscoveryFailed

        cfg = self.gateway.config.sms_inbound
        own = self.own_numbers
        if method == "ussd":
            if not (cfg.own_number_ussd_code and cfg.own_number_ussd_phrase):
                return defer.fail(DiscoveryFailed("own_number_ussd_code: not configured"))
            return own.discover_by_ussd(line, iccid, cfg.own_number_ussd_code,
                                        cfg.own_number_ussd_phrase)
        if method == "sms":
            if not (cfg.own_number_sms_service and cfg.own_number_sms_query
                    and cfg.own_number_sms_phrase):
                return defer.fail(DiscoveryFailed("own_number_sms_service: not configured"))
            return own.discover_by_sms(line, iccid, cfg.own_number_sms_service,
                                       cfg.own_number_sms_query,
                                       cfg.own_number_sms_reply_from or cfg.own_number_sms_service,
                                       cfg.own_number_sms_phrase)
        if method == "token":
            if not cfg.own_number_token_target:
                return defer.fail(DiscoveryFailed("own_number_token_target: not configured"))
            return own.discover_by_token(line, iccid, cfg.own_number_token_target)
        return defer.fail(DiscoveryFailed(f"method: {method!r} is not ussd, sms or token"))

    def web_resources(self) -> dict:
        """Mounted by goip_tw/web/service.py under /sms/ (see inbound_api.py)."""
        from goip_tw.sms.inbound_api import resource

        return {"sms": resource(self)}

    # -- life cycle -------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._line_observers = []
        for line in getattr(self._modems, "lines", ()):
            line.sms_handler = self.line_sms_handler
            if hasattr(line, "add_observer"):
                fn = self._line_event(line.number)
                line.add_observer(fn)
                self._line_observers.append((line, fn))
        self.ready = self._load()
        self.ready.addErrback(lambda f: log.failure("received-SMS service failed to load", f))
        return self.ready

    @defer.inlineCallbacks
    def _load(self):
        # Reads are not ordered behind the store's migrations; a write is, so this
        # no-op write means the tables exist before we read them.
        yield self.gateway.store.write(lambda conn: None)
        yield self.inbound.start()
        yield self.forwarder.start()

    def stopService(self):
        super().stopService()
        for line in getattr(self._modems, "lines", ()):
            if line.sms_handler == self.line_sms_handler:
                line.sms_handler = None
        for line, fn in getattr(self, "_line_observers", ()):
            line.remove_observer(fn)
        self._line_observers = []
        self.inbound.stop()
        self.forwarder.stop()
        self.ussd.stop()
        self.own_numbers.stop()

    def reconfig(self, old, new, changed) -> None:
        if not any(k.startswith("sms_inbound.") or k == "sms_inbound" for k in changed):
            return
        cfg = new.sms_inbound
        self.forwarder.rules = rules_from(cfg)
        self.forwarder.senders = self._senders(cfg, getattr(self._sms, "queue", None))
        self.forwarder.base_delay = cfg.forward_retry_base
        self.forwarder.max_delay = cfg.forward_retry_max
        self.forwarder.max_age = float(cfg.forward_max_age)
        self.commands.settings = command_settings_from(cfg)
        self.inbound.reassembly_timeout = float(cfg.reassembly_timeout)
        self.ussd.idle_timeout = float(cfg.ussd_idle_timeout)
        log.info("received-SMS settings applied")


def build_service(gateway):
    return InboundService(gateway)
