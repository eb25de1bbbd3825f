"""The modem API: everything the gateway does with a module, with no AT in sight.

Contract (stable; calls/ and sms/ build on it)::

    modem = Modem(engine, clock, name="line1", driver="auto", imsi_hint=None)
    yield modem.initialise()           # -> Identity; echo off, CMEE, PDU mode, URCs, driver
    modem.identity / modem.driver.name # after initialise()

    # identity and SIM (F-105)
    yield modem.read_identity()        # -> Identity(manufacturer, model, firmware, imei)
    yield modem.read_sim_identity()    # -> SimIdentity(iccid, imsi, own_number)
    yield modem.pin_status()           # -> "READY" | "SIM PIN" | "SIM PUK" | "NOT INSERTED" | ...
    yield modem.unlock(pin)            # PinRejected on a wrong PIN; the same PIN is
    yield modem.unlock_pin2(pin2)      #   never sent twice (no automatic retry)

    # network (F-102, F-4A0)
    yield modem.registration()         # -> Registration(state, technology "2G"/"3G"/"4G", lac, cell)
    yield modem.signal()               # -> Signal(rssi 0-31/99, dbm)
    yield modem.operator()             # -> Operator(mode "auto"/"manual", name, mccmnc)
    yield modem.select_operator(None | "46000")
    yield modem.volte()                # -> True | False | None (unknown)
    yield modem.set_volte(True)

    # calls
    call = yield modem.dial("+4912345")   # -> CallInfo (id, direction, state, number)
    yield modem.answer()
    yield modem.hangup(call_id=None)      # None: all calls
    modem.calls                           # -> tuple[CallInfo] (refreshed from +CLCC; tell
                                          #    calls apart by .serial: modules reuse .id)
    yield modem.refresh_calls()
    yield modem.send_dtmf("12#")
    yield modem.set_call_waiting(True)
    yield modem.hold_and_accept() / modem.swap() / modem.release_held() / modem.release_active_and_accept()
    yield modem.set_gains(mic=None, speaker=None)

    # SMS (27.005 PDU mode only)
    refs = yield modem.send_sms("+4912345", "text", status_report=True, validity_minutes=None,
                                smsc=None)   # -> list[int] TP-MR per part
    modem.sms_handler = fn(IncomingSms) -> Deferred     # exactly once per message:
    modem.report_handler = fn(DeliveryReport) -> Deferred  # module copy deleted after it fires
    yield modem.drain_sms()           # read everything stored (also a full store)

    # USSD
    reply = yield modem.ussd("*100#")  # -> UssdReply(status, text); .session_open
    reply = yield modem.ussd_reply("1")
    yield modem.ussd_cancel()

    # data (F-509)
    result = yield modem.http_test("http://example.com/")   # -> HttpResult(status, length)
    # status 0: the module's own error (no data connection, DNS, ...); AtTimeout when
    # no result arrived within ``timeout`` seconds (default 90)

    # events: modem.add_observer(fn); fn(event) with event one of model.IncomingCall,
    # CallStateChanged, CallEnded(call, cause, text), DtmfReceived, RegistrationChanged,
    # SignalChanged, UssdNotification, SmsStoreFull, SimStatusChanged, PortLost

Errors: methods fail with :class:`goip_tw.modem.at.AtError` subclasses (``CmeError``,
``CmsError``, ``AtTimeout``, ``PortClosed``, ``CallFailed``), ``at.BadArgument`` for
unsafe input, :class:`PinRejected`, or ``drivers.NotSupported``.
"""

from __future__ import annotations

import re

from twisted.internet import defer, task
from twisted.logger import Logger

from goip_tw.modem import at, gsm7, model
from goip_tw.modem.calls import CallsMixin
from goip_tw.modem.drivers import Driver, NotSupported, select_driver, vendor_urcs
from goip_tw.modem.drivers.base import ACT_GENERATION, split_fields, unquote
from goip_tw.modem.smsrx import SmsMixin

log = Logger()

__all__ = ["Modem", "PinRejected", "NotSupported"]


class PinRejected(Exception):
    """The SIM refused the PIN, or we refused to send the same wrong PIN again."""


_PIN_RE = re.compile(r"[0-9]{4,8}\Z")
_MCCMNC_RE = re.compile(r"[0-9]{5,6}\Z")
_USSD_RE = re.compile(r"[0-9*#]{1,40}\Z")

