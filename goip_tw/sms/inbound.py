"""Received SMS: stored exactly once, reassembled, then handed on.

The modem layer calls :meth:`InboundSms.part_received` for every SMS-DELIVER it
reads and deletes the module's copy only when the returned Deferred fires. That
Deferred fires after the store committed the part (IStore.write group commit), so:

- a crash before the commit leaves the SMS on the module; it is read again later;
- a crash after the commit but before the delete makes the module deliver it again;
  the duplicate test (SPEC §7: same IMSI, sender, service-centre time stamp,
  concatenation reference and part number, the primary key of
  ``sms_inbound_part``) drops it and the delete is retried.

Single-part messages have no concatenation reference (TS 23.040 §9.2.3.24.1); two
different ones from the same sender within the same second would share every key
field, so for them the reference column holds a negative CRC of the text (never a
real 0-255 reference). A true duplicate has the same text, hence the same key.

Parts of a long message are grouped by (IMSI, sender, reference, total) and joined
when the last part arrives, in the same transaction that stores it. A group still
missing parts after ``reassembly_timeout`` seconds is stored with what arrived, a
marker standing in for each missing part, and flagged ``incomplete``.

The transaction that completes a message also writes its inbox row (sms_history,
F-506) and its durable forward jobs (goip_tw/sms/forward.py), so forwards survive
restarts. Interceptors (SMS commands F-1501, own-number tokens F-510) can claim a
message in that same transaction: a claimed message is neither forwarded nor shown
to observers, and its text is stored redacted (passwords never rest in clear).

Observers (:class:`IReceivedSmsObserver`, e.g. SMPP deliver_sm, the GoIP SMS server
client) are called after the commit, once per message, on the reactor thread.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import Interface

log = Logger()

MISSING_PART = "[…]"
MAX_PARTS = 255


@attrs.frozen
class ReceivedPart:
    """One SMS-DELIVER as the modem layer read it (already decoded to text).

    ``scts`` is the service-centre time stamp (TP-SCTS) in any stable string form;
    ``ref``/``total``/``seq`` come from the concatenation UDH (IEI 0x00/0x08), or
    are 0/1/1 for a single-part message.
    """

    line: int
    sender: str
    text: str
    scts: str
    imsi: str = ""
    iccid: str = ""
    slot: str = ""
    ref: int = 0
    total: int = 1
    seq: int = 1
    #: Set when the modem layer already reassembled the message
    #: (goip_tw.modem.model.IncomingSms.dedupe_key): then it is the duplicate key,
    #: ``parts`` the number of parts and ``complete`` False when some never came.
    dedupe_key: str = ""
    parts: int = 1
    complete: bool = True
    #: Stands for the SIM in the duplicate key instead of ``imsi`` when set (see
    #: :meth:`InboundSms.handler_for`).
    sim_key: str = ""


@attrs.frozen
class ReceivedSms:
    """A stored received message. ``id`` is its sms_history row id."""

    id: int
    line: int
    sender: str
    text: str
    scts: str
    imsi: str = ""
    iccid: str = ""
    slot: str = ""
    parts: int = 1
    complete: bool = True
    received_at: float = 0.0


@attrs.frozen
class Interception:
    """An interceptor's claim on a message.

    ``history_text`` replaces the text in the inbox (redaction); ``record(conn, msg)``
    (optional) runs inside the storing transaction, so what the interceptor learns is
    durable together with the message; ``action`` runs on the reactor thread after the
    commit and may return a Deferred.
    """

    kind: str
    history_text: str
    action: Callable[[ReceivedSms], Any]
    record: Callable[[Any, ReceivedSms], Any] | None = None


@attrs.frozen
class Outcome:
    """What storing one part led to (the Deferred's result)."""

    duplicate: bool = False
    message: ReceivedSms | None = None
    interception: Interception | None = None
    jobs: tuple = ()


class IReceivedSmsObserver(Interface):
    """Told about every received message that is not a command/token.

    Called once per message after its commit, on the reactor thread; the message is
    already in sms_history (``msg.id``), so an observer that must not miss one across
    a crash can catch up with ``SELECT ... FROM sms_history WHERE direction = 'in'
    AND id > <last id it handled>``.
    """

    def sms_received(msg):
        """``msg`` is a :class:`ReceivedSms`; the return value is ignored."""


class IInboundInterceptor(Interface):
    """Claims messages meant for the gateway itself (commands, tokens).

    ``intercept`` runs inside the store's write transaction on the writer thread: it
    must be a pure function of the message (no I/O, no reactor, no shared state).
    """

    def intercept(msg):
        """Return an :class:`Interception` or None."""


class IForwardPlanner(Interface):
    """Writes the forward jobs of a message inside its transaction."""

    def plan(conn, msg, now):
        """Insert jobs for ``msg``; return them (handed to ``schedule`` after commit)."""

    def schedule(jobs):
        """Start working on committed jobs (reactor thread)."""


def key_sim(part: ReceivedPart) -> str:
    """The SIM column of the duplicate key."""
    return part.sim_key or part.imsi


def dedup_ref(part: ReceivedPart) -> int:
    """The reference column of the duplicate key (see the module docstring)."""
    if part.dedupe_key:
        return 0
    if part.total > 1:
        return part.ref
    return -1 - (zlib.crc32(part.text.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF)


def normalise(part: ReceivedPart) -> ReceivedPart:
    """Repair what would make a part unstorable; never drop it (it is the only copy)."""
    fixes = {}
    if isinstance(part.line, bool) or not isinstance(part.line, int) or part.line < 0:
        log.warn("received sms: field line={line!r} invalid, stored as line 0", line=part.line)
        fixes["line"] = 0
    if not isinstance(part.total, int) or not 1 <= part.total <= MAX_PARTS:
        log.warn("received sms: field total={total!r} out of range, treated as single",
                 total=part.total)
        fixes.update(total=1, seq=1, ref=0)
    elif not isinstance(part.seq, int) or not 1 <= part.seq <= part.total:
        log.warn("received sms: field seq={seq!r} outside 1..{total}, treated as single",
                 seq=part.seq, total=part.total)
        fixes.update(total=1, seq=1, ref=0)
    if not isinstance(part.ref, int) or not 0 <= part.ref <= 0xFFFF:
        log.warn("received sms: field ref={ref!r} invalid, using 0", ref=part.ref)
        fixes["ref"] = 0
    if part.dedupe_key and (part.total, part.seq) != (1, 1):
        fixes.update(total=1, seq=1)
    if not isinstance(part.parts, int) or not 1 <= part.parts <= MAX_PARTS:
        fixes["parts"] = 1
    for name in ("sender", "text", "scts", "imsi", "iccid", "slot", "dedupe_key", "sim_key"):
        value = getattr(part, name)
        if not isinstance(value, str):
            log.warn("received sms: field {field} is not text", field=name)
            fixes[name] = "" if value is None else str(value)
    return attrs.evolve(part, **fixes) if fixes else part


# -- functions run by the store's writer thread ---------------------------------------

_GROUP_SQL = (
    "SELECT seq, text, line, scts, received_at FROM sms_inbound_part "
    "WHERE imsi = ? AND sender = ? AND ref = ? AND total = ? AND history_id IS NULL "
    "ORDER BY received_at, seq"
)


def _store_part(conn, part: ReceivedPart, now: float, meta: dict, interceptors, planner):
    ref = dedup_ref(part)
    key_scts = part.dedupe_key or part.scts
    if conn.execute(
        "SELECT 1 FROM sms_inbound_part WHERE imsi = ? AND sender = ? AND scts = ? "
        "AND ref = ? AND seq = ?",
        (key_sim(part), part.sender, key_scts, ref, part.seq),
    ).fetchone():
        return Outcome(duplicate=True)
    conn.execute(
        "INSERT INTO sms_inbound_part (imsi, sender, scts, ref, total, seq, line, text, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key_sim(part), part.sender, key_scts, ref, part.total, part.seq, part.line,
         part.text, now),
    )
    group = (key_sim(part), part.sender, ref, part.total)
    rows = conn.execute(_GROUP_SQL, group).fetchall()
    if part.dedupe_key:
        meta = dict(meta, scts=part.scts, parts=part.parts)
        return _assemble(conn, group, rows, now, meta, interceptors, planner,
                         complete=part.complete)
    if len({r[0] for r in rows}) < part.total:
        return Outcome()
    return _assemble(conn, group, rows, now, meta, interceptors, planner, complete=True)


def _expire_group(conn, group, now: float, meta: dict, interceptors, planner):
    rows = conn.execute(_GROUP_SQL, group).fetchall()
    if not rows:
        return Outcome()
    return _assemble(conn, group, rows, now, meta, interceptors, planner, complete=False)


def _assemble(conn, group, rows, now, meta, interceptors, planner, complete):
    _, sender, ref, total = group
    imsi = meta.get("imsi", group[0])
    by_seq: dict[int, str] = {}
    for r in rows:
        by_seq.setdefault(r[0], r[1])
    text = "".join(by_seq.get(i, MISSING_PART) for i in range(1, total + 1))
    first = rows[0]
    total = meta.get("parts", total)
    msg = ReceivedSms(
        id=0, line=first[2], sender=sender, text=text, scts=meta.get("scts", first[3]),
        imsi=imsi, iccid=meta.get("iccid", ""), slot=meta.get("slot", ""), parts=total,
        complete=complete, received_at=first[4],
    )
    interception = None
    if complete:
        for interceptor in interceptors:
            try:
                interception = interceptor.intercept(msg)
            except Exception:
                # A bug there must not turn the SMS into a poison message that the
                # module offers again forever: store it as an ordinary one.
                log.failure("received sms: interceptor {i!r} failed", i=interceptor)
                interception = None
            if interception is not None:
                break
    stored_text = interception.history_text if interception else text
    state = interception.kind if interception else ("received" if complete else "incomplete")
    cur = conn.execute(
        "INSERT INTO sms_history (direction, line, slot, imsi, peer, text, parts, state, "
        "created_at) VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?)",
        (msg.line, msg.slot, imsi, sender, stored_text, total, state, now),
    )
    msg = attrs.evolve(msg, id=cur.lastrowid)
    # Only the key is needed from now on: dropping the text keeps passwords of
    # commands out of the table and makes deleting the inbox (F-506) delete it all.
    conn.execute(
        "UPDATE sms_inbound_part SET history_id = ?, text = '' WHERE imsi = ? AND "
        "sender = ? AND ref = ? AND total = ? AND history_id IS NULL",
        (msg.id, *group),
    )
    if interception is not None and interception.record is not None:
        interception.record(conn, msg)
    jobs = ()
    if interception is None and planner is not None:
        try:
            jobs = tuple(planner.plan(conn, msg, now))
        except Exception:
            log.failure("received sms {id}: planning its forwards failed", id=msg.id)
    return Outcome(message=msg, interception=interception, jobs=jobs)


def _pending_groups(conn):
    return conn.execute(
        "SELECT imsi, sender, ref, total, MIN(received_at) FROM sms_inbound_part "
        "WHERE history_id IS NULL GROUP BY imsi, sender, ref, total"
    ).fetchall()


def _prune(conn, before: float) -> int:
    return conn.execute(
        "DELETE FROM sms_inbound_part WHERE history_id IS NOT NULL AND received_at < ?",
        (before,),
    ).rowcount


class InboundSms:
    """The received-SMS pipeline (one per gateway).

    ``store``: IStore; ``clock``: IReactorTime for reassembly timers and pruning.
    ``interceptors``: IInboundInterceptor in priority order; ``planner``:
    IForwardPlanner (goip_tw.sms.forward.Forwarder) or None.
    ``retention``: how long duplicate keys are kept after a message was stored.
    """

    def __init__(self, store, clock, *, reassembly_timeout: float = 300.0,
                 interceptors=(), planner=None, retention: float = 7 * 86400.0):
        self.store = store
        self.clock = clock
        self.reassembly_timeout = reassembly_timeout
        self.interceptors = list(interceptors)
        self.planner = planner
        self.retention = retention
        self._observers: list = []
        self._timers: dict[tuple, Any] = {}
        self._meta: dict[tuple, dict] = {}
        self._pruner: task.LoopingCall | None = None

    # -- wiring ---------------------------------------------------------------------

    def add_observer(self, observer) -> None:
        self._observers.append(observer)

    def remove_observer(self, observer) -> None:
        self._observers.remove(observer)

    def add_interceptor(self, interceptor) -> None:
        self.interceptors.append(interceptor)

    # -- life cycle -----------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self):
        """Re-arm reassembly timers for groups left incomplete by the last run."""
        rows = yield self.store.read(_pending_groups)
        now = self.clock.seconds()
        for imsi, sender, ref, total, first in rows:
            self._arm((imsi, sender, ref, total), max(0.0, first + self.reassembly_timeout - now))
        self._pruner = task.LoopingCall(self.prune)
        self._pruner.clock = self.clock
        self._pruner.start(3600.0, now=False)

    def stop(self) -> None:
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        if self._pruner is not None and self._pruner.running:
            self._pruner.stop()
        self._pruner = None

    def prune(self):
        return self.store.write(_prune, self.clock.seconds() - self.retention)

    # -- the modem callback ---------------------------------------------------------

    def handler_for(self, line: int, sim: Callable[[], tuple[str, str]] = lambda: ("", "")):
        """A ``modem.sms_handler`` for ``line`` (goip_tw.modem.api contract): takes a
        reassembled ``IncomingSms``, returns the Deferred after which the module copy
        may be deleted. ``sim()`` gives the (ICCID, slot) bound right now.

        The duplicate key is the modem's ``dedupe_key`` with its IMSI field replaced
        by the line and slot: the modem may deliver a message before it has read the
        SIM's IMSI (key ``-|…``) and, after a crash, again once it has (``<IMSI>|…``);
        the copy on the SIM is re-read through the same line and slot either way.
        """

        def handle(sms) -> defer.Deferred:
            iccid, slot = sim()
            stamp = sms.timestamp.isoformat() if sms.timestamp is not None else ""
            key = sms.dedupe_key or ""
            prefix = f"{sms.imsi or '-'}|"
            if key.startswith(prefix):
                key = key[len(prefix):]
            return self.part_received(ReceivedPart(
                line=line, sender=sms.sender or "", text=sms.text or "", scts=stamp,
                imsi=sms.imsi or "", iccid=iccid, slot=slot, dedupe_key=key or stamp,
                parts=sms.parts, complete=not sms.missing, sim_key=f"L{line}{slot}"))

        return handle

    def part_received(self, part: ReceivedPart) -> defer.Deferred:
        """Store one part; fires (with an :class:`Outcome`) once it is durable.

        Fails only when the store fails, in which case the modem keeps its copy.
        """
        part = normalise(part)
        meta = {"iccid": part.iccid, "slot": part.slot, "imsi": part.imsi}
        d = self.store.write(_store_part, part, self.clock.seconds(), meta,
                             tuple(self.interceptors), self.planner)

        def stored(outcome: Outcome):
            if outcome.duplicate:
                log.info("received sms on line {line} from {sender}: duplicate part "
                         "{seq}/{total} dropped", line=part.line, sender=part.sender,
                         seq=part.seq, total=part.total)
            elif outcome.message is None:
                group = (key_sim(part), part.sender, dedup_ref(part), part.total)
                self._meta.setdefault(group, meta)
                if group not in self._timers:
                    self._arm(group, self.reassembly_timeout)
            else:
                self._disarm((key_sim(part), part.sender, dedup_ref(part), part.total))
                self._dispatch(outcome)
            return outcome

        return d.addCallback(stored)

    # -- internals ------------------------------------------------------------------

    def _arm(self, group, delay: float) -> None:
        self._timers[group] = self.clock.callLater(delay, self._expire, group)

    def _disarm(self, group) -> None:
        call = self._timers.pop(group, None)
        self._meta.pop(group, None)
        if call is not None and call.active():
            call.cancel()

    def _expire(self, group):
        self._timers.pop(group, None)
        meta = self._meta.pop(group, {})
        d = self.store.write(_expire_group, group, self.clock.seconds(), meta,
                             tuple(self.interceptors), self.planner)

        def done(outcome):
            if outcome.message is not None:
                log.warn("received sms on line {line} from {sender}: reassembly timed out, "
                         "stored incomplete", line=outcome.message.line, sender=group[1])
                self._dispatch(outcome)
            return outcome

        def failed(f):
            log.failure("received sms: storing an expired group failed; retrying", f)
            self._arm(group, 60.0)

        return d.addCallbacks(done, failed)

    def _dispatch(self, outcome: Outcome) -> None:
        msg = outcome.message
        if outcome.interception is not None:
            log.info("received sms on line {line} from {sender} handled as {kind}",
                     line=msg.line, sender=msg.sender, kind=outcome.interception.kind)
            d = defer.maybeDeferred(outcome.interception.action, msg)
            d.addErrback(lambda f: log.failure("sms {kind} action failed", f,
                                               kind=outcome.interception.kind))
            return
        log.info("received sms {id} on line {line} from {sender}, {parts} part(s)",
                 id=msg.id, line=msg.line, sender=msg.sender, parts=msg.parts)
        for observer in list(self._observers):
            try:
                observer.sms_received(msg)
            except Exception:
                log.failure("received sms observer {observer!r} failed", observer=observer)
        if outcome.jobs and self.planner is not None:
            self.planner.schedule(outcome.jobs)
