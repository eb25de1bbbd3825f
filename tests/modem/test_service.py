"""The modems subsystem as the gateway builds it, on the simulator: 32 lines come up,
one is unplugged and replugged while the others carry on (issue 4 "done when")."""

import attrs
import pytest_twisted
from twisted.application import service
from twisted.internet import reactor

from goip_tw.config.model import default_config
from goip_tw.events import EventBus
from goip_tw.modem import service as modem_service
from goip_tw.simulator import service as sim_service

from .simhelp import wait_until


class FakeGateway:
    def __init__(self, config, data_dir):
        self.config = config
        self.data_dir = data_dir
        self.reactor = reactor
        self.events = EventBus()
        self._subs = {}
        self.root = service.MultiService()

    def subsystem(self, name):
        return self._subs.get(name)

    def add(self, name, svc):
        self._subs[name] = svc
        svc.setServiceParent(self.root)


def _config(n):
    cfg = default_config()
    sim = attrs.evolve(cfg.simulator, modules=n, reg_delay=0.05, slots=1)
    modems = attrs.evolve(cfg.modems, watchdog_interval=30.0, registration_poll=30.0,
                          replug_poll=0.5)
    return attrs.evolve(cfg, simulator=sim, modems=modems)


@pytest_twisted.inlineCallbacks
def test_32_lines_register_and_survive_one_replug(tmp_path):
    gw = FakeGateway(_config(32), str(tmp_path))
    gw.add("simulator", sim_service.build_service(gw))
    modems = modem_service.build_service(gw)
    gw.add("modems", modems)
    states = []
    gw.events.subscribe("line.state", lambda topic, **f: states.append((f["line"], f["state"])))
    gw.root.startService()
    try:
        yield wait_until(lambda: all(ln.state == "registered" for ln in modems.lines),
                         timeout=60, step=0.1, what="32 lines registered")
        lines = modem_service.lines_json(gw)
        assert lines == modems.lines_json()
        assert all(ln["number"] == ln["own_number"] and ln["number"] for ln in lines)
        assert len(lines) == 32 and [ln["line"] for ln in lines] == list(range(1, 33))
        assert len({ln["imei"] for ln in lines}) == 32
        assert all(ln["key"].startswith(str(tmp_path)) for ln in lines)
        network = gw.subsystem("simulator").network
        victim = network.modules[6]
        states.clear()
        victim.replug()
        yield wait_until(lambda: (7, "absent") in states, timeout=10, what="line 7 absent")
        yield wait_until(lambda: modems.line(7).state == "registered", timeout=20,
                         what="line 7 back")
        others = {n for n, s in states if n != 7}
        assert others == set(), f"other lines changed state: {others}"
        assert modems.health_state() == "32/32 registered"
    finally:
        yield gw.root.stopService()


def test_configured_lines_take_precedence(tmp_path):
    from goip_tw.config.sections.modems import ModemLineConfig
    cfg = default_config()
    line = ModemLineConfig(port=str(tmp_path / "usb-Quectel_EC25-if02"), name="office")
    cfg = attrs.evolve(cfg, modems=attrs.evolve(cfg.modems, lines=(line,)))
    gw = FakeGateway(cfg, str(tmp_path))
    assert sim_service.build_service(gw) is None
    svc = modem_service.build_service(gw)
    assert [ln.name for ln in svc.lines] == ["office"]
    assert svc.statuses()[0]["state"] == "absent"
