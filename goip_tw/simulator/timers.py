"""Delayed calls that can all be cancelled at once.

Every simulated object schedules through a :class:`Timers` so ``stop()`` leaves
no delayed call behind on the reactor (tests assert this on a ``Clock``)."""

from __future__ import annotations


class Timers:
    def __init__(self, clock):
        self.clock = clock
        self._calls = set()

    def later(self, delay, func, *args, **kwargs):
        holder = []

        def fire():
            self._calls.discard(holder[0])
            func(*args, **kwargs)

        call = self.clock.callLater(max(0.0, delay), fire)
        holder.append(call)
        self._calls.add(call)
        return call

    def cancel(self, call) -> None:
        if call is not None and call.active():
            call.cancel()
        self._calls.discard(call)

    def cancel_all(self) -> None:
        for call in list(self._calls):
            if call.active():
                call.cancel()
        self._calls.clear()

    def __len__(self):
        return sum(1 for c in self._calls if c.active())
