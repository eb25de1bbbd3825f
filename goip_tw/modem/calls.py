"""Voice call control for :class:`goip_tw.modem.api.Modem` (mixin).

Call state is taken from AT+CLCC (TS 27.007 §7.18) rather than from URCs alone:
URCs only trigger a refresh at once (RING, +CLIP, +CCWA, NO CARRIER, BUSY; the
vendors' call-state reports: Quectel ``+QIND: "ccinfo"``, SIMCom ``+CLCC`` after
AT+CLCC=1, Huawei ^ORIG/^CONF/^CONN/^CEND), and while a call exists the list is
also polled every ``call_poll_interval`` seconds for modules that report nothing.
The end cause comes from a vendor URC when the driver has one (Huawei ^CEND), from
BUSY / NO ANSWER, or from AT+CEER (§6.10).

Call identity: modules reuse a call index as soon as the call is released (TS 22.030
§6.5.5.1 numbers the calls in progress, not calls ever made), so a row of AT+CLCC
is the call we knew under that index only if nothing says otherwise.  It is a new
call (and the old one ended) when a vendor URC reported the index released since the
last list, or the direction or the number differ, or its state went backwards
(active → dialing/alerting/incoming).  Each call gets a ``serial`` of its own.
"""

from __future__ import annotations

import itertools
import re

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from goip_tw.modem import at, model
from goip_tw.modem.drivers.base import cause_from_text, split_fields

log = Logger()

_DTMF_RE = re.compile(r"[0-9*#A-D]{1,32}\Z")
#: final results that end a call, with the TS 24.008 cause they imply
_CALL_END_URCS = {"NO CARRIER": None, "BUSY": 17, "NO ANSWER": 19}
#: how far a call has progressed; a row whose state is lower than the call we knew
#: under its index is a new call in a reused index
_PROGRESS = {"dialing": 0, "incoming": 0, "waiting": 0, "alerting": 1, "active": 2,
             "held": 2}
#: call serials, unique in the process (a Modem is replaced on every reopen)
_serials = itertools.count(1)


def parse_clcc(lines) -> dict[int, model.CallInfo]:
    """AT+CLCC rows (or the same fields in a vendor URC) → {index: CallInfo}.  Only
    voice calls in the 27.007 states 0-5; SIMCom's 6 "disconnect" (a URC) is dropped."""
    calls = {}
    for value in lines:
        f = split_fields(value)
        if len(f) < 5 or not f[0].isdigit() or not f[2].isdigit():
            continue
        if f[3] not in ("0", ""):  # 0 = voice; data/fax calls are not ours
            continue
        if int(f[2]) not in model.CALL_STATES:
            continue
        cid = int(f[0])
        calls[cid] = model.CallInfo(
            id=cid, direction="in" if f[1] == "1" else "out",
            state=model.CALL_STATES.get(int(f[2]), "unknown"),
            number=(f[5] or None) if len(f) > 5 else None,
            multiparty=f[4] == "1")
    return calls


def _released_indexes(lines) -> set[int]:
    """Indexes in +CLCC-shaped lines whose state is outside 27.007's 0-5 (SIMCom 6)."""
    out = set()
    for value in lines:
        f = split_fields(value)
        if len(f) > 2 and f[0].isdigit() and f[2].isdigit() \
                and int(f[2]) not in model.CALL_STATES:
            out.add(int(f[0]))
    return out


def _same_call(prev: model.CallInfo, row: model.CallInfo, released: bool) -> bool:
    """Is ``row`` (a fresh AT+CLCC line) the call we knew as ``prev`` under its index?"""
    if released or prev.direction != row.direction:
        return False
    if prev.number and row.number and prev.number != row.number:
        return False
    return _PROGRESS.get(row.state, 0) >= _PROGRESS.get(prev.state, 0)


