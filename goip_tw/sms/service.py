"""The SMS subsystem as the gateway mounts it ("sms").

Builds the one outgoing queue every interface submits to, attaches each modem line
(as an ISmsLine, with its status reports), and starts the GoIP-compatible
interfaces (F-492 UDP SMS-server client).  Other subsystems reach it through
``gateway.subsystem("sms")``: ``.queue`` (SmsQueue), ``.router``,
``.line_count()``, ``.line_number(n)``, ``.http_api`` (a Klein sub-app for the
lead's web app), ``.add_received_observer(obs)``.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sms.lines import ModemSmsLine
from goip_tw.sms.model import StatusReport
from goip_tw.sms.queue import QueueSettings, SmsQueue
from goip_tw.sms.router import Router
from goip_tw.sms.sip_message import SipMessageRelay


def _split(entry) -> tuple[str, ...]:
    return tuple(p.strip() for p in str(entry).split(",") if p.strip())


def voip_prefixes(voip) -> dict[int, tuple[str, ...]]:
    """F-411 line prefixes of the VoIP pages (per line or per group accounts)."""
    if voip is None:
        return {}
    if voip.mode == "line":
        return {n: _split(a.prefixes) for n, a in enumerate(voip.lines, 1) if a.prefixes}
    if voip.mode == "group":
        return {n: _split(g.account.prefixes) for g in voip.groups for n in g.lines
                if g.account.prefixes}
    return {}


def router_from_config(cfg, voip=None) -> Router:
    """SMS prefixes when set, else the VoIP line prefixes (one list for calls and SMS)."""
    prefixes = {n: _split(entry) for n, entry in enumerate(cfg.line_prefixes, 1)}
    strip = cfg.strip_prefix
    if not any(prefixes.values()):
        prefixes = voip_prefixes(voip)
        strip = strip or bool(voip is not None and voip.strip_prefix)
    return Router.from_settings(cfg.rewrite_rules, cfg.strict_rewrite, prefixes, strip,
                                cfg.match_caller)


def settings_from_config(cfg) -> QueueSettings:
    return QueueSettings(max_queued=cfg.max_queued, validity=float(cfg.validity),
                         interval=float(cfg.interval), retries=cfg.retries,
                         backoff=float(cfg.backoff), assembly_timeout=float(cfg.assembly_timeout),
                         uncertain_policy=cfg.uncertain_policy,
                         status_reports=cfg.status_reports)


class SmsService(service.MultiService):
    log = Logger()
    name = "sms"

    def __init__(self, gateway):
        super().__init__()
        self.gateway = gateway
        cfg = gateway.config.sms
        self.router = router_from_config(cfg, getattr(gateway.config, "voip", None))
        self.queue = SmsQueue(gateway.store, gateway.reactor, self.router,
                              settings_from_config(cfg))
        self.queue.setServiceParent(self)
        events = getattr(gateway, "events", None)
        if events is not None:
            # One topic for the live UI, metrics and per-SIM statistics (a long SMS
            # is one "sent" event however many parts it has, F-304).
            self.queue.subscribe(lambda e: events.publish(
                "sms.state", message=e.message, state=e.state.value, seq=e.seq, line=e.line,
                source=e.source, error=e.error))
        self._received_observers: list = []
        self._modem_lines: dict[int, object] = {}
        self.http_api = None
        self.goip_client = None
        self.sip_relay = None
        try:
            from goip_tw.sms.http_api import GoipHttpApi
        except ImportError:  # pragma: no cover - module not present in this build
            GoipHttpApi = None
        if GoipHttpApi is not None and cfg.http_api:
            self.http_api = GoipHttpApi(self.queue, self.check_password, gateway.reactor,
                                        self.line_count)
        if cfg.server_enabled and cfg.server_host:
            from goip_tw.sms.goip_udp import build_client
            self.goip_client = build_client(self, cfg, gateway.reactor)
            if self.goip_client is not None:
                self.goip_client.setServiceParent(self)

    # -- what other subsystems ask ----------------------------------------------------

    def _modems(self):
        return self.gateway.subsystem("modems")

    def line_count(self) -> int:
        modems = self._modems()
        return len(getattr(modems, "lines", ())) or 32

    def line_number(self, line: int) -> str | None:
        modems = self._modems()
        ls = modems.line(line) if modems is not None else None
        sim = getattr(getattr(ls, "modem", None), "sim", None)
        return getattr(sim, "own_number", None) or None

    def check_password(self, user: str, password: str) -> bool:
        """The GoIP HTTP API's u=/p=: F-301 users whose level may send SMS."""
        users = getattr(self.gateway.config, "users", None)
        if users is None:
            return False
        from goip_tw.web.auth import allowed, check_user

        level = check_user(users, user, password)
        return level is not None and allowed(level, "sms")

    def health_state(self) -> str:
        """/health: nothing private, just how much waits."""
        if not self.running:
            return "stopped"
        return f"running, {self.queue.depth} queued"

    def web_resources(self) -> dict:
        """Mounted by goip_tw/web/service.py: GoIP's /default/en_US/*.html|xml."""
        if self.http_api is None:
            return {}
        return {"default": self.http_api.app.resource()}

    def add_received_observer(self, observer) -> None:
        self._received_observers.append(observer)

    def sms_received(self, msg) -> None:
        """IReceivedSmsObserver fan-out (SMPP deliver_sm, GoIP SMS server)."""
        for obs in list(self._received_observers):
            try:
                obs.sms_received(msg)
            except Exception:
                self.log.failure("received-SMS observer failed")

    # -- lines ----------------------------------------------------------------------------

    def attach_line(self, line_service) -> None:
        sim = self.gateway.subsystem("sim")
        allowed = getattr(sim, "sms_allowed", None)  # SIM limits, when that subsystem exists
        adapter = ModemSmsLine(line_service, allowed)
        self._modem_lines[line_service.number] = adapter
        line_service.report_handler = self._report
        if hasattr(line_service, "add_observer"):
            line_service.add_observer(lambda event: self.queue.line_changed())
        self.queue.add_line(adapter)

    def _report(self, line: int, report) -> defer.Deferred:
        scts = getattr(report, "scts", None)
        return self.queue.on_status_report(StatusReport(
            line=line, mr=report.message_ref, delivered=report.delivered, final=report.final,
            status=report.status, scts=scts.timestamp() if scts is not None else None))

    def reconfig(self, old, new, changed) -> None:
        """Routing and queue settings apply at once; the GoIP SMS-server client's
        address/ID apply at the next start (its sockets are per line)."""
        if not any(k.startswith(("sms.", "voip.")) for k in changed):
            return
        self.router = router_from_config(new.sms, getattr(new, "voip", None))
        self.queue.router = self.router
        self.queue.settings = settings_from_config(new.sms)
        if self.sip_relay is not None:
            self.sip_relay.report = new.sms.sip_result_report
            self.sip_relay.first_line = new.sms.sip_first_line_target
        self.queue.line_changed()

    def startService(self):
        modems = self._modems()
        for ls in getattr(modems, "lines", ()):
            self.attach_line(ls)
        sip = self.gateway.subsystem("sip")
        if sip is not None and hasattr(sip, "set_message_handler"):
            cfg = self.gateway.config.sms
            self.sip_relay = SipMessageRelay(self.queue, sip, report=cfg.sip_result_report,
                                             first_line=cfg.sip_first_line_target)
            sip.set_message_handler(self.sip_relay)
        return super().startService()

    def stopService(self):
        if self.sip_relay is not None:
            self.sip_relay.close()
            self.sip_relay = None
        return super().stopService()


def build_service(gateway):
    return SmsService(gateway)
