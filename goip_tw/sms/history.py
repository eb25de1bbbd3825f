"""SMS inbox and outbox per line (F-506).

The hardware keeps 20 messages per line and drops the oldest; we keep everything in
``sms_history`` (declared in goip_tw/sms/schema.py, written by the outgoing queue
for 'out' and by goip_tw/sms/inbound.py for 'in') and page through it newest first.
Paging is by key (``before_id`` = the last id of the previous page), which stays
correct while new messages arrive, unlike an OFFSET. The SQL lives in
goip_tw/sms/repository.py (``history_page``/``history_delete``), shared with the
queue engineer; this module is the API the web UI and JSON API call.
"""

from __future__ import annotations

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from goip_tw.sms import repository as repo

log = Logger()

BOXES = {"inbox": "in", "outbox": "out"}
MAX_PAGE = 200


class HistoryError(ValueError):
    """A bad query; the text names the field."""


@attrs.frozen
class HistoryEntry:
    id: int
    box: str  # inbox | outbox
    line: int | None
    peer: str  # sender (inbox) or recipient (outbox)
    text: str
    parts: int
    state: str
    created_at: float
    slot: str = ""
    message_id: int | None = None


@attrs.frozen
class Page:
    entries: tuple[HistoryEntry, ...]
    next_before: int | None  # pass as before_id for the next (older) page; None = last


def _entry(box: str, row: dict) -> HistoryEntry:
    return HistoryEntry(
        id=row["id"], box=box, line=row.get("line"), peer=row.get("peer", ""),
        text=row.get("text", ""), parts=row.get("parts", 1), state=row.get("state", ""),
        created_at=row.get("created_at", 0.0), slot=row.get("slot") or "",
        message_id=row.get("message_id"),
    )


def _direction(box: str) -> str:
    try:
        return BOXES[box]
    except KeyError:
        raise HistoryError(f"box: {box!r} is not one of {sorted(BOXES)}") from None


def _check_line(line) -> int | None:
    if line is None:
        return None
    if isinstance(line, bool) or not isinstance(line, int) or line < 1:
        raise HistoryError(f"line: {line!r} is not a line number")
    return line


def _count(conn, direction: str, line: int | None) -> int:
    if line is None:
        row = conn.execute("SELECT COUNT(*) FROM sms_history WHERE direction = ?",
                           (direction,)).fetchone()
    else:
        row = conn.execute("SELECT COUNT(*) FROM sms_history WHERE direction = ? AND line = ?",
                           (direction, line)).fetchone()
    return row[0]


class SmsHistory:
    """Read and delete the inbox/outbox. Every method returns a Deferred; a bad
    argument fails it with :class:`HistoryError` (never raises)."""

    def __init__(self, store):
        self.store = store

    def page(self, box: str, line: int | None = None, before_id: int | None = None,
             limit: int = 20, search: str = "") -> defer.Deferred:
        """Newest first; at most ``limit`` (1..200) entries."""
        try:
            direction = _direction(box)
            line = _check_line(line)
            if before_id is not None and (not isinstance(before_id, int) or before_id < 1):
                raise HistoryError(f"before_id: {before_id!r} is not a message id")
            if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
                raise HistoryError(f"limit: {limit!r} is not within 1..{MAX_PAGE}")
            if not isinstance(search, str) or len(search) > 100:
                raise HistoryError("search: at most 100 characters of text")
        except HistoryError as e:
            return defer.fail(e)
        d = self.store.read(repo.history_page, direction, line, before_id, limit + 1, search)

        def paged(rows):
            entries = tuple(_entry(box, r) for r in rows[:limit])
            more = len(rows) > limit
            return Page(entries, entries[-1].id if more and entries else None)

        return d.addCallback(paged)

    def count(self, box: str, line: int | None = None) -> defer.Deferred:
        try:
            direction, line = _direction(box), _check_line(line)
        except HistoryError as e:
            return defer.fail(e)
        return self.store.read(_count, direction, line)

    def delete(self, box: str, line: int | None = None) -> defer.Deferred:
        """Delete one line's box, or the whole box with ``line=None``; fires with
        the number of entries deleted, after the commit."""
        try:
            direction, line = _direction(box), _check_line(line)
        except HistoryError as e:
            return defer.fail(e)
        d = self.store.write(repo.history_delete, direction, line)

        def done(n):
            log.info("sms history: deleted {n} {box} entries on {where}", n=n, box=box,
                     where="all lines" if line is None else f"line {line}")
            return n

        return d.addCallback(done)

    def delete_all(self) -> defer.Deferred:
        """Empty the inbox and the outbox of every line."""
        d = defer.gatherResults([self.delete("inbox"), self.delete("outbox")])
        return d.addCallback(sum)
