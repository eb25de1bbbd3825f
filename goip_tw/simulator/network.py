"""The simulated mobile network shared by all simulated modules.

Subscribers are the SIM cards (wherever they are inserted) and scripted remote
phones.  The network routes calls (with release causes from 3GPP TS 24.008
annex H), SMS (see :mod:`.smsc`) and USSD (see :mod:`.ussd`), and keeps a
record of what it saw so tests and the control API can assert on it.
"""

from __future__ import annotations

import time

import attrs
from twisted.logger import Logger

from .audio import AudioTicker, CadenceSource
from .module import SimulatedModule
from .phones import PhoneBehaviour, RemotePhone
from .sim import DEFAULT_OPERATORS, SimCard, make_sim
from .smsc import SmsCenter
from .timers import Timers
from .ussd import UssdService

log = Logger()

#: TS 24.008 annex H causes used by the simulator.
UNASSIGNED = (1, "Unassigned (unallocated) number")
NORMAL = (16, "Normal call clearing")
BUSY = (17, "User busy")
NO_ANSWER = (19, "No answer from user (user alerted)")
REJECTED = (21, "Call rejected")
ABSENT = (20, "Subscriber absent")

NO_ANSWER_TIMEOUT = 60.0


def digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def same_number(a: str, b: str) -> bool:
    """Numbers match on their last 9 digits (national vs international)."""
    da, db = digits(a), digits(b)
    if not da or not db:
        return False
    if len(da) >= 9 and len(db) >= 9:
        return da[-9:] == db[-9:]
    return da == db


@attrs.define(eq=False)
class Call:
    id: int
    caller: str
    callee: str
    a: object
    b: object = None
    state: str = "setup"  # setup, alerting, active, ended
    started: float = 0.0
    answered: float | None = None
    ended: float | None = None
    cause: tuple = (0, "")
    timer: object = None
    dtmf: list = attrs.field(factory=list)
    ringback: object = None

    def other(self, endpoint):
        return self.b if endpoint is self.a else self.a

    def record(self) -> dict:
        return {
            "id": self.id, "caller": self.caller, "callee": self.callee,
            "state": self.state, "started": self.started, "answered": self.answered,
            "ended": self.ended, "cause": self.cause[0], "cause_text": self.cause[1],
            "dtmf": "".join(self.dtmf),
        }


