"""The persistent event log (what the watchdog, auth and SIM management record)."""

from __future__ import annotations

import json
import time


class EventLog:
    def __init__(self, store, clock=None):
        self.store = store
        self._now = clock.seconds if clock is not None else time.time

    def append(self, source: str, event: str, *, level: str = "info", line: int | None = None,
               **detail):
        row = (self._now(), level, source, line, event, json.dumps(detail, default=str))
        return self.store.execute(
            "INSERT INTO event_log (ts, level, source, line, event, detail) VALUES (?, ?, ?, ?, ?, ?)",
            row)

    def recent(self, limit: int = 100, line: int | None = None):
        if line is None:
            return self.store.query(
                "SELECT * FROM event_log ORDER BY id DESC LIMIT ?", (limit,))
        return self.store.query(
            "SELECT * FROM event_log WHERE line = ? ORDER BY id DESC LIMIT ?", (line, limit))
