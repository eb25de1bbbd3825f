"""One shared, staggered 20 ms tick for every media stream.

A timer per stream costs 15-20 us per packet in Twisted; one timer for all of
them costs far less (issue 6 measurements).  Streams are spread over
``slots`` phases of the period so their packets do not all leave in the same
millisecond.  Deadlines are absolute multiples of the period on a monotonic
clock (``now``), so pacing does not drift over an hour-long call; each wait is
re-computed from ``now``, and when the process falls more than
``max_catch_up`` periods behind, the ticker skips ahead instead of bursting.

Each slot runs in two phases: every member's ``callback`` (what must leave
on time: the RTP send), then every member's ``after`` (receive, decode, write
to the line).  With one phase, the last packet of a busy slot waited for all
the decoding before it; now it waits only for the other sends (measured in
``bench/media.py``: the receive half is more than half of a call's tick).
``lateness`` records how late a slot woke, ``completion`` when its sends were
done and ``slot_end`` when all its work was, each against the slot deadline.
"""

from __future__ import annotations

import time
from typing import Callable

from twisted.logger import Logger

log = Logger()


class Subscription:
    __slots__ = ("callback", "after", "slot", "active")

    def __init__(self, callback, slot, after=None):
        self.callback = callback
        self.after = after
        self.slot = slot
        self.active = True


class Ticker:
    def __init__(self, clock, period: float = 0.020, slots: int = 10,
                 now: Callable[[], float] | None = None, max_catch_up: int = 5,
                 lateness_samples: int = 4096):
        self.clock = clock
        self.period = period
        self.slots = slots
        self.step = period / slots
        self.now = now or time.monotonic
        self.max_catch_up = max_catch_up
        self._members: list[list[Subscription]] = [[] for _ in range(slots)]
        self._count = 0
        self._call = None
        self._epoch = 0.0
        self._n = 0  # index of the next slot deadline since epoch
        self.ticks = 0
        self.skipped = 0
        self.errors = 0
        self.lateness: list[float] = []
        self.completion: list[float] = []  # deadline -> end of the slot's send phase
        self.slot_end: list[float] = []    # deadline -> end of all the slot's work
        self._lateness_max = lateness_samples

    def __len__(self) -> int:
        return self._count

    def subscribe(self, callback: Callable[[], None],
                  after: Callable[[], None] | None = None) -> Subscription:
        """Call ``callback()`` once per period, in the least busy phase, and
        ``after()`` once the whole slot's callbacks have run."""
        slot = min(range(self.slots), key=lambda i: len(self._members[i]))
        sub = Subscription(callback, slot, after)
        self._members[slot].append(sub)
        self._count += 1
        if self._call is None:
            self._epoch = self.now()
            self._n = 0
            self._schedule()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if not sub.active:
            return
        sub.active = False
        self._members[sub.slot].remove(sub)
        self._count -= 1
        if self._count == 0 and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _schedule(self) -> None:
        deadline = self._epoch + self._n * self.step
        self._call = self.clock.callLater(max(0.0, deadline - self.now()), self._fire)

    def _fire(self) -> None:
        self._call = None
        now = self.now()
        deadline = self._epoch + self._n * self.step
        late = now - deadline
        behind = int(late / self.period)
        if behind > self.max_catch_up:
            self._n += behind * self.slots
            self.skipped += behind
            log.warn("media ticker fell {n} periods behind; skipping ahead", n=behind)
        if len(self.lateness) < self._lateness_max:
            self.lateness.append(late)
        members = tuple(self._members[self._n % self.slots])
        for sub in members:
            if sub.active:
                try:
                    sub.callback()
                except Exception:
                    self.errors += 1
                    log.failure("media tick callback failed")
        record = len(self.completion) < self._lateness_max
        if record:
            self.completion.append(self.now() - deadline)
        for sub in members:
            if sub.active and sub.after is not None:
                try:
                    sub.after()
                except Exception:
                    self.errors += 1
                    log.failure("media tick callback failed")
        if record:
            self.slot_end.append(self.now() - deadline)
        self.ticks += 1
        self._n += 1
        if self._count:
            # jump over empty slots so idle phases cost no wake-ups
            for _ in range(self.slots - 1):
                if self._members[self._n % self.slots]:
                    break
                self._n += 1
            self._schedule()

    def take_lateness(self) -> tuple[list[float], list[float]]:
        """Wake-up and send-phase lateness samples since the last take."""
        return self.take_samples()[:2]

    def take_samples(self) -> tuple[list[float], list[float], list[float]]:
        """Wake-up, send-phase and slot-end lateness samples since the last take."""
        out = (self.lateness, self.completion, self.slot_end)
        self.lateness, self.completion, self.slot_end = [], [], []
        return out