class Network:
    """The simulated PLMN(s).  Takes the reactor; ``clock`` defaults to it."""

    def __init__(self, reactor, *, clock=None, operators=DEFAULT_OPERATORS,
                 smsc_number="+12125550000", link_dir=None, reg_delay=2.0,
                 boot_delay=0.5, no_answer_timeout=NO_ANSWER_TIMEOUT,
                 sms_price=0.05, minute_price=0.10, ringback=True):
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.timers = Timers(self.clock)
        self.operators = {op.mcc_mnc: op for op in operators}
        self.smsc_number = smsc_number
        self.link_dir = link_dir
        self.reg_delay = reg_delay
        self.boot_delay = boot_delay
        self.no_answer_timeout = no_answer_timeout
        self.sms_price = sms_price
        self.ringback = ringback
        self.minute_price = minute_price
        self.modules: list[SimulatedModule] = []
        self.phones: dict[str, RemotePhone] = {}
        self.calls: list[Call] = []
        self.coverage: dict[int, bool] = {}
        self.plmn_override: dict[int, str] = {}
        self.events: list[dict] = []
        self.listeners: list = []
        #: url -> (status, body); status None: the server never answers (a timeout)
        self.http_responses: dict[str, tuple[int | None, str]] = {}
        self.sms = SmsCenter(self)
        self.ussd = UssdService(self)
        self.ticker = AudioTicker(self)
        self.running = False
        self._call_ids = 0
        self.echo_number: str | None = None
        self.sms_echo_number: str | None = None

    # -- building -----------------------------------------------------------

    def add_module(self, dialect="quectel", slots=4, *, sims=None, imei=None,
                   empty_slots=(), pin=None) -> SimulatedModule:
        """Add a module with ``slots`` SIM slots (SIMs generated unless given)."""
        if not 1 <= slots <= 4:
            raise ValueError("slots must be 1..4")
        number = len(self.modules) + 1
        if sims is None:
            sims = [None if i in empty_slots else make_sim(number, i, pin=pin)
                    for i in range(slots)]
        module = SimulatedModule(self, number, dialect=dialect, sims=sims, imei=imei,
                                 link_dir=self.link_dir, boot_delay=self.boot_delay,
                                 reg_delay=self.reg_delay)
        self.modules.append(module)
        if self.running:
            module.start()
        return module

    def add_remote_phone(self, number: str, behaviour: PhoneBehaviour | None = None,
                         **kwargs) -> RemotePhone:
        if behaviour is None:
            behaviour = PhoneBehaviour(**kwargs)
        phone = RemotePhone(self, number, behaviour)
        self.phones[number] = phone
        return phone

    def add_demo_phones(self, echo="+12125550190", sms_echo="+12125550191") -> None:
        """The phones the demos announce: an echo line and an SMS echo."""
        self.add_remote_phone(echo, answer_after=1.0, audio="echo")
        self.add_remote_phone(sms_echo, sms_echo=True, answer_after=None)
        self.echo_number, self.sms_echo_number = echo, sms_echo

    def start(self) -> None:
        self.running = True
        for module in self.modules:
            module.start()
        self.ticker.start()

    def stop(self) -> None:
        self.running = False
        for call in list(self.calls):
            if call.state != "ended":
                self.end_call(call, NORMAL)
        for module in self.modules:
            module.stop()
        for phone in self.phones.values():
            phone.stop()
        self.ticker.stop()
        self.sms.stop()
        self.ussd.stop()
        self.timers.cancel_all()

    # -- events -------------------------------------------------------------

    def record(self, kind: str, **fields) -> dict:
        event = {"kind": kind, "time": self.clock.seconds(), **fields}
        self.events.append(event)
        if len(self.events) > 10000:
            del self.events[:1000]
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.failure("simulator event listener failed")
        return event

    def module_changed(self, module, what: str) -> None:
        self.record("module", module=module.number, change=what,
                    at_path=module.at_path, audio_path=module.audio_path)

    def module_registered(self, module) -> None:
        self.record("registered", module=module.number, plmn=module.serving)
        self.sms.retry_for(module)

    # -- radio --------------------------------------------------------------

    def has_coverage(self, module) -> bool:
        return self.coverage.get(module.number, True)

    def serving_plmn(self, module) -> str | None:
        if not self.has_coverage(module):
            return None
        if module.settings.cops_mode == 2:
            return None
        if module.settings.cops_mode == 1:
            return module.settings.cops_plmn
        override = self.plmn_override.get(module.number)
        if override in self.operators:
            return override
        home = module.sim.operator if module.sim else None
        if home in self.operators:
            return home
        return next(iter(self.operators), None)

    def set_coverage(self, module, on: bool, *, stat: int = 2) -> None:
        """Registration loss (``on=False``) and return."""
        self.coverage[module.number] = on
        self.record("coverage", module=module.number, on=on)
        if on:
            module.schedule_registration(1.0)
        else:
            module.lose_registration(stat)

    def set_signal(self, module, rssi: int, ber: int = 99) -> None:
        if not (0 <= rssi <= 31 or rssi == 99):
            raise ValueError("rssi must be 0..31 or 99")
        module.set_signal(rssi, ber)
        self.record("signal", module=module.number, rssi=rssi)

    def set_cell(self, module, lac: int, ci: int) -> None:
        """Handover to another cell: ``+CREG: 1,"<lac>","<ci>",7`` with n=2."""
        if not (0 <= lac <= 0xFFFF and 0 <= ci <= 0xFFFFFFF):
            raise ValueError("lac must be 0..FFFF and ci 0..FFFFFFF")
        module.lac, module.ci = lac, ci
        if module.registered:
            for name in ("creg", "cgreg", "cereg"):
                if getattr(module.settings, name) == 2:
                    module.urc(module.reg_line(name, 2, urc=True))
        self.record("cell", module=module.number, lac=lac, ci=ci)

    def change_operator(self, module, plmn: str) -> None:
        """The module moves to another PLMN (roaming when not the SIM's home)."""
        if plmn not in self.operators:
            raise ValueError(f"unknown operator {plmn!r}")
        self.plmn_override[module.number] = plmn
        module.lose_registration(2)
        module.schedule_registration(1.0)
        self.record("operator", module=module.number, plmn=plmn)

    # -- subscribers --------------------------------------------------------

    def sim_module(self, number: str) -> SimulatedModule | None:
        """The module whose *active* SIM has ``number``."""
        for module in self.modules:
            sim = module.sim
            if sim is not None and sim.msisdn and same_number(sim.msisdn, number):
                return module
        return None

    def find_sim(self, number: str) -> SimCard | None:
        for module in self.modules:
            for sim in module.slots:
                if sim is not None and same_number(sim.msisdn, number):
                    return sim
        return None

    def phone(self, number: str) -> RemotePhone | None:
        for key, phone in self.phones.items():
            if same_number(key, number):
                return phone
        return None

    def reachable(self, module) -> bool:
        return module.plugged and module.powered and module.registered

    # -- calls --------------------------------------------------------------

    def place_call(self, a, caller: str, callee: str) -> Call:
        """Start a call from endpoint ``a``; the result arrives through its
        ``call_*`` callbacks."""
        self._call_ids += 1
        call = Call(self._call_ids, caller, callee, a, started=self.clock.seconds())
        self.calls.append(call)
        self.record("call", call=call.id, caller=caller, callee=callee, event="setup")
        target_module = self.sim_module(callee)
        target = None
        if target_module is not None and self.reachable(target_module):
            target = target_module.voice
        elif target_module is None:
            target = self.phone(callee)
        if target is None:
            cause = ABSENT if target_module is not None or self.find_sim(callee) else UNASSIGNED
            self.timers.later(1.0, self.end_call, call, cause)
            return call
        call.b = target
        self.timers.later(0.5, self._deliver, call)
        return call

    def _deliver(self, call) -> None:
        if call.state != "setup":
            return
        call.state = "alerting"
        call.timer = self.timers.later(self.no_answer_timeout, self.end_call, call, NO_ANSWER)
        if self.ringback:
            call.ringback = CadenceSource()
            self.ticker.ensure()
        call.a.call_alerting(call)
        call.b.call_incoming(call)

    def answer(self, call) -> None:
        if call.state not in ("setup", "alerting"):
            return
        self.timers.cancel(call.timer)
        call.state = "active"
        call.answered = self.clock.seconds()
        self.record("call", call=call.id, event="answered")
        self.ticker.ensure()
        call.a.call_answered(call)
        call.b.call_connected(call)

    def end_call(self, call, cause=NORMAL, by=None) -> None:
        if call.state == "ended":
            return
        self.timers.cancel(call.timer)
        call.state = "ended"
        call.ended = self.clock.seconds()
        call.cause = cause
        self.record("call", call=call.id, event="ended", cause=cause[0], by=(
            "a" if by is call.a else "b" if by is not None else "network"))
        for side in (call.a, call.b):
            if side is not None and side is not by:
                side.call_ended(call, cause)
        self._charge_call(call)
        if len(self.calls) > 400:  # keep every live call and the latest ended ones
            ended = [c for c in self.calls if c.state == "ended"][-200:]
            self.calls = [c for c in self.calls if c.state != "ended" or c in ended]

    def charge(self, number: str, amount: float) -> None:
        """Prepaid balance (what ``*100#`` shows): SIM senders pay."""
        sim = self.find_sim(number)
        if sim is not None and amount > 0:
            sim.balance = round(sim.balance - amount, 4)

    def _charge_call(self, call) -> None:
        if call.answered is None or call.ended is None:
            return
        minutes = -(-int(call.ended - call.answered) // 60) or 1
        self.charge(call.caller, minutes * self.minute_price)

    def send_dtmf(self, call, sender, digit: str) -> None:
        if call.state != "active":
            return
        call.dtmf.append(digit)
        self.record("dtmf", call=call.id, digit=digit,
                    side="a" if sender is call.a else "b")
        other = call.other(sender)
        if other is not None:
            other.call_dtmf(call, digit)

    def drop_calls(self, module, cause) -> None:
        voice = getattr(module, "voice", None)
        for call in list(self.calls):
            if call.state != "ended" and voice is not None and voice in (call.a, call.b):
                self.end_call(call, cause)

    def active_calls(self) -> list[Call]:
        return [c for c in self.calls if c.state == "active"]

    def audio_calls(self) -> list[Call]:
        """Calls that carry audio now: answered ones, and ringing ones with
        in-band ringback for the caller (early media)."""
        return [c for c in self.calls if c.state == "active" or (
            c.state == "alerting" and c.ringback is not None)]

    # -- injection shortcuts -------------------------------------------------

    def send_sms(self, sender: str, to: str, text: str, *, encoding=None) -> dict:
        """Any party (a SIM number or an outside number) texts ``to``."""
        return self.sms.send(sender, to, text, encoding=encoding)

    def call(self, caller: str, to: str) -> Call:
        """A remote phone ``caller`` (created with defaults if new) calls ``to``."""
        phone = self.phone(caller) or self.add_remote_phone(caller)
        return phone.dial(to)

    # -- records --------------------------------------------------------------

    @property
    def sent_sms(self) -> list[dict]:
        """Every message the SMS centre routed, oldest first."""
        return self.sms.log

    def call_records(self) -> list[dict]:
        return [c.record() for c in self.calls]

    def describe(self) -> dict:
        return {
            "modules": [m.describe() for m in self.modules],
            "phones": [p.describe() for p in self.phones.values()],
            "echo_number": self.echo_number,
            "sms_echo_number": self.sms_echo_number,
            "time": time.time(),
        }
