"""In-process publish/subscribe for status events.

Every state change that the web UI, the metrics endpoint or another subsystem may
care about (line state, registration, call state, SMS state) is published here as a
topic plus named fields; the live UI stream and the persistent event log subscribe.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from twisted.logger import Logger


class EventBus:
    log = Logger()

    def __init__(self):
        self._subs: dict[str, list[Callable]] = defaultdict(list)

    def subscribe(self, topic: str, fn: Callable) -> Callable[[], None]:
        """Call ``fn(topic, **fields)`` for ``topic`` ('*' = every topic).  Returns an
        unsubscribe function."""
        self._subs[topic].append(fn)

        def unsubscribe():
            if fn in self._subs.get(topic, []):
                self._subs[topic].remove(fn)

        return unsubscribe

    def publish(self, topic: str, **fields) -> None:
        for fn in list(self._subs.get(topic, ())) + list(self._subs.get("*", ())):
            try:
                fn(topic, **fields)
            except Exception:
                self.log.failure("event subscriber failed on {topic}", topic=topic)
