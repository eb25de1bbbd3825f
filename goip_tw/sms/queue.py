"""The durable outgoing SMS queue: one path for every source.

Contract with the interfaces (SMPP, SIP MESSAGE, web, HTTP API, GoIP UDP,
forwarding): ``submit()`` fires only after the store's group commit that holds the
message, so an acknowledgment always means "on disk".

Sending, per part (TS 23.040 concatenation; parts of one message go through one
line, since the phone reassembles by originator):

1. claim: ``queued -> sending`` with the line and the TP-MR the module will use
   (the SIM's last used TP-MR + 1, EF_SMSS in TS 31.102) committed *before* the
   module sees the part;
2. the module answers ``+CMGS: <mr>``; ``sent`` and the reference are committed in
   one statement, together with the claim of the next part.

After a crash or an unplugged module a part left ``sending`` is resolved when its
line comes back: if the SIM's last used TP-MR reached the expected one the module
sent it (recorded as sent, never repeated), otherwise it is queued again.  A line
that cannot report its TP-MR gets the conservative answer set by
``uncertain_policy``: ``assume_sent`` (default: never twice, possibly lost) or
``resend`` (never lost, possibly twice).

Failures: a ``+CMS ERROR`` is retried on the same line with exponential back-off,
then the message fails over to another eligible line; a message with parts already
sent stays on its line.  Permanent errors fail at once; queued messages expire.
"""

from __future__ import annotations

import itertools
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from goip_tw.sms import repository as repo
from goip_tw.sms.model import (Accepted, EncodeError, Outgoing, State, StatusReport, Submission,
                               fits_one_part, split_text)
from goip_tw.sms.recovery import RecoveryMixin
from goip_tw.sms.router import Route, RouteError, Router


SCAN_LIMIT = 5000


class ISmsLine(Interface):
    """What the queue needs from a line (the modem layer adapts its API to this)."""

    number = Attribute("Line number 1..N.")

    def can_send():
        """True while the line is registered and its SIM may still send SMS."""

    def send_part(recipient, text, concat, report):
        """Send one part; ``concat`` = (ref, total, seq) or None.  Deferred[int] TP-MR.

        Fails with SendError for a +CMS ERROR, LineGone when the module vanished."""

    def last_used_mr():
        """Deferred[int | None]: the SIM's last used TP-MR, None if unknown."""


class SendError(Exception):
    def __init__(self, code: int | None, message: str = "", permanent: bool = False):
        super().__init__(f"+CMS ERROR: {code} {message}".strip())
        self.code = code
        self.permanent = permanent


class LineGone(Exception):
    """The module disappeared while it had a part: its fate is unknown."""


class QueueFull(Exception):
    """The queue is over its bound (SMPP answers ESME_RTHROTTLED)."""


class NotReady(Exception):
    """The queue has not finished loading from the store."""


@attrs.frozen
class QueueSettings:
    max_queued: int = 100_000
    validity: float = 86_400.0
    interval: float = 0.0  # F-494, seconds between messages on a line
    retries: int = 2  # per line, after the first attempt
    backoff: float = 5.0
    permanent_errors: frozenset[int] = frozenset({21, 28, 38, 50, 96, 304, 305})
    assembly_timeout: float = 300.0
    sweep_interval: float = 60.0
    uncertain_policy: str = "assume_sent"
    status_reports: bool = True


@attrs.frozen
class SmsEvent:
    """Published on every state change that a client may report."""

    message: int
    state: State
    seq: int | None = None  # a single part's final state (from a status report)
    line: int | None = None
    error: str = ""
    source: str = ""
    source_ref: str = ""


@attrs.define
class _Pending:
    msg: Outgoing
    lines: tuple[int, ...] | None
    not_before: float = 0.0
    line_failures: int = 0


@attrs.define
class _LineState:
    line: object
    busy: bool = False
    next_allowed: float = 0.0
    recovering: bool = False