class CallsMixin:
    call_poll_interval = 1.0

    def __init__(self):
        self._calls: dict[int, model.CallInfo] = {}
        self._refresh_timer = None
        self._refresh_running: defer.Deferred | None = None
        self._refresh_waiters: list[defer.Deferred] = []
        #: indexes a vendor URC reported released since the last AT+CLCC was read
        self._released: set[int] = set()
        self._poll_timer = None
        self._end_causes: dict = {}
        self._clip: str | None = None
        self._audio_routed = False

    @property
    def calls(self) -> tuple[model.CallInfo, ...]:
        return tuple(self._calls[k] for k in sorted(self._calls))

    # ------------------------------------------------------------------ commands
    @defer.inlineCallbacks
    def dial(self, number: str):
        """ATD<number>; (voice).  Fires with the new outgoing CallInfo once the module
        accepted the dial; progress comes as CallStateChanged / CallEnded events."""
        at.check_number(number)
        before = {c.serial for c in self._calls.values()}
        self._end_causes.pop(None, None)
        yield self.cmd(f"ATD{number};", kind="call")
        yield self.refresh_calls()
        new = [c for c in self.calls if c.serial not in before and c.direction == "out"]
        if new:
            return new[0]
        return model.CallInfo(0, "out", "dialing", number)

    @defer.inlineCallbacks
    def answer(self):
        yield self.cmd("ATA", kind="call")
        yield self.refresh_calls()

    @defer.inlineCallbacks
    def hangup(self, call_id: int | None = None):
        """Hang up one call (AT+CHLD=1<x>) or all (AT+CHUP, falling back to ATH).
        A waiting call is refused with AT+CHLD=0 (TS 22.030 §6.5.5.1: UDUB, the caller
        hears busy); 1<x> is defined for active calls only."""
        target = self._calls.get(call_id) if call_id is not None else None
        if target is not None and target.state == "waiting" and len(self._calls) > 1:
            yield self.cmd("AT+CHLD=0", kind="call")
        elif call_id is not None and len(self._calls) > 1:
            yield self.cmd(f"AT+CHLD=1{int(call_id)}", kind="call")
        else:
            try:
                yield self.cmd("AT+CHUP", kind="call")
            except at.CommandError:
                yield self.cmd("ATH", kind="call")
        yield self.refresh_calls()

    @defer.inlineCallbacks
    def send_dtmf(self, digits: str, duration_ms: int = 100):
        if not isinstance(digits, str) or not _DTMF_RE.match(digits):
            raise at.BadArgument(f"dtmf: {digits!r} is not [0-9*#A-D]")
        for d in digits:
            yield self.cmd(self.driver.dtmf_command(d, duration_ms))

    def set_call_waiting(self, enabled: bool):
        return self.cmd(f"AT+CCWA=1,{1 if enabled else 0}", kind="network")

    def _chld(self, n: str):
        d = self.cmd(f"AT+CHLD={n}", kind="call")
        d.addCallback(lambda _: self.refresh_calls())
        return d

    def hold_and_accept(self):
        """AT+CHLD=2: put the active call on hold, take the waiting/held one."""
        return self._chld("2")

    swap = hold_and_accept

    def release_held(self):
        """AT+CHLD=0: release held calls or reject the waiting one (UDUB)."""
        return self._chld("0")

    def release_active_and_accept(self):
        return self._chld("1")

    @defer.inlineCallbacks
    def set_gains(self, mic: int | None = None, speaker: int | None = None):
        for command in self.driver.gain_commands(mic, speaker):
            yield self.cmd(command)

    # ------------------------------------------------------------------ URCs
    def handle_call_urc(self, urc) -> bool:
        name = urc.name
        if name in ("RING", "+CRING"):
            self.schedule_call_refresh()
            return True
        if name == "+CLIP":
            f = split_fields(urc.value)
            self._clip = (f[0] or None) if f else None
            self.schedule_call_refresh()
            return True
        if name == "+CLCC":  # SIMCom AT+CLCC=1: the changed call, stat 6 = released
            for cid in _released_indexes([urc.value]):
                self.note_released(cid)
            self.schedule_call_refresh()
            return True
        if name in ("+CCWA", "+CSSI", "+CSSU"):
            self.schedule_call_refresh()
            return True
        if name in _CALL_END_URCS:
            if _CALL_END_URCS[name] is not None:
                self._end_causes[None] = _CALL_END_URCS[name]
            self.schedule_call_refresh()
            return True
        return False

    def note_end_cause(self, call_id, cause):
        self._end_causes[call_id] = cause
        if call_id is not None:
            self.note_released(call_id)

    def note_released(self, call_id: int):
        """A vendor URC says call ``call_id`` was released: if the next AT+CLCC still
        lists that index, it is a new call in a reused index."""
        self._released.add(int(call_id))

    def schedule_call_refresh(self):
        if self._refresh_timer is None or not self._refresh_timer.active():
            self._refresh_timer = self.clock.callLater(0, self._timed_refresh)

    def _timed_refresh(self):
        self._refresh_timer = None
        self.refresh_calls().addErrback(self._refresh_failed)

    def _refresh_failed(self, failure):
        if not failure.check(at.PortClosed):
            log.warn("{name}: call list refresh failed: {err}", name=self.name,
                     err=failure.getErrorMessage())

    def refresh_calls(self) -> defer.Deferred:
        """Read AT+CLCC and emit the differences; fires with ``calls``.  While a read
        runs, callers get the result of one more read started after it (their reason
        to refresh may be newer than the list being read); they share that read."""
        if self._refresh_running is not None:
            d = defer.Deferred()
            self._refresh_waiters.append(d)
            return d
        return self._start_refresh()

    def _start_refresh(self) -> defer.Deferred:
        waiters, self._refresh_waiters = self._refresh_waiters, []
        running = self._refresh_running = self._do_refresh()

        def done(result):
            self._refresh_running = None
            for d in waiters:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(self.calls)
            if self._refresh_waiters:
                self._start_refresh().addErrback(lambda f: None)  # the waiters got it
            return result
        running.addBoth(done)
        return running

    @defer.inlineCallbacks
    def _do_refresh(self):
        resp = yield self.cmd("AT+CLCC")
        lines = resp.values("+CLCC")
        rows = parse_clcc(lines)
        # a SIMCom +CLCC URC (stat 6) that came in with the response counts too
        self._released.update(_released_indexes(lines))
        released, self._released = self._released, set()
        old = self._calls
        new: dict[int, model.CallInfo] = {}
        events = []
        gone = [old[cid] for cid in old if cid not in rows]
        for cid, row in rows.items():
            prev = old.get(cid)
            if prev is not None and not _same_call(prev, row, cid in released):
                gone.append(prev)
                prev = None
            number = row.number
            if number is None and prev is not None:
                number = prev.number
            if number is None and row.direction == "in" and self._clip:
                number = self._clip
            call = new[cid] = attrs.evolve(
                row, number=number, serial=prev.serial if prev else next(_serials))
            if prev is None and call.state in ("incoming", "waiting"):
                events.append(model.IncomingCall(call, waiting=call.state == "waiting"))
            elif prev is None or prev.state != call.state:
                events.append(model.CallStateChanged(call, prev.state if prev else None))
        self._calls = new
        if gone:  # the release of a call is reported before a call reusing its index
            yield self._emit_ended(gone)
        for event in events:
            self.emit(event)
        if any(c.state == "active" for c in new.values()) and not self._audio_routed:
            self._audio_routed = True
            for command in self.driver.call_start_commands:
                yield self._try(command)
        if not new:
            self._clip = None
            if self._audio_routed:
                self._audio_routed = False
                for command in self.driver.call_end_commands:
                    yield self._try(command)
        self._arm_poll()
        return self.calls

    @defer.inlineCallbacks
    def _emit_ended(self, gone):
        for call in gone:
            cause = self._end_causes.pop(call.id, None)
            if cause is None:
                cause = self._end_causes.get(None)
            text = ""
            if cause is None:
                resp = yield self._try("AT+CEER")
                if resp is not None:
                    text = (resp.value("+CEER") or " ".join(resp.plain())).strip()
                    cause = cause_from_text(text)
            self.emit(model.CallEnded(call, cause, text))
        if not self._calls:
            self._end_causes.clear()

    def _arm_poll(self):
        if self._poll_timer is not None and self._poll_timer.active():
            self._poll_timer.cancel()
        self._poll_timer = None
        if self._calls and self.engine.connected:
            self._poll_timer = self.clock.callLater(self.call_poll_interval, self._timed_refresh)

    def calls_lost(self):
        """The port went away: every call ends now (F-103 wants a clean BYE)."""
        for timer in (self._poll_timer, self._refresh_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._poll_timer = self._refresh_timer = None
        gone, self._calls = list(self._calls.values()), {}
        self._audio_routed = False
        for call in gone:
            self.emit(model.CallEnded(call, None, "module lost"))

    def stop_calls(self):
        for timer in (self._poll_timer, self._refresh_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._poll_timer = self._refresh_timer = None
