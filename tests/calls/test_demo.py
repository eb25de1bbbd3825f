"""The try-it-now demo through the real service tree (issue 7 "Done when").

The simulated default: GatewayService with simulated modules, the embedded proxy
with the generated softphone account, the echo phone.  baresip registers with the
printed account, calls the echo number through a simulated line and hears itself
(its 440 Hz comes back).
"""

from __future__ import annotations

import glob
import re

import pytest_twisted
from twisted.internet import reactor, task

from goip_tw.calls.demo import demo_account, demo_lines, demo_voip_settings
from goip_tw.config import model
from goip_tw.config.manager import ConfigManager
from tests.peers.harness import free_port, poll_until

from .test_e2e_peers import dominant

LINE_RE = re.compile(r"^softphone: sip:(?P<user>[^@]+)@(?P<host>[^:]+):(?P<port>\d+) "
                     r"password=(?P<password>\S+)$")


def test_demo_settings_and_lines():
    config = model.default_config()
    settings = demo_voip_settings(config)
    assert settings["proxy_enabled"] is True and len(settings["proxy_password"]) >= 16
    assert demo_voip_settings(model.default_config()) != settings  # random each time
    import attrs

    config = attrs.evolve(config, voip=attrs.evolve(config.voip, **settings))
    assert demo_voip_settings(config) == {}                      # kept once stored
    lines = demo_lines(config, "127.0.0.1", 5060)
    m = LINE_RE.match(lines[0])
    assert m and (m["user"], m["password"]) == demo_account(config)
    assert lines[1] == f"echo test number: {config.simulator.echo_number}"


@pytest_twisted.inlineCallbacks
def test_softphone_calls_echo_number_and_hears_itself(tmp_path, baresip_factory,
                                                       monkeypatch):
    from goip_tw.gateway import GatewayService

    monkeypatch.setattr("goip_tw.store.migrations.AREA_MODULES", ("goip_tw.calls.schema",))
    sip_port = free_port()
    overrides = {"simulator": {"modules": 2, "slots": 1, "reg_delay": 0.2},
                 "sip": {"bind_address": "127.0.0.1", "local_port": sip_port, "tcp": False},
                 "media": {"public_address": "127.0.0.1"}}
    manager = ConfigManager(str(tmp_path / "goip.toml"), overrides)
    manager.persist("voip", **demo_voip_settings(manager.config))
    gateway = GatewayService(manager, str(tmp_path), reactor=reactor, subsystems=(
        ("simulator", "goip_tw.simulator.service"), ("modems", "goip_tw.modem.service"),
        ("media", "goip_tw.media.service"), ("sip", "goip_tw.sip.service"),
        ("calls", "goip_tw.calls.service")))
    gateway.startService()
    try:
        lines = demo_lines(manager.config, "127.0.0.1", gateway.subsystem("sip").port)
        account = LINE_RE.match(lines[0])
        number = lines[1].split(": ", 1)[1]
        modems = gateway.subsystem("modems")
        yield poll_until(reactor, lambda: all(ln.state == "registered"
                                              for ln in modems.lines), timeout=20)
        phone = baresip_factory(account["user"], password=account["password"],
                                registrar=f"{account['host']}:{account['port']}")
        yield phone.wait_event(reactor, "REGISTER_OK", timeout=10)
        phone.command("dial", f"sip:{number}@{account['host']}:{account['port']}")
        yield phone.wait_event(reactor, "CALL_ESTABLISHED", timeout=20)
        yield task.deferLater(reactor, 4, lambda: None)
        phone.command("hangup")
        yield phone.wait_event(reactor, "CALL_CLOSED", timeout=10)
        calls = gateway.subsystem("calls")
        yield poll_until(reactor, lambda: not calls.controller.calls
                         and not calls.controller.pending_cdrs, 10)
        dumps = glob.glob(str(phone.workdir / "dump-*-dec.wav"))
        assert dumps, phone.log_text()[-2000:]
        freq, seconds, rms = dominant(dumps[0])
        assert seconds > 1 and rms > 300 and freq == 440, (freq, seconds, rms)
        rows = yield calls.recent_cdrs()
        assert rows[0]["callee_before"] in (number, number.lstrip("+"))
        assert rows[0]["answer_time"] is not None and rows[0]["line"] in (1, 2)
        figures = yield calls.figures(line=rows[0]["line"])
        assert figures["total"] == 1 and figures["asr"] == 1.0 and figures["acd"] > 3
        assert calls.line_states_snapshot()[rows[0]["line"]]["state"] == "IDLE"
    finally:
        yield gateway.stopService()
