"""Reassembly of concatenated SMS (3GPP TS 23.040 §9.2.3.24.1 / .8).

Pure bookkeeping on decoded messages; time comes from the ``clock`` given.
"""

from __future__ import annotations

from typing import Callable

import attrs

@attrs.define
class _Pending:
    parts: dict
    timer: object


class Reassembler:
    """Collects concatenated parts keyed by (address, ref, total) and hands back the
    whole message once every part is in.  Duplicate parts are dropped.  After
    ``timeout`` seconds an incomplete message is handed to ``on_timeout(message,
    missing_seqs)`` with the text of the parts it has, so nothing is silently lost."""

    def __init__(self, clock, timeout: float,
                 on_timeout: Callable[[object, tuple[int, ...]], None] | None = None):
        self._clock = clock
        self._timeout = timeout
        self.on_timeout = on_timeout
        self._pending: dict[tuple, _Pending] = {}

    @staticmethod
    def _address(msg) -> str:
        return getattr(msg, "sender", None) or getattr(msg, "recipient", "")

    def add(self, msg):
        """Return the complete message, or None while parts are missing (or for a
        duplicate part)."""
        c = msg.concat
        if c is None or c.total <= 1:
            return msg
        key = (self._address(msg), c.ref_bits, c.ref, c.total)
        pend = self._pending.get(key)
        if pend is None:
            timer = self._clock.callLater(self._timeout, self._expire, key)
            pend = self._pending[key] = _Pending({}, timer)
        if c.seq in pend.parts:
            return None
        pend.parts[c.seq] = msg
        if len(pend.parts) < c.total:
            return None
        del self._pending[key]
        if pend.timer.active():
            pend.timer.cancel()
        return self._join(pend.parts)

    @staticmethod
    def _join(parts: dict, keep_concat: bool = False):
        """Join in part order.  A complete message has ``concat=None``; a partial one
        keeps the first present part's Concat so the caller can tell which it was."""
        ordered = [parts[s] for s in sorted(parts)]
        first = ordered[0]
        data = None
        if first.data is not None:
            data = b"".join(p.data or b"" for p in ordered)
        return attrs.evolve(first, text="".join(p.text for p in ordered), data=data,
                            concat=first.concat if keep_concat else None)

    def _expire(self, key):
        pend = self._pending.pop(key, None)
        if pend is None:
            return
        total = key[3]
        missing = tuple(s for s in range(1, total + 1) if s not in pend.parts)
        if self.on_timeout is not None:
            self.on_timeout(self._join(pend.parts, keep_concat=True), missing)

    def pending(self) -> int:
        return len(self._pending)

    def flush(self):
        """Cancel the timers and yield every incomplete message now (service stop)."""
        for key in list(self._pending):
            pend = self._pending[key]
            if pend.timer.active():
                pend.timer.cancel()
            self._expire(key)