#: TS 27.007 base init; each failure is logged and skipped except PDU mode.
BASE_INIT = (
    "AT+CMEE=1",
    "AT+CLIP=1",
    "AT+CRC=1",
    "AT+CREG=2",
    "AT+CGREG=2",
    "AT+CEREG=2",
    "AT+CUSD=1",
    "AT+CSSN=1,1",
    "AT+CCWA=1",           # 27.007 §7.12: +CCWA for a waiting call (F-465 needs it)
    "AT+CSMS=1",
    'AT+CPMS="SM","SM","SM"',
    "AT+CNMI=2,1,0,2,0",   # 27.005 §3.4.1: store SMS (+CMTI) and status reports (+CDSI)
)


#: +CMS ERROR codes of a SIM still initialising after +CPIN: READY (TS 27.005 §3.2.5:
#: 311 SIM PIN required, 314 SIM busy; Quectel EC2x 515: init or command in progress)
SIM_STARTING_CMS = frozenset({311, 314, 515})


def _sim_starting(exc: at.AtError) -> bool:
    """Whether an error says the SIM is still initialising (worth asking again)."""
    if isinstance(exc, at.CmsError):
        return exc.code in SIM_STARTING_CMS
    if isinstance(exc, at.CmeError):
        return exc.code == 14 or "busy" in exc.text.lower()
    return False


