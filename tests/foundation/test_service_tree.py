"""The service tree: named children, dependency order, reverse stop."""

import gc

import pytest
import pytest_twisted
from twisted.application import service
from twisted.internet import reactor

from goip_tw import gateway as gw
from goip_tw.config.manager import ConfigManager


class Recorder(service.Service):
    def __init__(self, name, log):
        self.name = name
        self.log = log

    def startService(self):
        super().startService()
        self.log.append(("start", self.name))

    def stopService(self):
        super().stopService()
        self.log.append(("stop", self.name))


@pytest_twisted.inlineCallbacks
def test_children_start_in_order_and_stop_in_reverse(tmp_path, monkeypatch):
    log = []
    import types
    import sys

    names = ["simulator", "modems", "sip", "calls", "web"]
    for name in names:
        mod = types.ModuleType(f"fake_{name}")
        mod.build_service = (lambda n: lambda g: Recorder(n, log))(name)
        monkeypatch.setitem(sys.modules, f"fake_{name}", mod)
    manager = ConfigManager(str(tmp_path / "goip.toml"))
    g = gw.GatewayService(manager, str(tmp_path), reactor=reactor,
                          subsystems=[(n, f"fake_{n}") for n in names])
    assert [s.name for s in g] == ["store"] + names
    assert g.subsystem("sip").name == "sip" and g.subsystem("store") is g.store
    g.startService()
    # a real process freezes its startup objects once the subsystems settled
    assert g._freeze_call.active()
    assert g._freeze_call.getTime() - reactor.seconds() == pytest.approx(
        gw.STARTUP_SETTLE_SECONDS, abs=1.0)
    yield g.store.execute("SELECT 1")
    yield g.stopService()
    assert g._freeze_call is None  # a stopped gateway leaves no pending call
    assert log == [("start", n) for n in names] + [("stop", n) for n in reversed(names)]
    assert not g.store.running  # the store, first to start, closed last


def test_missing_subsystem_module_is_skipped_but_broken_one_is_not(tmp_path, monkeypatch):
    pkg = tmp_path / "brokenarea"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "service.py").write_text("import goip_tw.nosuchhelper\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = ConfigManager(str(tmp_path / "goip.toml"))
    g = gw.GatewayService(manager, str(tmp_path), reactor=reactor,
                          subsystems=[("nope", "goip_tw.nosuchpackage.service")])
    assert [s.name for s in g] == ["store"]
    import pytest

    with pytest.raises(ModuleNotFoundError):
        gw.GatewayService(manager, str(tmp_path), reactor=reactor,
                          subsystems=[("x", "brokenarea.service")])


def test_freezing_the_startup_objects_keeps_them_out_of_later_collections(tmp_path):
    manager = ConfigManager(str(tmp_path / "goip.toml"))
    g = gw.GatewayService(manager, str(tmp_path), reactor=reactor, subsystems=[])
    survivor = {"kept": [1, 2, 3]}  # a tracked object that exists before the freeze
    try:
        frozen = g.freeze_startup_objects()
        assert frozen > 0 and gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())  # no generation holds it
        assert gc.is_tracked(survivor)
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual
    assert any(o is survivor for o in gc.get_objects())
