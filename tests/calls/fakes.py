"""Recording fakes of the controller's collaborators (goip_tw/calls/interfaces.py).

Every action is appended to one shared list as a tuple, so tests assert the exact
sequence across SIP, module and media (magic-wormhole style).
"""

from __future__ import annotations

import itertools

from twisted.internet.task import Clock
from zope.interface import implementer

from goip_tw.calls.controller import CallController
from goip_tw.calls.interfaces import (
    IMediaSide, IMobileCall, IMobileLines, ISipLeg, ISipSide, IStoppable, LineStatus,
    MediaStats)
from goip_tw.calls.linestate import LineStates
from goip_tw.config.sections.calls import CallsConfig, LineCalls
from goip_tw.events import EventBus

_ids = itertools.count(1)


@implementer(ISipLeg)
class FakeLeg:
    def __init__(self, log, call_id=None, codec="PCMA"):
        self.log = log
        self.call_id = call_id or f"call-{next(_ids)}@test"
        self.codec = codec
        self.listener = None

    def set_listener(self, listener):
        self.listener = listener

    def ringing(self):
        self.log.append(("sip", "180"))

    def early_media(self):
        self.log.append(("sip", "183"))

    def answer(self):
        self.log.append(("sip", "200"))

    def reject(self, code, reason=None):
        self.log.append(("sip", code))

    def hangup(self):
        self.log.append(("sip", "bye"))

    def send_dtmf(self, digit, duration_ms=100):
        self.log.append(("sip", "info", digit))

    def hold(self, mode="sendonly"):
        from twisted.internet import defer

        self.log.append(("sip", "hold"))
        return defer.succeed(200)

    def resume(self):
        from twisted.internet import defer

        self.log.append(("sip", "resume"))
        return defer.succeed(200)


@implementer(ISipSide)
class FakeSip:
    def __init__(self, log):
        self.log = log
        self.legs = []

    def originate(self, target, caller_id, cid_mode, line, listener):
        self.log.append(("sip", "invite", target, caller_id, cid_mode))
        leg = FakeLeg(self.log)
        leg.set_listener(listener)
        self.legs.append(leg)
        return leg


@implementer(IMobileCall)
class FakeMobileCall:
    def __init__(self, log, line, name):
        self.log = log
        self.line = line
        self.name = name
        self.listener = None

    def set_listener(self, listener):
        self.listener = listener

    def answer(self):
        self.log.append(("gsm", self.line, "answer", self.name))

    def hangup(self):
        self.log.append(("gsm", self.line, "hangup", self.name))

    def send_dtmf(self, digits, duration_ms):
        self.log.append(("gsm", self.line, "dtmf", digits))


@implementer(IMobileLines)
class FakeLines:
    def __init__(self, log, count=4, **status):
        self.log = log
        self.statuses = {n: LineStatus(n, slot="A", iccid=f"8986{n:04d}", **status)
                         for n in range(1, count + 1)}
        self.calls = []

    def line_numbers(self):
        return sorted(self.statuses)

    def status(self, line):
        return self.statuses[line]

    def dial(self, line, number, listener):
        self.log.append(("gsm", line, "dial", number))
        mcall = FakeMobileCall(self.log, line, number)
        mcall.set_listener(listener)
        self.calls.append(mcall)
        return mcall

    def ring(self, line, caller, name="in"):
        return FakeMobileCall(self.log, line, name)

    def chld(self, line, n):
        self.log.append(("gsm", line, "chld", n))


@implementer(IStoppable)
class _Handle:
    def __init__(self, log, what, result=None):
        self.log, self.what, self.result = log, what, result
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.log.append(("media", "stop") + self.what)
        return self.result


@implementer(IMediaSide)
class FakeMedia:
    def __init__(self, log):
        self.log = log
        self.detectors = {}

    def bridge(self, line, leg):
        self.log.append(("media", "bridge", line))
        return _Handle(self.log, ("bridge", line), MediaStats("PCMA", 0.01, 2.0, False))

    def tone_to_line(self, line, tone):
        self.log.append(("media", "tone", "line", tone))
        return _Handle(self.log, ("tone", tone))

    def tone_to_leg(self, leg, tone):
        self.log.append(("media", "tone", "leg", tone))
        return _Handle(self.log, ("tone", tone))

    def detect_line_dtmf(self, line, callback):
        self.detectors["line"] = callback
        return _Handle(self.log, ("detector", "line"))

    def detect_leg_dtmf(self, leg, callback):
        self.detectors["leg"] = callback
        return _Handle(self.log, ("detector", "leg"))


class FakeCdrs:
    def __init__(self):
        self.records = []

    def record(self, cdr):
        from twisted.internet import defer

        self.records.append(cdr)
        return defer.succeed(len(self.records))


class Rig:
    """A controller wired to fakes, a Clock and an event bus."""

    def __init__(self, lines=None, dtmf_mode="rfc4733", router=None, line_count=4, **cfg):
        if lines is not None:
            cfg["lines"] = tuple(LineCalls(**kw) for kw in lines)
        self.config = CallsConfig(**cfg)
        self.log = []
        self.clock = Clock()
        self.events = EventBus()
        self.published = []
        self.events.subscribe("*", lambda topic, **f: self.published.append((topic, f)))
        self.sip = FakeSip(self.log)
        self.lines = FakeLines(self.log, line_count)
        self.media = FakeMedia(self.log)
        self.cdrs = FakeCdrs()
        self.states = LineStates(self.events, self.clock)
        self.ctl = CallController(
            clock=self.clock, sip=self.sip, lines=self.lines, media=self.media,
            line_states=self.states, calls_config=lambda: self.config,
            dtmf_mode=lambda: dtmf_mode, router=router, cdrs=self.cdrs, events=self.events)

    def line_states(self, line):
        return [f["state"] for t, f in self.published
                if t == "line.call_state" and f["line"] == line]

    def take(self):
        out, self.log[:] = list(self.log), []
        return out

    def assert_clean(self):
        assert self.clock.getDelayedCalls() == []
        assert not self.ctl.calls