class SmsQueue(RecoveryMixin, service.Service):
    log = Logger()
    name = "sms-queue"

    def __init__(self, store, clock, router: Router | None = None,
                 settings: QueueSettings | None = None):
        self.store = store
        self.clock = clock
        self.router = router or Router()
        self.settings = settings or QueueSettings()
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        # The same entries grouped by the lines they may use (None = any line), so a
        # free line finds its oldest message without walking messages it cannot send.
        self._buckets: dict[tuple[int, ...] | None, dict[int, _Pending]] = {}
        self._rr = 0
        self._uncertain: dict[int, list[tuple[Outgoing, int, int | None]]] = {}
        self._lines: dict[int, _LineState] = {}
        self._observers: list[Callable[[SmsEvent], None]] = []
        self._pump_call = None
        self._sweep_call = None
        self._assembly_calls: dict[int, object] = {}
        self._inflight = 0
        self.ready: defer.Deferred | None = None
        self._loaded = False
        self.accepted = 0

    # -- life cycle --------------------------------------------------------------------

    def startService(self):
        super().startService()
        self.ready = self._load()
        return self.ready

    @defer.inlineCallbacks
    def _load(self):
        # Writes run in order on one thread: this empty one fires after the store's
        # migrations, so the reads below see our tables.
        yield self.store.write(lambda conn: None)
        self._next_id = (yield self.store.read(repo.max_id)) + 1
        queued, uncertain = yield self.store.read(repo.load_pending)
        now = self.clock.seconds()
        for msg in queued:
            if msg.state is State.ASSEMBLING:
                self._arm_assembly(msg.id, min(self.settings.assembly_timeout,
                                               max(0.0, msg.expires_at - now)))
                continue
            self._enqueue(_Pending(msg, self._lines_for(msg), msg.not_before))
        for msg, seq, line, expected in uncertain:
            self._uncertain.setdefault(line, []).append((msg, seq, expected))
        self.log.info("sms queue loaded: {queued} queued, {uncertain} unconfirmed",
                      queued=len(self._pending), uncertain=len(uncertain))
        self._sweep_call = self.clock.callLater(self.settings.sweep_interval, self._sweep)
        self._loaded = True
        for n in list(self._lines):
            self._recover(n)
        self._kick()

    def stopService(self):
        super().stopService()
        self._loaded = False
        for call in [self._pump_call, self._sweep_call, *self._assembly_calls.values()]:
            if call is not None and call.active():
                call.cancel()
        self._pump_call = self._sweep_call = None
        self._assembly_calls.clear()

    def _lines_for(self, msg: Outgoing) -> tuple[int, ...] | None:
        if msg.sent_parts and msg.line is not None:
            return (msg.line,)
        try:
            return self.router.route(msg.recipient, msg.sender, msg.line).lines
        except RouteError:
            return (msg.line,) if msg.line is not None else None

    # -- lines (hot plug, F-103) ---------------------------------------------------------

    def add_line(self, line) -> None:
        self._lines[line.number] = _LineState(line)
        self._recover(line.number)
        self._kick()

    def remove_line(self, number: int) -> None:
        self._lines.pop(number, None)

    def line_changed(self) -> None:
        """A line's ability to send changed (registration, SIM limits): re-plan."""
        for n in list(self._lines):
            self._recover(n)
        self._kick()

    # -- observers ------------------------------------------------------------------------

    def subscribe(self, fn: Callable[[SmsEvent], None]) -> Callable[[], None]:
        self._observers.append(fn)
        return lambda: self._observers.remove(fn) if fn in self._observers else None

    def _publish(self, event: SmsEvent) -> None:
        for fn in list(self._observers):
            try:
                fn(event)
            except Exception:
                self.log.failure("sms observer failed on message {message}", message=event.message)

    # -- accepting ------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._pending) + self._inflight

    def submit(self, sub: Submission) -> defer.Deferred:
        """Store ``sub``; the Deferred fires with Accepted after the commit."""
        try:
            return self._submit(sub)
        except (RouteError, EncodeError, QueueFull, NotReady) as e:
            return defer.fail(e)

    def _submit(self, sub: Submission) -> defer.Deferred:
        if not self._loaded:
            raise NotReady("sms queue is still loading")
        if self.depth >= self.settings.max_queued:
            raise QueueFull(f"{self.depth} messages queued")
        if sub.line is not None and sub.line < 1:
            raise RouteError(f"line: {sub.line} does not exist")
        route = self.router.route(sub.recipient, sub.sender, sub.line)
        now = self.clock.seconds()
        validity = sub.validity if sub.validity is not None else self.settings.validity
        mid = self._next_id
        self._next_id += 1
        if sub.fragment is not None:
            return self._submit_fragment(sub, route, mid, now, validity)
        if not sub.text:
            raise EncodeError("text: empty message")
        parts = tuple(split_text(sub.text))
        not_before = now + sub.delay if sub.delay else 0.0
        new = repo.NewMessage(mid, sub.source, sub.source_ref, sub.sender, sub.recipient,
                              route.dest, sub.text, parts, sub.line, sub.report, now,
                              now + validity, not_before)
        self._inflight += 1
        d = self.store.write(repo.insert_message, new)

        def stored(_):
            self._inflight -= 1
            self.accepted += 1
            msg = Outgoing(id=mid, recipient=route.dest, parts=parts, line=sub.line,
                           state=State.QUEUED, expires_at=new.expires_at, concat_ref=mid % 256,
                           source=sub.source, source_ref=sub.source_ref, sender=sub.sender,
                           report=sub.report, not_before=not_before)
            self._enqueue(_Pending(msg, route.lines, not_before))
            self._kick()
            return Accepted(str(mid), mid, len(parts))

        def lost(f):
            self._inflight -= 1
            return f

        return d.addCallbacks(stored, lost)

    def _submit_fragment(self, sub, route: Route, mid, now, validity):
        ref, total, seq = sub.fragment
        if not (1 <= seq <= total <= 255):
            raise EncodeError(f"fragment: part {seq} of {total} is out of range")
        if not sub.text or not fits_one_part(sub.text):
            raise EncodeError(f"fragment: part {seq} does not fit one SMS with its header")
        key = f"{sub.source}|{sub.source_ref}|{sub.sender}|{route.dest}|{ref}|{total}"
        new = repo.NewMessage(mid, sub.source, sub.source_ref, sub.sender, sub.recipient,
                              route.dest, sub.text, (sub.text,), sub.line, sub.report, now,
                              now + validity)
        self._inflight += 1
        d = self.store.write(repo.add_fragment, new, key, seq, total)

        def stored(result):
            self._inflight -= 1
            real, complete = result
            if complete:
                call = self._assembly_calls.pop(real, None)
                if call is not None and call.active():
                    call.cancel()
                self._reload(real)
            elif real not in self._assembly_calls:
                self._arm_assembly(real, self.settings.assembly_timeout)
            self.accepted += complete
            return Accepted(f"{real}.{seq}", real, total)

        def lost(f):
            self._inflight -= 1
            return f

        return d.addCallbacks(stored, lost)

    def _arm_assembly(self, mid: int, delay: float) -> None:
        def close():
            self._assembly_calls.pop(mid, None)
            self.store.write(repo.close_assembly, mid, self.clock.seconds()).addCallback(
                lambda done: self._reload(mid) if done else None)
        self._assembly_calls[mid] = self.clock.callLater(delay, close)

    def _reload(self, mid: int) -> None:
        def got(info):
            if info is None or info["state"] != State.QUEUED.value:
                return
            msg = Outgoing(id=mid, recipient=info["dest"],
                           parts=tuple(p["text"] for p in info["part_texts"]),
                           line=info["line"], state=State.QUEUED, expires_at=info["expires_at"],
                           concat_ref=info["concat_ref"], source=info["source"],
                           source_ref=info["source_ref"], sender=info["sender"],
                           report=bool(info["report"]))
            self._enqueue(_Pending(msg, self._lines_for(msg)))
            self._kick()
        self.store.read(repo.message_with_texts, mid).addCallback(got)

    # -- client operations ----------------------------------------------------------------

    def info(self, mid: int) -> defer.Deferred:
        return self.store.read(repo.message_info, mid)

    def cancel(self, mid: int) -> defer.Deferred:
        pending = self._pending.get(mid)
        if pending is None:
            # Only a message still waiting here (or still assembling) can be cancelled.
            d = self.store.read(repo.message_info, mid)
            return d.addCallback(lambda info: self._cancel_stored(mid) if info and
                                 info["state"] == State.ASSEMBLING.value else False)
        return self._cancel_stored(mid)

    def _cancel_stored(self, mid: int) -> defer.Deferred:
        d = self.store.write(repo.cancel, mid, self.clock.seconds())

        def done(ok):
            if ok:
                self._dequeue(mid)
                call = self._assembly_calls.pop(mid, None)
                if call is not None and call.active():
                    call.cancel()
                self._publish(SmsEvent(mid, State.CANCELLED, error="cancelled"))
            return ok
        return d.addCallback(done)

    # -- status reports ---------------------------------------------------------------------

    def on_status_report(self, report: StatusReport) -> defer.Deferred:
        d = self.store.write(repo.status_report, report.line, report.mr, report.delivered,
                             report.final, report.status, self.clock.seconds(), report.scts)

        def applied(result):
            if result is None:
                return None
            self._publish(SmsEvent(result.message, result.part_state, seq=result.seq,
                                   line=report.line, source=result.source,
                                   source_ref=result.source_ref))
            if result.message_state is not None:
                self._publish(SmsEvent(result.message, result.message_state, line=report.line,
                                       source=result.source, source_ref=result.source_ref))
            return result
        return d.addCallback(applied)

    # -- scheduling ---------------------------------------------------------------------------

    def _kick(self, delay: float = 0.0) -> None:
        if not self.running or not self._loaded:
            return
        if self._pump_call is not None and self._pump_call.active():
            if self._pump_call.getTime() <= self.clock.seconds() + delay:
                return
            self._pump_call.cancel()
        self._pump_call = self.clock.callLater(delay, self._pump)

    def _pump(self) -> None:
        self._pump_call = None
        now = self.clock.seconds()
        wake = None
        free = [n for n, ls in sorted(self._lines.items())
                if not ls.busy and not ls.recovering and ls.line.can_send()]
        ready = [n for n in free if self._lines[n].next_allowed <= now]
        for n in free:
            if self._lines[n].next_allowed > now:
                wake = min(wake or 1e18, self._lines[n].next_allowed)
        if not ready or not self._pending:
            if wake is not None and self._pending:
                self._kick(wake - now)
            return
        # Round robin over free lines; each takes the oldest message it may send.
        ready.sort(key=lambda n: (n <= self._rr, n))
        expired: set[int] = set()
        for n in ready:
            best = None
            for key, bucket in self._buckets.items():
                if key is not None and n not in key:
                    continue
                for mid, p in itertools.islice(bucket.items(), SCAN_LIMIT):
                    if p.msg.expires_at <= now:
                        expired.add(mid)
                    elif p.not_before > now:
                        wake = min(wake or 1e18, p.not_before)
                    elif n not in p.msg.tried_lines:
                        if best is None or mid < best[0]:
                            best = (mid, p)
                        break
            if best is not None:
                self._rr = n
                self._dequeue(best[0])
                self._start(n, best[1])
        for mid in expired:
            if mid in self._pending:
                self._expire(mid)
        if wake is not None and self._pending:
            self._kick(max(0.0, wake - now))

    def _enqueue(self, p: _Pending) -> None:
        self._dequeue(p.msg.id)
        self._pending[p.msg.id] = p
        key = tuple(sorted(p.lines)) if p.lines is not None else None
        bucket = self._buckets.setdefault(key, {})
        bucket[p.msg.id] = p

    def _dequeue(self, mid: int) -> _Pending | None:
        p = self._pending.pop(mid, None)
        if p is not None:
            key = tuple(sorted(p.lines)) if p.lines is not None else None
            bucket = self._buckets.get(key)
            if bucket is not None:
                bucket.pop(mid, None)
                if not bucket:
                    del self._buckets[key]
        return p

    def _expire(self, mid: int) -> None:
        p = self._dequeue(mid)
        self._finish(p.msg, State.EXPIRED, "validity period over")

    def _finish(self, msg: Outgoing, state: State, error: str) -> None:
        d = self.store.write(repo.finish, msg.id, state, error, self.clock.seconds())
        d.addCallback(lambda ok: ok and self._publish(
            SmsEvent(msg.id, state, error=error, source=msg.source, source_ref=msg.source_ref)))
        d.addErrback(lambda f: self.log.failure("sms {message} not finished", f, message=msg.id))

    def _sweep(self) -> None:
        now = self.clock.seconds()
        for mid, p in list(self._pending.items()):
            if p.msg.expires_at <= now:
                self._expire(mid)
        self._sweep_call = self.clock.callLater(self.settings.sweep_interval, self._sweep)

    # -- sending ------------------------------------------------------------------------------

    def _start(self, number: int, p: _Pending) -> None:
        ls = self._lines[number]
        ls.busy = True
        d = self._send(ls, p)
        d.addErrback(lambda f: self.log.failure("sms {message} on line {line}", f,
                                                message=p.msg.id, line=number))

        def free(_):
            ls.busy = False
            ls.next_allowed = self.clock.seconds() + self.settings.interval
            if self._uncertain.get(number):
                self._recover(number)
            self._kick()
        d.addBoth(free)

    @defer.inlineCallbacks
    def _expected_mr(self, line) -> defer.Deferred:
        try:
            last = yield line.last_used_mr()
        except Exception:
            last = None
        return None if last is None else (last + 1) % 256

    @defer.inlineCallbacks
    def _send(self, ls: _LineState, p: _Pending, first_seq: int | None = None,
              claimed: bool = False, first_expected: int | None = None):
        msg, line = p.msg, ls.line
        seq = first_seq or msg.sent_parts + 1
        total = len(msg.parts)
        expected = first_expected
        if not claimed:
            expected = yield self._expected_mr(line)
            ok = yield self.store.write(repo.claim, msg.id, line.number, seq, expected,
                                        self.clock.seconds())
            if not ok:
                return
        while seq <= total:
            concat = (msg.concat_ref, total, seq) if total > 1 else None
            try:
                mr = yield line.send_part(msg.recipient, msg.parts[seq - 1], concat,
                                          self.settings.status_reports)
            except LineGone:
                self.log.warn("line {line} vanished holding sms {message} part {seq}",
                              line=line.number, message=msg.id, seq=seq)
                self._uncertain.setdefault(line.number, []).append(
                    (attrs.evolve(msg, sent_parts=seq - 1), seq, expected))
                return
            except SendError as e:
                msg = attrs.evolve(msg, sent_parts=seq - 1)
                yield self._failed(line.number, attrs.evolve(p, msg=msg), e)
                return
            nxt = seq + 1 if seq < total else None
            final = yield self.store.write(repo.part_sent, msg.id, seq, line.number, int(mr),
                                           self.clock.seconds(), nxt,
                                           (int(mr) + 1) % 256 if nxt else None)
            expected = (int(mr) + 1) % 256 if nxt else None
            seq += 1
        self._publish(SmsEvent(msg.id, State.SENT, line=line.number, source=msg.source,
                               source_ref=msg.source_ref))
        if final is not None:
            self._publish(SmsEvent(msg.id, final, line=line.number, source=msg.source,
                                   source_ref=msg.source_ref))

    @defer.inlineCallbacks
    def _failed(self, number: int, p: _Pending, e: SendError):
        msg = p.msg
        now = self.clock.seconds()
        self.log.warn("sms {message} line {line}: {error}", message=msg.id, line=number,
                      error=str(e))
        if e.permanent or (e.code is not None and e.code in self.settings.permanent_errors):
            yield self.store.write(repo.finish, msg.id, State.FAILED, str(e), now)
            self._publish(SmsEvent(msg.id, State.FAILED, line=number, error=str(e),
                                   source=msg.source, source_ref=msg.source_ref))
            return
        p.line_failures += 1
        keep = msg.sent_parts > 0
        if p.line_failures <= self.settings.retries or keep:
            p.not_before = now + self.settings.backoff * 2 ** min(p.line_failures - 1, 10)
            p.lines = (number,) if keep else p.lines
            yield self.store.write(repo.requeue, msg.id, msg.tried_lines, str(e), now, True)
            self._enqueue(p)
            return
        tried = msg.tried_lines + (number,)
        others = self.router.eligible(p.lines, tried, self._lines)
        if not others:
            yield self.store.write(repo.finish, msg.id, State.FAILED, str(e), now)
            self._publish(SmsEvent(msg.id, State.FAILED, line=number, error=str(e),
                                   source=msg.source, source_ref=msg.source_ref))
            return
        yield self.store.write(repo.requeue, msg.id, tried, str(e), now, False)
        self._enqueue(_Pending(attrs.evolve(msg, tried_lines=tried), p.lines))
