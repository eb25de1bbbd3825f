"""The calls subsystem as a service: ``build_service(gateway)`` -> ``CallsService``.

Wiring only.  Starts after modems, media and SIP (gateway.SUBSYSTEMS order):

- lines: every ``LineService`` of the "modems" subsystem (``modems.lines``);
- SIP: becomes the "sip" subsystem's call handler (``set_call_handler``);
- media: ``goip_tw.calls.mediaside.MediaSide`` over the "media" subsystem;
- store: CDRs through ``CdrRepository(gateway.store)`` (migration 200);
- events: ``line.call_state`` (F-304) and ``call.ended`` on ``gateway.events``;
- SIM layer (optional): ``sim.call_status(line) -> dict`` with any of ``enabled``,
  ``slot``, ``within_limits``, ``talk_seconds`` for line selection.

Stopping ends every call (BYE / hang-up) and waits for the CDR writes, so the
store, which stops after us, has them.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.calls.calltest import CallTester
from goip_tw.calls.cdr import CdrRepository
from goip_tw.calls.controller import CallController
from goip_tw.calls.linestate import LineStates
from goip_tw.calls.modemside import ModemLines
from goip_tw.calls.sipside import SipSide

log = Logger()


class CallsService(service.Service):
    name = "calls"

    def __init__(self, gateway, media=None):
        self.gateway = gateway
        self.media = media
        self.controller: CallController | None = None
        self.lines: ModemLines | None = None
        self.sip_side: SipSide | None = None
        self.tester: CallTester | None = None
        self.cdrs: CdrRepository | None = None
        self.line_states: LineStates | None = None

    def _media(self):
        if self.media is not None:
            return self.media
        from goip_tw.calls.mediaside import MediaSide

        return MediaSide.from_gateway(self.gateway, self)

    def startService(self):
        super().startService()
        g = self.gateway
        reactor = g.reactor
        self.line_states = LineStates(g.events, reactor)
        self.cdrs = CdrRepository(g.store, g.config.calls.short_call_seconds)
        # The SIM layer (when present) says which lines are enabled and within their
        # SIM's limits (F-472/473) and how long each SIM has talked (F-421).
        sim = g.subsystem("sim")
        self.lines = ModemLines(reactor, status_extra=getattr(sim, "call_status", None))
        modems = g.subsystem("modems")
        for line in getattr(modems, "lines", ()) or ():
            self.lines.add_line(line.number, line)
        media = self._media()
        sip = g.subsystem("sip")
        self.sip_side = SipSide(sip, media)
        self.controller = CallController(
            clock=reactor, sip=self.sip_side, lines=self.lines, media=media,
            line_states=self.line_states, calls_config=lambda: g.config.calls,
            dtmf_mode=lambda: g.config.media.dtmf_mode, cdrs=self.cdrs, events=g.events)
        self.lines.controller = self.controller
        self.sip_side.controller = self.controller
        if sip is not None and hasattr(sip, "set_call_handler"):
            sip.set_call_handler(self.sip_side)
        self.tester = CallTester(self.controller)
        ctl = self.controller

        def loaded(totals):
            for iccid, seconds in totals.items():
                ctl.talk_seconds[iccid] = ctl.talk_seconds.get(iccid, 0.0) + seconds
        self.cdrs.talk_by_iccid().addCallbacks(loaded, lambda f: log.warn(
            "talk time totals not loaded: {error}", error=f.getErrorMessage()))
        log.info("calls ready on lines {lines}", lines=self.lines.line_numbers())

    def stopService(self):
        super().stopService()
        if self.controller is None:
            return None
        self.controller.hangup_all()
        pending = list(self.controller.pending_cdrs)
        if not pending:
            return None
        return defer.DeferredList(pending, consumeErrors=True)

    def reconfig(self, old, new, changed):
        """Call settings are read per call; only the short-call threshold is cached."""
        if self.cdrs is not None:
            self.cdrs.short_call_seconds = new.calls.short_call_seconds

    def health_state(self) -> str:
        if self.controller is None:
            return "stopped"
        return f"{len(self.controller.calls)} calls"

    # -- API for the web layer ---------------------------------------------------------

    def line_states_snapshot(self) -> dict:
        return self.line_states.snapshot() if self.line_states is not None else {}

    def call_test(self, line, number, seconds):
        """F-508: Deferred[CallTestResult]; CallTestError for a bad request."""
        return self.tester.run(line, number, seconds)

    def recent_cdrs(self, limit: int = 50, line: int | None = None):
        """Deferred list of CDR dicts, newest first (JSON-ready)."""
        return self.cdrs.recent(limit, line).addCallback(lambda rows: [dict(r) for r in rows])

    def figures(self, line: int | None = None, iccid: str | None = None,
                since: float | None = None):
        """Deferred dict: total, connected, ASR, ACD, minutes billed, run counters."""
        def as_dict(f):
            return {"total": f.total, "connected": f.connected, "asr": f.asr, "acd": f.acd,
                    "talk_seconds": f.talk_seconds, "billed_periods": f.billed_periods,
                    "consecutive_no_answer": f.consecutive_no_answer,
                    "consecutive_short": f.consecutive_short,
                    "consecutive_no_ring": f.consecutive_no_ring}
        return self.cdrs.figures(line, iccid, since).addCallback(as_dict)


def build_service(gateway):
    return CallsService(gateway)
