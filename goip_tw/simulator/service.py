"""The simulator as a gateway subsystem (F-106 embedded default).

``build_service(gateway)`` returns ``None`` when real modems are configured (or
``[simulator] enabled = "off"``).  Otherwise the service owns a
:class:`~goip_tw.simulator.network.Network` whose modules keep stable links in
``link_dir``; ``service.network.modules`` gives each module's ``at_path``,
``audio_path`` and ``switch_slot``.  It starts before the modem service, so the
ptys exist when the lines open them.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.logger import Logger

from .network import Network

log = Logger()


def should_run(config) -> bool:
    cfg = config.simulator
    if cfg.enabled != "auto":
        return cfg.enabled == "on"
    modems = getattr(config, "modems", None)
    return not getattr(modems, "lines", ())


def build_network(reactor, cfg, link_dir: str | None) -> Network:
    network = Network(reactor, link_dir=link_dir, reg_delay=cfg.reg_delay,
                      ringback=cfg.ringback)
    for i in range(cfg.modules):
        dialect = cfg.dialect
        if dialect == "mixed":
            dialect = "quectel" if i % 2 == 0 else "simcom"
        network.add_module(dialect, cfg.slots, pin=cfg.sim_pin or None)
    network.add_demo_phones(echo=cfg.echo_number, sms_echo=cfg.sms_echo_number)
    return network


class SimulatorService(service.Service):
    name = "simulator"

    def __init__(self, reactor, network: Network, *, control_port: int = -1,
                 announce=None, events=None):
        self.reactor = reactor
        self.network = network
        self.control_port = control_port
        self.announce = announce
        self.port = None
        if events is not None:
            network.listeners.append(
                lambda event: events.publish(f"simulator.{event['kind']}", **{
                    k: v for k, v in event.items() if k != "kind"}))

    def startService(self):
        super().startService()
        self.network.start()
        if self.control_port >= 0:
            from .control import listen_control

            self.port = listen_control(self.reactor, self.network, self.control_port)
            url = f"simulator control: http://127.0.0.1:{self.port.getHost().port}/"
            if self.announce is not None:
                self.announce(url)
            else:
                log.info("{url}", url=url)

    def stopService(self):
        super().stopService()
        self.network.stop()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None

    def health_state(self) -> str:
        modules = self.network.modules
        registered = sum(1 for m in modules if m.registered)
        return f"{len(modules)} simulated modules, {registered} registered"


def build_service(gateway):
    config = gateway.config
    if not should_run(config):
        return None
    cfg = config.simulator
    link_dir = cfg.link_dir or os.path.join(gateway.data_dir, "sim-devices")
    network = build_network(gateway.reactor, cfg, link_dir)
    return SimulatorService(gateway.reactor, network, control_port=cfg.control_port,
                            announce=getattr(gateway, "announce", None),
                            events=getattr(gateway, "events", None))
