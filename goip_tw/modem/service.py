"""The modems subsystem: one :class:`LineService` per configured module.

``build_service(gateway)`` returns the MultiService the gateway mounts as "modems".
With no ``[[modems.lines]]`` configured it serves the simulator's modules (F-106),
using the simulator's stable links when it keeps them.  ``lines_json(gateway)`` is
what ``GET /api/lines`` returns.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.logger import Logger

from goip_tw.config.sections.modems import ModemLineConfig
from goip_tw.modem.hotplug import InotifyWatcher, NullWatcher
from goip_tw.modem.line import LineService
from goip_tw.modem.simswitch import GpioSwitch, NoSwitch, QdsimSwitch, SimulatorSwitch

log = Logger()


class ModemsService(service.MultiService):
    """Lines in configuration order (line numbers 1..N, F-101)."""

    def __init__(self, watcher=None):
        super().__init__()
        self.lines: list[LineService] = []
        self.watcher = watcher or NullWatcher()
        self.claims: dict = {}

    def add_line(self, line: LineService):
        self.lines.append(line)
        line.setServiceParent(self)

    def line(self, number: int) -> LineService | None:
        for ln in self.lines:
            if ln.number == number:
                return ln
        return None

    def stopService(self):
        d = super().stopService()
        d.addBoth(lambda r: (self.watcher.stop(), r)[1])
        return d

    def reconfig(self, old, new, changed):
        """Gateway hook after a config reload.  Poll intervals apply at once; a changed
        line restarts in place; adding or removing lines needs a restart (line
        numbers must stay stable while the gateway runs)."""
        if not any(key.startswith("modems") for key in changed):
            return None
        options = new.modems
        work = []
        for line in self.lines:
            line.options = options
        configured = list(options.lines)
        if old.modems.lines and len(configured) == len(old.modems.lines):
            for line, cfg in zip(self.lines, configured):
                if cfg != line.cfg:
                    work.append(line.reconfigure(cfg, options))
        elif tuple(old.modems.lines) != tuple(configured):
            log.warn("modem lines added or removed: restart the gateway to apply")
        from twisted.internet import defer
        return defer.DeferredList(work) if work else None

    def statuses(self) -> list[dict]:
        return [ln.status() for ln in self.lines]

    lines_json = statuses  # what goip_tw/web/app.py calls for GET /api/lines

    def health_state(self) -> str:
        states = [ln.state for ln in self.lines]
        return f"{states.count('registered')}/{len(states)} registered"


def _simulated_lines(gateway):
    """(config, switch_fn) for each simulated module, or [] without a simulator."""
    sim = gateway.subsystem("simulator") if hasattr(gateway, "subsystem") else None
    network = getattr(sim, "network", None)
    if network is None:
        return []
    out = []
    link_dir = getattr(network, "link_dir", None)
    sim_cfg = getattr(gateway.config, "simulator", None)
    pin = getattr(sim_cfg, "sim_pin", "") or ""
    for m in network.modules:
        if link_dir:
            port = os.path.join(link_dir, f"module{m.number}-at")
            voice = os.path.join(link_dir, f"module{m.number}-audio")
        else:
            if not m.plugged:
                m.start()
            port, voice = m.at_path, m.audio_path
        cfg = ModemLineConfig(port=port, voice_port=voice or "", name=f"line{m.number}",
                              sim_slots=len(m.slots), sim_switch="simulator", pin=pin)
        out.append((cfg, m))
    return out


def make_switch(cfg, reactor, line_ref, module=None):
    if cfg.sim_switch == "simulator" and module is not None:
        return SimulatorSwitch(module.switch_slot, len(module.slots))
    if cfg.sim_switch == "qdsim":
        return QdsimSwitch(lambda: line_ref[0].modem if line_ref else None)
    if cfg.sim_switch == "gpio":
        return GpioSwitch(reactor, cfg.gpio_chip, cfg.gpio_lines)
    return NoSwitch()


def build_service(gateway):
    reactor = gateway.reactor
    options = gateway.config.modems
    try:
        watcher = InotifyWatcher(reactor)
    except Exception:
        watcher = NullWatcher()
    svc = ModemsService(watcher)
    configured = [(cfg, None) for cfg in options.lines]
    entries = configured or _simulated_lines(gateway)
    events = getattr(gateway, "events", None)
    event_log = getattr(gateway, "event_log", None)
    for number, (cfg, module) in enumerate(entries, 1):
        if not cfg.enabled:
            continue
        ref: list = []
        line = LineService(number, cfg, options, reactor=reactor, events=events,
                           event_log=event_log, watcher=watcher,
                           switch=make_switch(cfg, reactor, ref, module), claims=svc.claims)
        ref.append(line)
        svc.add_line(line)
    return svc


def lines_json(gateway) -> list[dict]:
    """``GET /api/lines`` (admin): one object per line; see LineService.status()."""
    svc = gateway.subsystem("modems") if hasattr(gateway, "subsystem") else gateway
    if svc is None:
        return []
    return svc.statuses()
