"""RFC 3261 §17 timer durations and the scheduler every transaction timer runs on.

``_Scheduler`` keeps one clock call per distinct delay with a FIFO of deadlines
behind it: equal delays expire in the order they were set, so thousands of
Timer J's (one per completed non-INVITE server transaction) cost one
``DelayedCall`` instead of thousands of heap entries.
"""

from __future__ import annotations

import collections

import attrs
from twisted.logger import Logger

log = Logger()


@attrs.frozen
class Timers:
    """RFC 3261 §17 durations in seconds (F-431)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_b: float | None = None
    timer_f: float | None = None
    timer_d: float = 32.0

    @classmethod
    def from_config(cls, cfg) -> "Timers":
        return cls(t1=cfg.t1, t2=cfg.t2, t4=cfg.t4, timer_b=cfg.ict_timeout,
                   timer_f=cfg.nict_timeout)

    @property
    def b(self) -> float:
        return self.timer_b if self.timer_b is not None else 64 * self.t1

    @property
    def f(self) -> float:
        return self.timer_f if self.timer_f is not None else 64 * self.t1

    @property
    def h(self) -> float:
        return 64 * self.t1


class _Scheduler:
    """Timers on ``clock`` grouped by delay: equal delays expire in FIFO order."""

    def __init__(self, clock):
        self.clock = clock
        self._queues: dict[float, list] = {}

    def call_later(self, delay: float, fn, *args) -> list:
        entry = [self.clock.seconds() + delay, fn, args, delay]
        q = self._queues.get(delay)
        if q is None:
            q = self._queues[delay] = [collections.deque(), None]
        q[0].append(entry)
        if q[1] is None:
            q[1] = self.clock.callLater(delay, self._fire, delay)
        return entry

    def cancel(self, entry: list) -> None:
        if entry[1] is None:
            return
        entry[1] = None
        q = self._queues.get(entry[3])
        if q is not None:
            dq = q[0]
            while dq and dq[0][1] is None:
                dq.popleft()
            if not dq:
                if q[1] is not None:
                    q[1].cancel()
                del self._queues[entry[3]]

    def _fire(self, delay: float) -> None:
        q = self._queues[delay]
        dq = q[0]
        q[1] = None
        now = self.clock.seconds() + 1e-9
        for _ in range(len(dq)):
            if not dq or dq[0][0] > now:
                break
            entry = dq.popleft()
            fn = entry[1]
            if fn is not None:
                entry[1] = None
                try:
                    fn(*entry[2])
                except Exception:
                    log.failure("SIP timer callback failed")
        while dq and dq[0][1] is None:
            dq.popleft()
        if q[1] is not None:
            return  # a callback already re-armed this queue
        if dq:
            q[1] = self.clock.callLater(max(0.0, dq[0][0] - self.clock.seconds()),
                                        self._fire, delay)
        elif self._queues.get(delay) is q:
            del self._queues[delay]

    def stop(self) -> None:
        for dq, call in self._queues.values():
            if call is not None and call.active():
                call.cancel()
            for entry in dq:
                entry[1] = None
        self._queues.clear()
