"""F-508 call test tool: call a number from a chosen line for N seconds, then hang up.

An API, not a page: the web layer calls ``CallTester.run(line, number, seconds)`` and
shows the ``CallTestResult``.  The call is a normal call to the controller (line
state, timers, CDR with ``test_call = 1``), only without a SIP leg.
"""

from __future__ import annotations

import attrs
from twisted.internet import defer

from goip_tw.calls.dialrules import NumberRejected
from goip_tw.calls.forward import cause_of

MAX_SECONDS = 3600


class CallTestError(ValueError):
    """Bad request (unknown line, bad number, bad duration); the message names the field."""


@attrs.frozen
class CallTestResult:
    line: int
    number: str
    answered: bool
    rang: bool
    talk_seconds: float
    end_side: str | None
    cause: int | None
    cause_text: str | None

    def as_dict(self) -> dict:
        return attrs.asdict(self)


class CallTester:
    def __init__(self, controller):
        self.controller = controller

    def run(self, line, number, seconds) -> defer.Deferred:
        """Deferred CallTestResult; fails with CallTestError for a bad request."""
        try:
            line, number, seconds = self._check(line, number, seconds)
        except CallTestError as e:
            return defer.fail(e)
        done = defer.Deferred()
        clock = self.controller.clock
        timer = []

        def ended(call, record):
            if timer and timer[0].active():
                timer[0].cancel()
            done.callback(CallTestResult(
                line=line, number=number, answered=record.answered,
                rang=record.ring_time is not None, talk_seconds=round(record.duration, 3),
                end_side=record.end_side, cause=cause_of(record.mobile_cause,
                                                         record.mobile_cause_text),
                cause_text=record.mobile_cause_text or record.sip_reason))

        call = self.controller.test_call(line, number, on_end=ended)
        if not call.ended:
            # The clock starts at dialing: "call for N seconds" bounds the whole test.
            timer.append(clock.callLater(seconds, call.end, "gateway",
                                         sip_reason="test finished"))
        return done

    def _check(self, line, number, seconds):
        lines = list(self.controller.lines.line_numbers())
        try:
            line = int(line)
        except (TypeError, ValueError):
            raise CallTestError(f"line: not a number: {line!r}") from None
        if line not in lines:
            raise CallTestError(f"line: no line {line} (lines: {lines})")
        if not isinstance(number, str) or not number or not all(
                c.isdigit() or c in "+*#" for c in number) or len(number) > 32:
            raise CallTestError(f"number: {number!r} is not a phone number")
        try:
            seconds = float(seconds)
        except (TypeError, ValueError):
            raise CallTestError(f"seconds: not a number: {seconds!r}") from None
        if not 1 <= seconds <= MAX_SECONDS:
            raise CallTestError(f"seconds: must be 1-{MAX_SECONDS}; got {seconds:g}")
        cfg = self.controller.line_config(line)
        from goip_tw.calls.controller import rewrite_number

        try:
            number = rewrite_number(cfg.dial_rules, number, cfg.strict_dial_rules)
        except NumberRejected:
            raise CallTestError(f"number: {number!r} refused by strict dial rules") from None
        return line, number, seconds
