"""USSD sessions on selected lines (F-504: send, show the reply, continue, disconnect).

One session per line, driven through the modem API (goip_tw/modem/api.py:
``ussd(code)``, ``ussd_reply(answer)``, ``ussd_cancel()``, all AT+CUSD, 3GPP TS
27.007 §7.15). The ``+CUSD`` result code ``<m>`` maps to our states: 0 ``done``, 1
``open`` (the network wants an answer), 2 ``ended`` (released by the network), 4
``unsupported``, 5 ``timeout``. A session left ``open`` for ``idle_timeout`` seconds
is cancelled, so a forgotten menu does not block the line's next USSD request.
Codes and answers are checked by the modem layer (digits, ``*`` and ``#`` only); a
refused one comes back as an ``error`` result naming the field, never an exception.
"""

from __future__ import annotations

from typing import Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

STATUS_NAMES = {0: "done", 1: "open", 2: "ended", 3: "done", 4: "unsupported", 5: "timeout"}


@attrs.frozen
class UssdResult:
    line: int
    status: str  # open | done | ended | unsupported | timeout | cancelled | error | busy
    text: str = ""
    error: str = ""

    @property
    def session_open(self) -> bool:
        return self.status == "open"


class UssdSessions:
    """``modem_for(line)`` returns the line's modem (goip_tw.modem.api.Modem) or None
    when the line is down; listeners get every :class:`UssdResult` (web UI events)."""

    def __init__(self, clock, modem_for: Callable[[int], object], *,
                 idle_timeout: float = 120.0):
        self.clock = clock
        self.modem_for = modem_for
        self.idle_timeout = idle_timeout
        self._last: dict[int, UssdResult] = {}
        self._busy: set[int] = set()
        self._idle: dict[int, object] = {}
        self._listeners: list[Callable[[UssdResult], None]] = []

    def add_listener(self, fn: Callable[[UssdResult], None]) -> None:
        self._listeners.append(fn)

    def state(self, line: int) -> UssdResult | None:
        return self._last.get(line)

    # -- operations -----------------------------------------------------------------

    def send(self, lines, code: str) -> defer.Deferred:
        """Start ``code`` on every line in ``lines``; fires with {line: UssdResult}."""
        lines = list(dict.fromkeys(lines))
        ds = [self._run(line, "code", lambda m: m.ussd(code)) for line in lines]
        d = defer.gatherResults(ds)
        return d.addCallback(lambda results: dict(zip(lines, results)))

    def reply(self, line: int, answer: str) -> defer.Deferred:
        """Answer an open menu on ``line``."""
        last = self._last.get(line)
        if last is None or not last.session_open:
            return defer.succeed(self._publish(UssdResult(
                line, "error", error="line: no open USSD session")))
        return self._run(line, "answer", lambda m: m.ussd_reply(answer))

    def cancel(self, line: int) -> defer.Deferred:
        """Disconnect the session (AT+CUSD=2); fine to call on an idle line."""
        self._disarm(line)
        modem = self.modem_for(line)
        if modem is None:
            return defer.succeed(self._publish(UssdResult(line, "cancelled")))
        d = defer.maybeDeferred(modem.ussd_cancel)

        def done(_):
            return self._publish(UssdResult(line, "cancelled"))

        def failed(f):
            log.warn("ussd cancel on line {line} failed: {error}", line=line,
                     error=f.getErrorMessage())
            return self._publish(UssdResult(line, "cancelled", error=f.getErrorMessage()))

        return d.addCallbacks(done, failed)

    def notification(self, line: int, reply) -> UssdResult:
        """A network-initiated +CUSD (modem.model.UssdNotification.reply)."""
        result = self._result(line, reply)
        self._after(result)
        return result

    def stop(self) -> None:
        for line in list(self._idle):
            self._disarm(line)

    # -- internals ------------------------------------------------------------------

    def _run(self, line: int, field: str, call) -> defer.Deferred:
        if line in self._busy:
            return defer.succeed(self._publish(UssdResult(
                line, "busy", error="line: a USSD request is already waiting")))
        modem = self.modem_for(line)
        if modem is None:
            return defer.succeed(self._publish(UssdResult(
                line, "error", error=f"line: line {line} is not available")))
        self._disarm(line)
        self._busy.add(line)
        d = defer.maybeDeferred(call, modem)

        def ok(reply):
            result = self._result(line, reply)
            self._after(result)
            return result

        def failed(f):
            log.warn("ussd on line {line} failed: {error}", line=line, error=f.getErrorMessage())
            status = "timeout" if "timeout" in type(f.value).__name__.lower() else "error"
            return self._publish(UssdResult(line, status,
                                            error=f"{field}: {f.getErrorMessage()}"))

        def free(result):
            self._busy.discard(line)
            return result

        return d.addCallbacks(ok, failed).addBoth(free)

    def _result(self, line: int, reply) -> UssdResult:
        status = STATUS_NAMES.get(getattr(reply, "status", None), "error")
        return UssdResult(line, status, getattr(reply, "text", "") or "")

    def _after(self, result: UssdResult) -> None:
        self._publish(result)
        if result.session_open:
            self._idle[result.line] = self.clock.callLater(
                self.idle_timeout, self._expire, result.line)

    def _expire(self, line: int) -> None:
        self._idle.pop(line, None)
        log.info("ussd session on line {line} idle for {s:.0f} s: cancelling", line=line,
                 s=self.idle_timeout)
        self.cancel(line)

    def _disarm(self, line: int) -> None:
        call = self._idle.pop(line, None)
        if call is not None and call.active():
            call.cancel()

    def _publish(self, result: UssdResult) -> UssdResult:
        self._last[result.line] = result
        for fn in list(self._listeners):
            try:
                fn(result)
            except Exception:
                log.failure("ussd listener failed")
        return result
