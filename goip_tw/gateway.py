"""The composition root: the gateway's service tree.

``GatewayService`` owns the shared pieces (config manager, store, event bus) and
one named child service per subsystem.  Children start in dependency order (store
first, web last) and stop in reverse, so the web UI is gone before the lines stop
and the store closes only after everything that writes to it has stopped.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import time

from twisted.application import service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger

from goip_tw import __version__
from goip_tw.events import EventBus
from goip_tw.store.eventlog import EventLog
from goip_tw.store.sqlite import SqliteStore

#: after this long the subsystems have built what they keep (see freeze_startup_objects)
STARTUP_SETTLE_SECONDS = 10.0

#: (name, module providing build_service(gateway)); order = start order.
SUBSYSTEMS = (
    ("simulator", "goip_tw.simulator.service"),
    ("modems", "goip_tw.modem.service"),
    ("media", "goip_tw.media.service"),
    ("sip", "goip_tw.sip.service"),
    ("calls", "goip_tw.calls.service"),
    ("sms", "goip_tw.sms.service"),
    ("sms_inbound", "goip_tw.sms.inbound_service"),
    ("smpp", "goip_tw.smpp.service"),
    ("web", "goip_tw.web.service"),
)


class StoreService(service.Service):
    """Opens the store first and closes it last."""

    name = "store"

    def __init__(self, store):
        self.store = store
        self.ready = None

    def startService(self):
        super().startService()
        # Jobs queue behind the migration, so later services may write at once.
        self.ready = self.store.start()
        self.ready.addErrback(self._failed)

    def _failed(self, failure):
        from twisted.logger import Logger

        Logger().failure("the store could not be opened: {path}", failure, path=self.store.path)
        return None

    def stopService(self):
        super().stopService()
        return self.store.stop()


class GatewayService(service.MultiService):
    log = Logger()

    def __init__(self, config_manager, data_dir: str, reactor=None, subsystems=SUBSYSTEMS):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _r
            reactor = _r
        self.reactor = reactor
        self.config_manager = config_manager
        self.data_dir = data_dir
        self.events = EventBus()
        self.started_at = None
        self._freeze_call = None  # the pending freeze_startup_objects (a real process only)
        cfg = self.config
        self.store = SqliteStore(os.path.join(data_dir, cfg.store.sqlite_file), reactor=reactor)
        self.event_log = EventLog(self.store)
        StoreService(self.store).setServiceParent(self)
        self._subsystems = {"store": self.store}
        self.console_lines: list[str] = []
        self.demo = self._prepare_demo()
        for name, module in subsystems:
            svc = self._build(name, module)
            if svc is not None:
                svc.setServiceParent(self)
        config_manager.listen(self._config_changed)

    @property
    def config(self):
        return self.config_manager.config

    def _build(self, name, module):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                return None
            raise
        svc = mod.build_service(self)
        if svc is None:
            return None
        if getattr(svc, "name", None) is None:
            svc.setName(name)
        self._subsystems[name] = svc
        return svc

    def _prepare_demo(self) -> bool:
        """The simulated default is a try-it-now demo: the embedded proxy gets a
        softphone account with a generated password, stored in the config file."""
        try:
            from goip_tw.calls.demo import demo_voip_settings
            from goip_tw.simulator.service import should_run
        except ImportError:
            return False
        if not should_run(self.config):
            return False
        settings = demo_voip_settings(self.config)
        if settings:
            self.config_manager.persist("voip", **settings)
        return True

    def _announce_demo(self):
        from goip_tw.calls.demo import demo_lines

        sip = self.subsystem("sip")
        if sip is None or not getattr(sip, "port", None):
            return
        bind = self.config.sip.bind_address
        host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
        for line in demo_lines(self.config, host, sip.port):
            self.announce(line)
        if self.config.simulator.sms_echo_number:
            self.announce(f"sms echo number: {self.config.simulator.sms_echo_number}")

    def subsystem(self, name: str):
        """The named subsystem's service (or None when this build has none)."""
        return self._subsystems.get(name)

    def announce(self, line: str) -> None:
        """A line for the person at the console (the demo account, the web URL)."""
        self.console_lines.append(line)
        self.log.info("{console_line}", console_line=line)
        # The real console, not twistd's log-capturing stdout: scripts parse this line.
        out = sys.__stdout__
        if out is not None:
            out.write(line + "\n")
            out.flush()

    # -- twistd hooks ----------------------------------------------------------------

    def setServiceParent(self, parent):
        super().setServiceParent(parent)
        if self.config.logging.format == "json" and hasattr(parent, "setComponent"):
            from goip_tw.logging import json_observer

            parent.setComponent(ILogObserver, json_observer())

    def startService(self):
        self.started_at = time.time()
        self.log.info("goip-tw {version} starting; data in {data_dir}",
                      version=__version__, data_dir=self.data_dir)
        if self.reactor is _global_reactor():
            signal.signal(signal.SIGHUP, lambda *a: self.reactor.callFromThread(self.reload))
            self._freeze_call = self.reactor.callLater(STARTUP_SETTLE_SECONDS,
                                                       self.freeze_startup_objects)
        super().startService()
        if self.demo:
            self._announce_demo()
        self.event_log.append("gateway", "started", version=__version__)

    def freeze_startup_objects(self) -> int:
        """Keep the objects of a started gateway out of every later garbage collection.

        A full collection scans every tracked object, and media waits for it:
        the idle gateway holds ~70,000 (modules, classes, services), which took
        ~29 ms per full collection on the test VM, a gap in every call's RTP.
        Frozen (``gc.freeze``), they are never scanned again; what calls, SMS
        and requests create later is collected as before.  Returns how many
        objects were frozen."""
        gc.collect()
        gc.freeze()
        self._freeze_call = None
        frozen = gc.get_freeze_count()
        self.log.info("{n} startup objects kept out of garbage collection", n=frozen)
        return frozen

    @defer.inlineCallbacks
    def stopService(self):
        if self._freeze_call is not None and self._freeze_call.active():
            self._freeze_call.cancel()
        self._freeze_call = None
        self.log.info("goip-tw stopping")
        yield self.event_log.append("gateway", "stopping")
        yield super().stopService()
        self.log.info("goip-tw stopped cleanly")

    def restart(self):
        """F-512 restart: stop every service cleanly, then exec the same command line."""
        self.log.warn("restart requested")
        self.event_log.append("gateway", "restart requested", level="warn")
        if self.reactor is not _global_reactor():
            return

        def reexec():
            os.execv(sys.executable, [sys.executable] + sys.argv)

        self.reactor.addSystemEventTrigger("after", "shutdown", reexec)
        self.reactor.callLater(0, self.reactor.stop)

    def factory_reset(self):
        """F-512 factory reset: every setting back to its default (the previous file is
        kept as ``.bak``), then restart.  Stored data (SMS, CDRs) is kept: it is the
        operator's record, not configuration."""
        from goip_tw.config import files
        from goip_tw.config.model import GatewayConfig

        self.log.warn("factory reset requested")
        files.save(self.config_manager.path, GatewayConfig())
        self.restart()

    def reload(self):
        """SIGHUP: re-read the config file and tell services what changed."""
        self.log.info("SIGHUP: reloading {path}", path=self.config_manager.path)
        return self.config_manager.reload()

    def _config_changed(self, old, new, changed):
        for svc in self:
            reconfig = getattr(svc, "reconfig", None)
            if reconfig is not None:
                try:
                    reconfig(old, new, changed)
                except Exception:
                    self.log.failure("{name} failed to apply new config", name=svc.name)

    # -- status ----------------------------------------------------------------------

    def health(self) -> dict:
        """What /health shows: nothing private."""
        services = {}
        for svc in self:
            state = getattr(svc, "health_state", None)
            services[svc.name] = state() if callable(state) else (
                "running" if svc.running else "stopped")
        return {
            "status": "ok" if self.running else "stopping",
            "version": __version__,
            "uptime": round(time.time() - self.started_at, 1) if self.started_at else 0,
            "services": services,
        }


def _global_reactor():
    from twisted.internet import reactor

    return reactor
