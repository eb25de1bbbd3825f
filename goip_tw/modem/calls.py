"""Voice call control for :class:`goip_tw.modem.api.Modem` (mixin).

Call state is taken from AT+CLCC (TS 27.007 §7.18) rather than from URCs alone:
URCs (RING, +CLIP, +CCWA, NO CARRIER, BUSY, vendor ^CONN/^CEND, "VOICE CALL:") only
trigger a refresh, and while a call exists the list is polled every
``call_poll_interval`` seconds.  The end cause comes from a vendor URC when the
driver has one (Huawei ^CEND), from BUSY / NO ANSWER, or from AT+CEER (§6.10).
"""

from __future__ import annotations

import re

from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.modem import at, model
from goip_tw.modem.drivers.base import cause_from_text, split_fields

log = Logger()

_DTMF_RE = re.compile(r"[0-9*#A-D]{1,32}\Z")
#: final results that end a call, with the TS 24.008 cause they imply
_CALL_END_URCS = {"NO CARRIER": None, "BUSY": 17, "NO ANSWER": 19}


def parse_clcc(lines) -> dict[int, model.CallInfo]:
    calls = {}
    for value in lines:
        f = split_fields(value)
        if len(f) < 5 or not f[0].isdigit() or not f[2].isdigit():
            continue
        if f[3] not in ("0", ""):  # 0 = voice; data/fax calls are not ours
            continue
        cid = int(f[0])
        calls[cid] = model.CallInfo(
            id=cid, direction="in" if f[1] == "1" else "out",
            state=model.CALL_STATES.get(int(f[2]), "unknown"),
            number=(f[5] or None) if len(f) > 5 else None,
            multiparty=f[4] == "1")
    return calls


class CallsMixin:
    call_poll_interval = 1.0

    def __init__(self):
        self._calls: dict[int, model.CallInfo] = {}
        self._refresh_timer = None
        self._refresh_running: defer.Deferred | None = None
        self._refresh_again = False
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
        before = set(self._calls)
        self._end_causes.pop(None, None)
        yield self.cmd(f"ATD{number};", kind="call")
        yield self.refresh_calls()
        new = [c for c in self.calls if c.id not in before and c.direction == "out"]
        if new:
            return new[0]
        return model.CallInfo(0, "out", "dialing", number)

    @defer.inlineCallbacks
    def answer(self):
        yield self.cmd("ATA", kind="call")
        yield self.refresh_calls()

    @defer.inlineCallbacks
    def hangup(self, call_id: int | None = None):
        """Hang up one call (AT+CHLD=1<x>) or all (AT+CHUP, falling back to ATH)."""
        if call_id is not None and len(self._calls) > 1:
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
        if name in ("+CCWA", "+CSSI", "+CSSU", "+CLCC"):
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
        """Read AT+CLCC and emit the differences.  Concurrent calls share one run."""
        if self._refresh_running is not None:
            self._refresh_again = True
            d = defer.Deferred()
            self._refresh_running.addBoth(lambda r: (d.callback(None), r)[1])
            return d
        self._refresh_running = self._do_refresh()

        def done(result):
            self._refresh_running = None
            if self._refresh_again:
                self._refresh_again = False
                self.schedule_call_refresh()
            return result
        self._refresh_running.addBoth(done)
        return self._refresh_running

    @defer.inlineCallbacks
    def _do_refresh(self):
        resp = yield self.cmd("AT+CLCC")
        new = parse_clcc(resp.values("+CLCC"))
        old = self._calls
        for cid, call in new.items():
            if call.number is None and call.direction == "in" and self._clip:
                call = new[cid] = model.CallInfo(cid, call.direction, call.state, self._clip,
                                                 call.multiparty)
            prev = old.get(cid)
            if prev is None and call.state in ("incoming", "waiting"):
                self.emit(model.IncomingCall(call, waiting=call.state == "waiting"))
            elif prev is None or prev.state != call.state:
                self.emit(model.CallStateChanged(call, prev.state if prev else None))
        self._calls = new
        gone = [old[cid] for cid in old if cid not in new]
        if gone:
            yield self._emit_ended(gone)
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
