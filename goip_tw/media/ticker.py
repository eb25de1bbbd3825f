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
Receive phases run, oldest first and member by member, only while the next
slot with members is not yet due: when the core was slow (a shared VM's core
runs several times slower for tens of ms now and then), the sends of the slots
that fell due run first, back to back in one wake-up, and the receives follow
in order; a late packet breaks the RTP pacing and the far
end's jitter buffer, a frame written to the line a few ms later does not (the
voice port buffers it).  At most ``receive_backlog`` receive phases wait (two
periods by default); beyond that (the core is overloaded, not slow for a
moment) the oldest run at once, so the receive side is never starved.  A
receive phase that runs after its member's next send still handles one
period: one frame popped from the jitter buffer, one written to the line.
``lateness`` records how late a slot woke, ``completion`` when its sends were
done and ``slot_end`` when its receive phase was, each against the slot
deadline (``slot_end`` shows how long receives waited for the sends).

How it wakes: on a real reactor (``IReactorFDSet``) on Linux with the default
``time.monotonic`` clock, through a timerfd armed at the absolute deadline
and read by the reactor (``_TimerWaker``).  ``callLater`` cannot do better
than the poll timeout, which Python rounds up to whole milliseconds: every
wake-up was 0-1 ms late, most of the 2 ms send budget.  Anywhere else
(``task.Clock`` in tests, a custom ``now``, other platforms) it uses
``callLater``.  The default 20 slots (1 ms apart) only pay off with the
precise wake-up.

The slot loop (``_fire``) is C (:class:`~goip_tw.media._fastpath.TickerCore`),
so the bookkeeping adds nothing between the wake-up and the first send.  The
wake-up itself is the floor: on the test VM a wake from idle costs ~30 us of
CPU in plain C and ~70 us through the Twisted reactor, a thousand times a
second whatever the call count.
"""

from __future__ import annotations

import time
from typing import Callable

from twisted.internet.interfaces import IReactorFDSet
from twisted.logger import Logger

from goip_tw.media._fastpath import Subscription, TickerCore

log = Logger()


def _timerfd_module():
    """The timerfd extension, None when it is not built (imported per ticker,
    not per process, so a checkout that builds it late still gets it)."""
    try:
        from goip_tw.media import _timerfd
    except ImportError:
        return None
    return _timerfd if _timerfd.AVAILABLE else None


def _monotonic_is_clock_monotonic() -> bool:
    return "CLOCK_MONOTONIC" in time.get_clock_info("monotonic").implementation


def timerfd_usable(clock, now) -> bool:
    """Whether a ticker on ``clock`` timing with ``now`` can wake through a timerfd:
    only a real reactor can watch the fd, and only time.monotonic is on the
    timer's clock (CLOCK_MONOTONIC)."""
    return (IReactorFDSet.providedBy(clock) and now is time.monotonic
            and _monotonic_is_clock_monotonic()
            and _timerfd_module() is not None)


class _TimerWaker:
    """The reactor reader for the ticker's timerfd (one per running spell)."""

    def __init__(self, ticker: "Ticker", timer):
        self.ticker = ticker
        self.timer = timer

    def fileno(self) -> int:
        return self.timer.fileno()

    def doRead(self):
        # 0 expirations: a stale report for a timer re-armed since (or a new
        # timer that reused the fd number); its deadline has not come yet
        if self.timer.ack():
            self.ticker._woken()

    def connectionLost(self, reason) -> None:
        self.timer.close()

    def logPrefix(self) -> str:
        return "media-ticker"


class Ticker(TickerCore):
    def __init__(self, clock, period: float = 0.020, slots: int = 20,
                 now: Callable[[], float] | None = None, max_catch_up: int = 5,
                 lateness_samples: int = 4096, timerfd: bool = True,
                 receive_backlog: int | None = None):
        self.clock = clock
        self.period = period
        self.slots = slots
        self.step = period / slots
        self.now = now or time.monotonic
        self._use_c_clock(self.now is time.monotonic and _monotonic_is_clock_monotonic())
        self.max_catch_up = max_catch_up
        #: receive phases allowed to wait for the sends (two periods' worth)
        self.receive_backlog = receive_backlog if receive_backlog is not None else 2 * slots
        #: wake through a timerfd when possible (``timerfd=False``: always callLater)
        self.use_timerfd = timerfd and timerfd_usable(clock, self.now)
        self._members: list[list[Subscription]] = [[] for _ in range(slots)]
        self._count = 0
        self._call = None     # the pending callLater (callLater mode)
        self._waker: _TimerWaker | None = None  # the timerfd reader while running
        self._pending = False  # a wake-up is armed
        # receive phases waiting: (slot deadline, members), oldest first
        self._deferred: list[tuple[float, tuple[Subscription, ...]]] = []
        self._epoch = 0.0
        self._n = 0  # index of the next slot deadline since epoch
        self.ticks = 0
        self.skipped = 0
        self.errors = 0
        self.lateness: list[float] = []
        self.completion: list[float] = []  # deadline -> end of the slot's send phase
        self.slot_end: list[float] = []    # deadline -> end of the slot's receive phase
        self._lateness_max = lateness_samples
        self.slot_cpu = None  # a list to have each slot's CPU time recorded (bench)

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
        if self._count == 1:
            self._start()
        return sub

    def subscribe_session(self, session) -> Subscription:
        """Subscribe a bridge session (``tick_send``/``tick_receive``), run by a
        direct C call each phase."""
        sub = self.subscribe(session.tick_send, after=session.tick_receive)
        sub.session = session
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if not sub.active:
            return
        sub.active = False
        self._members[sub.slot].remove(sub)
        self._count -= 1
        if self._count == 0:
            self._stop()

    def close(self) -> None:
        """Drop every member and release the timer (service stop); the ticker
        starts again on the next subscribe."""
        for members in self._members:
            for sub in members:
                sub.active = False
            members.clear()
        self._count = 0
        self._stop()

    @property
    def wake_mode(self) -> str:
        return "timerfd" if self.use_timerfd else "callLater"

    def _start(self) -> None:
        """The first member: a new spell of deadlines from now."""
        self._epoch = self.now()
        self._n = 0
        if self.use_timerfd:
            try:
                timer = _timerfd_module().TimerFD()
            except OSError as e:
                log.warn("media ticker: no timerfd ({error}); waking with callLater", error=e)
                self.use_timerfd = False
            else:
                self._waker = _TimerWaker(self, timer)
                self.clock.addReader(self._waker)
        self._schedule()

    def _stop(self) -> None:
        """No members left: no more wake-ups, and no reader or fd left behind."""
        self._pending = False
        self._deferred = []
        self._head = 0
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        waker, self._waker = self._waker, None
        if waker is not None:
            self.clock.removeReader(waker)
            waker.timer.close()

    def take_lateness(self) -> tuple[list[float], list[float]]:
        """Wake-up and send-phase lateness samples since the last take."""
        return self.take_samples()[:2]

    def take_samples(self) -> tuple[list[float], list[float], list[float]]:
        """Wake-up, send-phase and slot-end lateness samples since the last take."""
        out = (self.lateness, self.completion, self.slot_end)
        self.lateness, self.completion, self.slot_end = [], [], []
        return out