class Modem(CallsMixin, SmsMixin):
    """One module behind one :class:`~goip_tw.modem.at.AtEngine`."""

    def __init__(self, engine: at.AtEngine, clock, *, name: str = "modem",
                 driver: str = "auto", reassembly_timeout: float = 300.0):
        self.engine = engine
        self.clock = clock
        self.name = name
        self.forced_driver = driver
        self.driver: Driver = select_driver("", "", driver if driver != "auto" else None)
        self.identity: model.Identity | None = None
        self.sim: model.SimIdentity | None = None
        self._observers = []
        self._rejected_pins: set[tuple[str, str, str]] = set()  # (iccid, kind, pin)
        self._urc_waiters: dict[str, list[defer.Deferred]] = {}
        self._ussd_waiter: defer.Deferred | None = None
        self.last_registration: model.Registration | None = None
        engine.add_urc_observer(self._on_urc)
        engine.add_close_observer(self._on_close)
        CallsMixin.__init__(self)
        SmsMixin.__init__(self, reassembly_timeout)

    def stop(self) -> None:
        """Cancel every timer (call polling, reassembly, URC waits); for shutdown/tests.
        Parts of incomplete concatenated SMS stay on the module and are re-read later."""
        self.stop_calls()
        self.stop_sms()
        for name, waiters in list(self._urc_waiters.items()):
            for d in list(waiters):
                waiters.remove(d)
                d.cancel()

    # ------------------------------------------------------------------ observers
    def add_observer(self, fn) -> None:
        self._observers.append(fn)

    def remove_observer(self, fn) -> None:
        if fn in self._observers:
            self._observers.remove(fn)

    def emit(self, event) -> None:
        for fn in list(self._observers):
            try:
                fn(event)
            except Exception:
                log.failure("{name}: observer failed on {event}", name=self.name, event=event)

    def wait_urc(self, name: str, timeout: float = 30.0) -> defer.Deferred:
        """A Deferred for the next URC called ``name`` (for drivers' async answers).
        Cancelling it (a driver whose command failed) forgets the waiter and its timer."""
        def forget(d):
            waiters = self._urc_waiters.get(name, [])
            if d in waiters:
                waiters.remove(d)
        d = defer.Deferred(canceller=forget)
        self._urc_waiters.setdefault(name, []).append(d)

        def expire():
            waiters = self._urc_waiters.get(name, [])
            if d in waiters:
                waiters.remove(d)
                d.errback(at.AtTimeout(name, "timeout waiting for URC"))
        timer = self.clock.callLater(timeout, expire)

        def done(result):
            if timer.active():
                timer.cancel()
            return result
        d.addBoth(done)
        return d

    # ------------------------------------------------------------------ commands
    def cmd(self, command: str, **kw) -> defer.Deferred:
        return self.engine.send(command, **kw)

    @defer.inlineCallbacks
    def _try(self, command: str, **kw):
        """Send a command whose failure is tolerable; returns the Response or None."""
        try:
            resp = yield self.engine.send(command, **kw)
        except at.PortClosed:
            raise
        except at.AtError as exc:
            log.info("{name}: {cmd} not accepted ({result})", name=self.name, cmd=command,
                     result=exc.result)
            return None
        return resp

    @defer.inlineCallbacks
    def initialise(self):
        """Abort whatever input a previous owner left pending (ESC), echo off, verbose
        errors, detect the driver, PDU mode, URCs, vendor setup."""
        yield self.engine.resync()
        yield self._try("ATE0", kind="quick")
        yield self._try("ATE0", kind="quick")  # the first may have been eaten by a booting module
        # A boot URC arriving between AT+CGMI and its answer would otherwise become the
        # manufacturer (generic driver: no DTMF detection, vendor URCs unknown).
        self.engine.register_urcs(vendor_urcs())
        ident = yield self.read_identity()
        self.driver = select_driver(ident.manufacturer, ident.model,
                                    self.forced_driver if self.forced_driver != "auto" else None)
        self.engine.register_urcs(self.driver.urcs)
        log.info("{name}: {manufacturer} {model} fw {fw}, driver {driver}", name=self.name,
                 manufacturer=ident.manufacturer, model=ident.model, fw=ident.firmware,
                 driver=self.driver.name)
        yield self.cmd("AT+CMGF=0")
        for command in BASE_INIT + tuple(self.driver.init_commands):
            yield self._try(command)
        return ident

    @defer.inlineCallbacks
    def read_identity(self):
        man = yield self.cmd("AT+CGMI")
        mod = yield self.cmd("AT+CGMM")
        fw = yield self.cmd("AT+CGMR")
        sn = yield self.cmd("AT+CGSN")

        def first(resp, prefix):
            v = resp.value(prefix)
            if v is None:
                plain = resp.plain()
                v = plain[0] if plain else ""
            return unquote(v)
        imei = re.sub(r"\D", "", first(sn, "+CGSN"))
        self.identity = model.Identity(first(man, "+CGMI"), first(mod, "+CGMM"),
                                       first(fw, "+CGMR").replace("Revision:", "").strip(),
                                       imei if len(imei) in (14, 15, 16) else "")
        return self.identity

    @defer.inlineCallbacks
    def _sim_cmd(self, command: str, attempts: int = 10, pause: float = 0.5):
        """A SIM command retried while the SIM is still initialising, as it is for a
        few seconds after +CPIN: READY: "busy" (+CME ERROR: 14, +CMS ERROR: 314),
        and for message commands until the module's "SMS DONE" also "SIM PIN
        required" (+CMS ERROR: 311) or Quectel's "init in progress" (+CMS ERROR:
        515).  Other failures give None."""
        for attempt in range(attempts):
            try:
                resp = yield self.cmd(command, kind="sim")
                return resp
            except at.PortClosed:
                raise
            except at.AtError as exc:
                if not _sim_starting(exc) or attempt == attempts - 1:
                    log.info("{name}: {cmd} failed ({err})", name=self.name, cmd=command,
                             err=exc.result)
                    return None
            yield task.deferLater(self.clock, pause, lambda: None)
        return None

    @defer.inlineCallbacks
    def prepare_sim(self):
        """After +CPIN: READY: message storage and routing (they fail before), then
        the SIM identity."""
        yield self._sim_cmd('AT+CPMS="SM","SM","SM"')
        yield self._try("AT+CNMI=2,1,0,2,0")
        sim = yield self.read_sim_identity()
        return sim

    @defer.inlineCallbacks
    def read_sim_identity(self):
        iccid = imsi = number = None
        resp = yield self._sim_cmd(self.driver.iccid_command[0])
        if resp is not None:
            iccid = self.driver.parse_iccid(resp)
        resp = yield self._sim_cmd("AT+CIMI")
        if resp is not None:
            digits = re.sub(r"\D", "", " ".join(resp.plain()) or (resp.value("+CIMI") or ""))
            imsi = digits or None
        resp = yield self._sim_cmd("AT+CNUM")
        if resp is not None:
            for v in resp.values("+CNUM"):
                f = split_fields(v)
                if len(f) > 1 and f[1]:
                    number = f[1]
                    break
        self.sim = model.SimIdentity(iccid, imsi, number)
        return self.sim

    # ------------------------------------------------------------------ SIM / PIN
    @defer.inlineCallbacks
    def pin_status(self):
        try:
            resp = yield self.cmd("AT+CPIN?", kind="sim")
        except at.CmeError as exc:
            if exc.code == 10 or "not inserted" in exc.text.lower():
                return "NOT INSERTED"
            if exc.code in (13, 14) or "failure" in exc.text.lower():
                return "SIM FAILURE"
            raise
        return unquote(resp.value("+CPIN") or "UNKNOWN").upper()

    def unlock(self, pin: str):
        return self._unlock("SIM PIN", pin)

    def unlock_pin2(self, pin2: str):
        return self._unlock("SIM PIN2", pin2)

    @defer.inlineCallbacks
    def _unlock(self, kind: str, pin: str):
        """Send the PIN once.  A PIN the SIM refused is remembered and never sent again
        (3 wrong PINs lock the card with a PUK; F-105 wants a human to decide)."""
        if not isinstance(pin, str) or not _PIN_RE.match(pin):
            raise at.BadArgument("pin: must be 4-8 digits")
        iccid = self.sim.iccid if self.sim else ""
        if (iccid or "", kind, pin) in self._rejected_pins:
            raise PinRejected(f"{kind}: this PIN was already rejected; not retrying")
        status = yield self.pin_status()
        if status == "READY":
            return status
        if status != kind:
            raise PinRejected(f"SIM wants {status!r}, not {kind}")
        try:
            yield self.cmd(f'AT+CPIN="{pin}"', kind="sim")
        except at.CmeError as exc:
            self._rejected_pins.add((iccid or "", kind, pin))
            log.warn("{name}: {kind} rejected ({err})", name=self.name, kind=kind, err=exc.result)
            raise PinRejected(f"{kind} rejected: {exc.result}") from None
        status = yield self.pin_status()
        self.emit(model.SimStatusChanged(status))
        return status

    # ------------------------------------------------------------------ network
    @defer.inlineCallbacks
    def registration(self):
        best = None
        for command, prefix in (("AT+CEREG?", "+CEREG"), ("AT+CREG?", "+CREG"),
                                ("AT+CGREG?", "+CGREG")):
            resp = yield self._try(command)
            if resp is None or resp.value(prefix) is None:
                continue
            reg = parse_registration(resp.value(prefix), solicited=True)
            if reg is None:
                continue
            if best is None or (reg.registered and not best.registered):
                best = reg
            if reg.registered:
                break
        if best is None:
            best = model.Registration("unknown", None)
        if best.registered and self.driver.technology_command:
            resp = yield self._try(self.driver.technology_command)
            tech = self.driver.parse_technology(resp) if resp is not None else None
            if tech:
                best = model.Registration(best.state, tech, best.lac, best.cell)
        if best.registered and best.technology is None:
            op = yield self._cops()
            if op is not None and op[3] is not None:
                best = model.Registration(best.state, ACT_GENERATION.get(op[3]), best.lac, best.cell)
        self.last_registration = best
        return best

    @defer.inlineCallbacks
    def signal(self):
        resp = yield self.cmd("AT+CSQ")
        f = split_fields(resp.value("+CSQ") or "99,99")
        rssi = int(f[0]) if f and f[0].isdigit() else 99
        return model.Signal.from_rssi(rssi)

    @defer.inlineCallbacks
    def _cops(self, fmt: int = 2):
        yield self._try(f"AT+COPS=3,{fmt}")
        resp = yield self._try("AT+COPS?")
        if resp is None or resp.value("+COPS") is None:
            return None
        f = split_fields(resp.value("+COPS"))
        mode = int(f[0]) if f and f[0].isdigit() else None
        oper = f[2] if len(f) > 2 and f[2] else None
        act = int(f[3]) if len(f) > 3 and f[3].isdigit() else None
        return mode, fmt, oper, act

    @defer.inlineCallbacks
    def operator(self):
        numeric = yield self._cops(2)
        alpha = yield self._cops(0)
        if numeric is None:
            return model.Operator("unknown", None, None)
        mode = {0: "auto", 1: "manual", 2: "deregistered", 4: "manual"}.get(numeric[0], "unknown")
        return model.Operator(mode, alpha[2] if alpha else None, numeric[2])

    def select_operator(self, mccmnc: str | None):
        """F-4A0: automatic (None) or fixed MCC-MNC."""
        if mccmnc is None:
            return self.cmd("AT+COPS=0", kind="network")
        if not isinstance(mccmnc, str) or not _MCCMNC_RE.match(mccmnc):
            raise at.BadArgument(f"operator: {mccmnc!r} is not an MCC-MNC (5-6 digits)")
        return self.cmd(f'AT+COPS=1,2,"{mccmnc}"', kind="network")

    @defer.inlineCallbacks
    def volte(self):
        query = self.driver.volte_query()
        if query is None:
            return None
        resp = yield self._try(query)
        return self.driver.parse_volte(resp) if resp is not None else None

    @defer.inlineCallbacks
    def set_volte(self, enabled: bool):
        for command in self.driver.volte_commands(bool(enabled)):
            yield self.cmd(command)

    # ------------------------------------------------------------------ USSD
    def ussd(self, code: str):
        if not isinstance(code, str) or not _USSD_RE.match(code):
            raise at.BadArgument(f"ussd: {code!r} is not [0-9*#]")
        return self._ussd_send(code)

    def ussd_reply(self, answer: str):
        if not isinstance(answer, str) or not _USSD_RE.match(answer):
            raise at.BadArgument(f"ussd reply: {answer!r} is not [0-9*#]")
        return self._ussd_send(answer)

    @defer.inlineCallbacks
    def _ussd_send(self, text: str):
        if self._ussd_waiter is not None:
            raise at.BadArgument("ussd: a request is already waiting for its answer")
        d = self._ussd_waiter = self.wait_urc("+CUSD", timeout=self.engine.timeouts["ussd"])

        def clear(result):
            if self._ussd_waiter is d:
                self._ussd_waiter = None
            return result
        d.addBoth(clear)
        try:
            yield self.cmd(f'AT+CUSD=1,"{text}",15', kind="ussd")
        except Exception:
            d.cancel()
            d.addErrback(lambda f: None)
            raise
        urc = yield d
        return self._parse_cusd(urc.value)

    def ussd_cancel(self):
        return self._try("AT+CUSD=2")

    def _parse_cusd(self, value: str) -> model.UssdReply:
        f = split_fields(value)
        status = int(f[0]) if f and f[0].isdigit() else 0
        text = f[1] if len(f) > 1 else ""
        dcs = int(f[2]) if len(f) > 2 and f[2].isdigit() else 15
        if text and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", text):
            raw = bytes.fromhex(text)
            if dcs & 0xF0 == 0x40 and dcs & 0x0C == 0x08 or dcs == 72:
                text = raw.decode("utf-16-be", errors="replace")
            elif self.driver.ussd_packed_hex:
                text = gsm7.decode(gsm7.unpack(raw, len(raw) * 8 // 7)).rstrip("@\r")
        return model.UssdReply(status, text)

    # ------------------------------------------------------------------ data
    def http_test(self, url: str, timeout: float = 90.0):
        """F-509: fetch ``url`` through the module's own data connection."""
        return defer.maybeDeferred(self.driver.http_test, self, url, timeout)

    # ------------------------------------------------------------------ URCs
    def _on_urc(self, urc: at.Urc):
        waiters = self._urc_waiters.get(urc.name)
        if waiters:
            d = waiters.pop(0)
            d.callback(urc)
            if urc.name == "+CUSD":
                return
        elif urc.name == "+CUSD":
            self.emit(model.UssdNotification(self._parse_cusd(urc.value)))
            return
        if urc.name in ("+CREG", "+CGREG", "+CEREG"):
            reg = parse_registration(urc.value, solicited=False)
            if reg is not None:
                self.last_registration = reg
                self.emit(model.RegistrationChanged(reg))
            return
        if urc.name == "+CPIN":
            self.emit(model.SimStatusChanged(unquote(urc.value).upper()))
            return
        if self.handle_call_urc(urc) or self.handle_sms_urc(urc):
            return
        for item in self.driver.parse_urc(urc):
            if item == "refresh-calls":
                self.schedule_call_refresh()
            elif isinstance(item, tuple) and item[0] == "call-end-cause":
                self.note_end_cause(item[1], item[2])
            elif isinstance(item, tuple) and item[0] == "call-released":
                self.note_released(item[1])
            else:
                self.emit(item)

    def _on_close(self, reason):
        self.calls_lost()
        self.sms_lost()
        for name, waiters in list(self._urc_waiters.items()):
            for d in list(waiters):
                waiters.remove(d)
                d.errback(at.PortClosed(name, "port closed"))
        self.emit(model.PortLost(str(getattr(reason, "value", reason))))


def parse_registration(value: str, *, solicited: bool) -> model.Registration | None:
    """+CREG/+CGREG/+CEREG (TS 27.007 §7.2/§10.1.19/§10.1.22).  A solicited answer
    starts with <n>; a URC does not.  With <n>=2 the LAC/TAC, cell and AcT follow."""
    f = split_fields(value)
    if solicited:
        f = f[1:]
    if not f or not f[0].isdigit():
        return None
    state = model.REG_STATES.get(int(f[0]), "unknown")
    lac = f[1] if len(f) > 1 and f[1] else None
    cell = f[2] if len(f) > 2 and f[2] else None
    tech = None
    if len(f) > 3 and f[3].isdigit():
        tech = ACT_GENERATION.get(int(f[3]))
    return model.Registration(state, tech, lac, cell)
