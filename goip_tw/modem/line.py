"""One line = one module: life cycle, hot plug, watchdog (F-101, F-103, F-104, F-105).

States and the transitions allowed between them (anything else is a bug and raises)::

    absent ──open──▶ initialising ──PIN needed / rejected──▶ sim_locked
       ▲                 │  └──SIM ready──▶ searching ◀──lost──▶ registered
       └──port lost──────┴──────────────── (from every state) ──────┘
    failed: the watchdog gave up, or no SIM; a replug or a SIM URC starts over.

The watchdog escalates when an ``AT`` probe (or initialisation) fails:
1. probe again soon; 2. ``AT+CFUN=1,1`` (module reset, ports re-enumerate);
3. close and reopen the ports; 4. give up: state ``failed``, reason in the event log.
A successful probe resets the ladder.

The Modem object is replaced on every (re)open; callers hold the line, not the modem:
``line.add_observer(fn)`` gets every modem event plus :class:`LineStateChanged`, and
``line.sms_handler`` / ``line.report_handler`` are handed to each new Modem.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.modem import at, model
from goip_tw.modem.api import Modem, PinRejected
from goip_tw.modem.hotplug import NullWatcher
from goip_tw.modem.resolve import find_by_imei, imei_key
from goip_tw.modem.simswitch import NoSwitch

log = Logger()

STATES = ("absent", "initialising", "sim_locked", "searching", "registered", "failed")
TRANSITIONS = {
    "absent": {"initialising", "failed"},
    "initialising": {"absent", "initialising", "sim_locked", "searching", "failed"},
    "sim_locked": {"absent", "initialising", "searching", "failed"},
    "searching": {"absent", "initialising", "sim_locked", "registered", "failed"},
    "registered": {"absent", "initialising", "sim_locked", "searching", "failed"},
    "failed": {"absent", "initialising"},
}
SLOT_NAMES = "ABCD"


class LineService(service.Service):
    def __init__(self, number: int, cfg, options, *, reactor, clock=None, events=None,
                 event_log=None, watcher=None, switch=None, opener=None, voice_opener=None,
                 engine_timeouts: dict | None = None, claims: dict | None = None):
        self.number = number
        self.cfg = cfg
        self.options = options
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.events = events
        self.event_log = event_log
        self.watcher = watcher or NullWatcher()
        self.switch = switch or NoSwitch()
        self.opener = opener or self._open_serial
        self.voice_opener = voice_opener or self._open_voice
        self.name = cfg.name or f"line{number}"
        self.state = "absent"
        self.reason = "not started"
        self.modem: Modem | None = None
        self.engine: at.AtEngine | None = None
        self.voice = None
        self.sim_slot = 0
        self.registration: model.Registration | None = None
        self.signal: model.Signal | None = None
        self.operator: model.Operator | None = None
        self.volte: bool | None = None
        self.sms_handler = None
        self.report_handler = None
        self._observers = []
        self._gen = 0
        self._timers: dict[str, object] = {}
        self._level = 0
        self._pin_rejected = False
        self._gone_target = None
        self._closing: defer.Deferred | None = None
        self.history: list[tuple[str, str]] = []
        self.engine_timeouts = engine_timeouts
        self.enabled = cfg.enabled
        #: device path -> line, shared by the lines of one ModemsService (imei: lines
        #: must not probe a port another line holds)
        self.claims = claims if claims is not None else {}
        self._resolved: str | None = None
        self._resolving = False

    # ------------------------------------------------------------------ observers
    def add_observer(self, fn):
        self._observers.append(fn)

    def remove_observer(self, fn):
        if fn in self._observers:
            self._observers.remove(fn)

    def _emit(self, event):
        for fn in list(self._observers):
            try:
                fn(event)
            except Exception:
                log.failure("{line}: observer failed on {event}", line=self.name, event=event)

    def _publish(self, topic, **fields):
        if self.events is not None:
            self.events.publish(topic, line=self.number, **fields)

    def _log_event(self, event, level="info", **detail):
        if self.event_log is not None:
            d = self.event_log.append("modem", event, level=level, line=self.number, **detail)
            if isinstance(d, defer.Deferred):
                d.addErrback(lambda f: log.warn("event log write failed: {e}", e=f.getErrorMessage()))

    def _set_state(self, state: str, reason: str = ""):
        if state not in TRANSITIONS[self.state] and state != self.state:
            raise RuntimeError(f"{self.name}: illegal transition {self.state} -> {state}")
        previous, old_reason = self.state, self.reason
        self.state, self.reason = state, reason
        if previous == state and reason == old_reason:
            return
        self.history.append((state, reason))
        del self.history[:-50]
        log.info("{line}: {previous} -> {state} {reason}", line=self.name, previous=previous,
                 state=state, reason=reason)
        self._log_event("state", level="warn" if state in ("failed", "absent") else "info",
                        state=state, previous=previous, reason=reason)
        self._publish("line.state", state=state, previous=previous, reason=reason)
        self._emit(model.LineStateChanged(self.number, state, previous, reason))

    # ------------------------------------------------------------------ timers
    def _later(self, key, delay, fn, *args):
        self._cancel(key)
        self._timers[key] = self.clock.callLater(delay, self._fire, key, fn, *args)

    def _fire(self, key, fn, *args):
        self._timers.pop(key, None)
        fn(*args)

    def _cancel(self, *keys):
        for key in keys or list(self._timers):
            t = self._timers.pop(key, None)
            if t is not None and t.active():
                t.cancel()

    # ------------------------------------------------------------------ service
    def _watch_path(self) -> str:
        if imei_key(self.cfg.port):
            return os.path.join(self.options.scan_dir, "*")
        return self.cfg.port

    def startService(self):
        super().startService()
        self.watcher.watch(self._watch_path(), self._path_changed)
        self._open()

    def stopService(self):
        super().stopService()
        self._cancel()
        self.watcher.unwatch(self._watch_path(), self._path_changed)
        return self._close_ports()

    def _port_path(self) -> str | None:
        """The device to open: the configured path, or the one found for our IMEI."""
        if imei_key(self.cfg.port) is None:
            return self.cfg.port
        if self._resolved and os.path.exists(self._resolved):
            return self._resolved
        if self._resolved:
            self.claims.pop(self._resolved, None)
            self._resolved = None
        return None

    def _resolve(self):
        if self._resolving:
            return
        self._resolving = True
        imei = imei_key(self.cfg.port)
        others = [p for p, ln in self.claims.items() if ln is not self]
        d = find_by_imei(self.clock, imei, self.options.scan_dir, self.opener, skip=others)

        def done(path):
            self._resolving = False
            if not self.running:
                return
            if path is None:
                if self.state != "absent":
                    self._set_state("absent", f"no module with IMEI {imei}")
                self.reason = f"no module with IMEI {imei}"
                self._later("present", self.options.replug_poll, self._check_present)
                return
            self._resolved = path
            self.claims[path] = self
            self._open()

        def failed(f):
            self._resolving = False
            log.failure("{line}: IMEI scan failed", f, line=self.name)
        d.addCallbacks(done, failed)

    def _open_serial(self, path, engine):
        return at.open_serial(self.reactor, path, engine, self.cfg.baudrate)

    def _open_voice(self, path):
        from goip_tw.modem.audio import open_voice_port
        return open_voice_port(self.reactor, path, baudrate=self.cfg.baudrate, name=f"{self.name}-voice")

    def _path_changed(self, path):
        if not self.running:
            return
        if self._resolving:
            return
        if self.state == "absent" or (self.state == "failed" and self._gone_target is not None):
            # let udev / the simulator finish creating the link
            self._later("open", 0.2, self._open)

    def _check_present(self):
        if self.state == "absent":
            self._open()
        elif self.state == "failed" and self._gone_target is not None:
            if imei_key(self.cfg.port):
                return  # a gave-up IMEI line waits for a hot plug event, no re-scan loop
            path = self.cfg.port
            if os.path.realpath(path) != self._gone_target and os.path.exists(path):
                self._open()
            else:
                self._later("present", self.options.replug_poll, self._check_present)

    def _open(self):
        if not self.running or self.modem is not None or not self.enabled:
            return
        path = self._port_path()
        if path is None:
            self._resolve()
            return
        if imei_key(self.cfg.port) is None:
            self.claims[path] = self
        if not os.path.exists(path):
            if self.state != "absent":
                self._set_state("absent", "device not present")
            self._later("present", self.options.replug_poll, self._check_present)
            return
        self._gen += 1
        gen = self._gen
        engine = at.AtEngine(self.clock, name=self.name, timeouts=self.engine_timeouts)
        try:
            self.opener(path, engine)
        except Exception as exc:
            if self.state != "absent":
                self._set_state("absent", f"cannot open {path}: {exc}")
            self._later("present", self.options.replug_poll, self._check_present)
            return
        self._gone_target = None
        self.engine = engine
        engine.add_close_observer(lambda reason, g=gen: self._port_lost(g, reason))
        modem = self.modem = Modem(engine, self.clock, name=self.name, driver=self.cfg.driver,
                                   reassembly_timeout=self.options.reassembly_timeout)
        modem.sms_handler = self._on_sms
        modem.report_handler = self._on_report
        modem.add_observer(lambda ev, g=gen: self._modem_event(g, ev))
        self._open_voice_port()
        self._set_state("initialising", "port opened")
        self._initialise(gen).addErrback(self._init_failed, gen)

    def _open_voice_port(self):
        path = self.cfg.voice_port
        if not path or not os.path.exists(path):
            return
        try:
            self.voice = self.voice_opener(path)
        except Exception as exc:
            log.warn("{line}: voice port {path} not opened: {err}", line=self.name, path=path, err=exc)
            self.voice = None

    def _on_sms(self, sms):
        if self.sms_handler is None:
            return defer.fail(RuntimeError("no SMS handler yet"))
        return defer.maybeDeferred(self.sms_handler, self.number, sms)

    def _on_report(self, report):
        if self.report_handler is None:
            return defer.fail(RuntimeError("no report handler yet"))
        return defer.maybeDeferred(self.report_handler, self.number, report)

    # ------------------------------------------------------------------ bring-up
    @defer.inlineCallbacks
    def _initialise(self, gen):
        modem = self.modem
        ident = yield modem.initialise()
        if gen != self._gen:
            return
        want = imei_key(self.cfg.port)
        if want and ident.imei != want:
            # the links were reshuffled under us: find our module again
            if self._resolved:
                self.claims.pop(self._resolved, None)
            self._resolved = None
            self._reopen(f"module at that port has IMEI {ident.imei}, not {want}")
            return
        yield self._sim_setup(gen)

    @defer.inlineCallbacks
    def _sim_setup(self, gen, attempt=0):
        modem = self.modem
        status = yield modem.pin_status()
        if gen != self._gen:
            return
        if status in ("SIM PIN2", "SIM PUK2"):
            # TS 27.007 8.3: PIN1 is verified and the line works; only a PIN2-guarded
            # operation (fixed dialling) waits.  The configured PIN is PIN1's: sending
            # it as PIN2 would only spend PIN2 attempts towards PUK2.
            self._log_event("pin2_wanted", level="warn", status=status)
            status = "READY"
        if status == "SIM PIN":
            if not self.cfg.pin or self._pin_rejected:
                self._set_state("sim_locked", "PIN required" if not self.cfg.pin else "PIN was rejected")
                return
            try:
                status = yield modem.unlock(self.cfg.pin)
            except PinRejected as exc:
                self._pin_rejected = True
                self._log_event("pin_rejected", level="error")
                self._set_state("sim_locked", str(exc))
                return
        if status in ("SIM PUK", "PH-SIM PIN"):
            self._set_state("sim_locked", f"{status} required")
            return
        if status in ("NOT INSERTED", "SIM FAILURE"):
            self._set_state("failed", "no SIM card" if status == "NOT INSERTED" else "SIM failure")
            return
        if status != "READY":
            if attempt >= 10:
                self._set_state("failed", f"SIM not ready: {status}")
                return
            self._later("sim", 1.0, self._retry_sim, gen, attempt + 1)
            return
        yield modem.prepare_sim()
        if self.cfg.operator:
            try:
                yield modem.select_operator(self.cfg.operator)
            except at.AtError as exc:
                log.warn("{line}: operator {op} not selected: {err}", line=self.name,
                         op=self.cfg.operator, err=exc.result)
        if self.cfg.volte in ("on", "off"):
            try:
                yield modem.set_volte(self.cfg.volte == "on")
            except Exception as exc:
                log.warn("{line}: VoLTE not set: {err}", line=self.name, err=exc)
        if self.cfg.mic_gain >= 0 or self.cfg.speaker_gain >= 0:
            try:
                yield modem.set_gains(mic=self.cfg.mic_gain if self.cfg.mic_gain >= 0 else None,
                                      speaker=self.cfg.speaker_gain if self.cfg.speaker_gain >= 0 else None)
            except Exception as exc:
                log.warn("{line}: gains not set: {err}", line=self.name, err=exc)
        self.volte = yield modem.volte()
        if gen != self._gen:
            return
        self._set_state("searching", "SIM ready")
        self._level = 0
        yield self._poll(gen)
        self._later("watchdog", self.options.watchdog_interval, self._watchdog)
        self._later("sms", 0, self._drain, gen)

    def _retry_sim(self, gen, attempt):
        if gen == self._gen and self.modem is not None:
            self._sim_setup(gen, attempt).addErrback(self._init_failed, gen)

    def _init_failed(self, failure, gen):
        if gen != self._gen or failure.check(at.PortClosed) or not self.running:
            return
        log.warn("{line}: initialisation failed: {err}", line=self.name, err=failure.getErrorMessage())
        self._watchdog_failed(f"initialisation failed: {failure.getErrorMessage()}")

    # ------------------------------------------------------------------ polling
    @defer.inlineCallbacks
    def _poll(self, gen):
        modem = self.modem
        try:
            reg = yield modem.registration()
            sig = yield modem.signal()
            op = yield modem.operator() if reg.registered else defer.succeed(None)
            volte = yield modem.volte() if reg.registered else defer.succeed(self.volte)
        except at.PortClosed:
            return
        except at.AtError as exc:
            log.warn("{line}: status poll failed: {err}", line=self.name, err=exc)
            reg = sig = op = None
            volte = self.volte
        if gen != self._gen:
            return
        self.volte = volte
        if sig is not None:
            self.signal = sig
        if op is not None:
            self.operator = op
        if reg is not None:
            self._apply_registration(reg)
        self._publish("line.status", status=self.status())
        self._later("poll", self.options.registration_poll, self._timed_poll, gen)

    def _timed_poll(self, gen):
        if gen == self._gen and self.modem is not None:
            self._poll(gen).addErrback(lambda f: log.failure("{line}: poll", f, line=self.name))

    def _apply_registration(self, reg):
        self.registration = reg
        if self.state == "searching" and reg.registered:
            self._set_state("registered", f"{reg.state} {reg.technology or ''}".strip())
        elif self.state == "registered" and not reg.registered:
            self._set_state("searching", f"registration {reg.state}")

    def _drain(self, gen):
        if gen != self._gen or self.modem is None:
            return
        d = self.modem.drain_sms()
        d.addErrback(lambda f: None if f.check(at.PortClosed) else log.warn(
            "{line}: SMS drain failed: {err}", line=self.name, err=f.getErrorMessage()))
        d.addBoth(lambda _: self._later("sms", self.options.sms_poll, self._drain, gen)
                  if gen == self._gen and self.modem is not None else None)

    # ------------------------------------------------------------------ modem events
    def _modem_event(self, gen, ev):
        if gen != self._gen:
            return
        if isinstance(ev, model.RegistrationChanged):
            if self.state in ("searching", "registered"):
                was = self.state
                self._apply_registration(ev.registration)
                if self.state == "registered" and was != "registered":
                    # operator and technology are read by the poll; do it now
                    self._later("poll", 0, self._timed_poll, gen)
        elif isinstance(ev, model.SignalChanged):
            self.signal = ev.signal
        elif isinstance(ev, model.SimStatusChanged):
            if ev.status == "READY" and self.state in ("sim_locked", "failed"):
                self._set_state("initialising", "SIM ready")
                self._sim_setup(gen).addErrback(self._init_failed, gen)
            elif ev.status == "NOT INSERTED" and self.state not in ("absent", "failed"):
                self._set_state("failed", "SIM removed")
        elif isinstance(ev, model.PortLost):
            pass  # handled by _port_lost
        self._emit(ev)

    # ------------------------------------------------------------------ watchdog
    def _watchdog(self):
        modem = self.modem
        if modem is None or self.state in ("absent", "failed"):
            return
        eng = modem.engine
        if eng.timeouts_in_row >= 2:
            n, eng.timeouts_in_row = eng.timeouts_in_row, 0
            self._watchdog_failed(f"{n} commands in a row timed out")
            return
        if eng.busy() and eng.last_rx is not None and \
                self.clock.seconds() - eng.last_rx < self.options.watchdog_interval:
            self._later("watchdog", self.options.watchdog_interval, self._watchdog)
            return
        gen = self._gen
        d = modem.cmd("AT", kind="quick")

        def ok(_):
            if gen == self._gen:
                if self._level:
                    self._log_event("watchdog_recovered", level="info", level_reached=self._level)
                self._level = 0
                self._later("watchdog", self.options.watchdog_interval, self._watchdog)

        def bad(f):
            if gen != self._gen or f.check(at.PortClosed):
                return
            self._watchdog_failed(f"AT probe failed: {f.getErrorMessage()}")
        d.addCallbacks(ok, bad)

    def _watchdog_failed(self, why: str):
        self._level += 1
        level = self._level
        log.warn("{line}: watchdog step {step}: {why}", line=self.name, step=level, why=why)
        if level == 1:
            self._log_event("watchdog_probe", level="warn", reason=why)
            self._later("watchdog", min(5.0, self.options.watchdog_interval), self._watchdog)
        elif level == 2:
            self._log_event("watchdog_reset", level="warn", reason=why, action="AT+CFUN=1,1")
            modem = self.modem
            if modem is not None:
                modem.cmd("AT+CFUN=1,1", kind="quick").addErrback(lambda f: None)
                self._later("reset_reopen", 1.0, self._reopen, "module reset by watchdog")
        elif level == 3:
            self._log_event("watchdog_reopen", level="warn", reason=why)
            self._reopen("ports reopened by watchdog")
        else:
            self._log_event("watchdog_gave_up", level="error", reason=why)
            self._gone_target = os.path.realpath(self._port_path() or self.cfg.port)
            self._teardown(f"watchdog gave up: {why}", "failed")
            self._later("present", self.options.replug_poll, self._check_present)

    def _reopen(self, reason):
        self._teardown(reason, "absent")
        self._later("open", 0.5, self._open)

    # ------------------------------------------------------------------ loss / stop
    def _port_lost(self, gen, reason):
        if gen != self._gen:
            return
        self._teardown(f"port lost: {getattr(reason, 'value', reason)}", "absent", closed=True)
        if self.running:
            self._later("present", min(1.0, self.options.replug_poll), self._check_present)

    def _teardown(self, reason, state, closed=False):
        self._cancel("poll", "sms", "watchdog", "sim", "reset_reopen")
        modem, self.modem = self.modem, None
        engine, self.engine = self.engine, None
        voice, self.voice = self.voice, None
        if modem is not None:
            modem.stop()
            modem.calls_lost()  # CallEnded for every call, while observers still listen
        self._gen += 1
        if engine is not None and not closed:
            engine.close()
        if voice is not None:
            voice.close()
        self.registration = None
        if self.running and self.state != state:
            self._set_state(state, reason)

    def _close_ports(self):
        engine = self.engine
        waits = []
        if engine is not None and engine.connected:
            d = defer.Deferred()
            engine.add_close_observer(lambda r: d.callback(None) if not d.called else None)
            waits.append(d)
        voice = self.voice
        if voice is not None and not voice.closed:
            d2 = defer.Deferred()
            voice.add_close_observer(lambda v: d2.callback(None) if not d2.called else None)
            waits.append(d2)
        self._teardown("service stopped", self.state)
        if not waits:
            return defer.succeed(None)
        done = defer.DeferredList(waits)
        timeout = self.clock.callLater(2.0, lambda: [w.callback(None) for w in waits if not w.called])
        done.addBoth(lambda r: timeout.cancel() if timeout.active() else None)
        return done

    # ------------------------------------------------------------------ operator actions
    @defer.inlineCallbacks
    def unlock(self, pin: str):
        """An operator typed a PIN (web UI): one attempt, no automatic retry."""
        if self.modem is None:
            raise at.PortClosed("AT+CPIN", "module absent")
        gen = self._gen
        yield self.modem.unlock(pin)
        self._pin_rejected = False
        if self.state == "sim_locked":
            self._set_state("initialising", "PIN accepted")
            yield self._sim_setup(gen)

    @defer.inlineCallbacks
    def switch_sim(self, slot: int):
        """F-104: bind another slot, then re-initialise SIM and line."""
        yield self.switch.select(slot)
        self.sim_slot = slot
        self._pin_rejected = False
        self._log_event("sim_switched", slot=SLOT_NAMES[slot])
        if self.modem is not None and self.state not in ("absent",):
            gen = self._gen
            self._cancel("poll", "sms", "watchdog", "sim")
            self._set_state("initialising", f"SIM slot {SLOT_NAMES[slot]} selected")
            yield self._sim_setup(gen)

    def set_enabled(self, enabled: bool):
        """F-101 run-time switch (status page checkbox): a disabled line closes its
        ports (calls end, queued SMS stay queued) and shows as absent "disabled"."""
        enabled = bool(enabled)
        if enabled == self.enabled:
            return defer.succeed(self.state)
        self.enabled = enabled
        self._log_event("enabled" if enabled else "disabled")
        if not enabled:
            self._cancel()
            d = self._close_ports()
            if self.running:
                self._set_state("absent", "disabled")
            return d.addCallback(lambda _: self.state)
        self._open()
        return defer.succeed(self.state)

    @defer.inlineCallbacks
    def reconfigure(self, cfg, options):
        """Apply a changed line config: restart the line in place (observers and
        handlers stay attached)."""
        was_running = self.running
        if was_running:
            yield self.stopService()
        self.cfg, self.options = cfg, options
        self.enabled = cfg.enabled
        self._pin_rejected = False
        if was_running:
            self.startService()

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """One object of ``GET /api/lines`` (F-304/F-305/F-307)."""
        m = self.modem
        ident = m.identity if m is not None else None
        sim = m.sim if m is not None else None
        reg, sig, op = self.registration, self.signal, self.operator
        return {
            "line": self.number,
            "name": self.name,
            "enabled": self.enabled,
            "state": self.state,
            "reason": self.reason,
            "key": self.cfg.port,
            "device": self._port_path(),
            "driver": m.driver.name if m is not None else None,
            "manufacturer": ident.manufacturer if ident else None,
            "model": ident.model if ident else None,
            "firmware": ident.firmware if ident else None,
            "imei": ident.imei if ident else None,
            "sim_slot": SLOT_NAMES[self.sim_slot],
            "sim_slots": self.switch.slots if self.switch.name != "none" else self.cfg.sim_slots,
            "iccid": sim.iccid if sim else None,
            "imsi": sim.imsi if sim else None,
            "own_number": sim.own_number if sim else None,
            "number": sim.own_number if sim else None,
            "registration": reg.state if reg else None,
            "technology": reg.technology if reg else None,
            "signal": sig.rssi if sig else None,
            "signal_dbm": sig.dbm if sig else None,
            "operator": op.name if op else None,
            "operator_code": op.mccmnc if op else None,
            "operator_mode": op.mode if op else None,
            "volte": self.volte,
            "calls": len(m.calls) if m is not None else 0,
        }
