"""Forwarding received SMS: SIP MESSAGE (F-496), mobile number (F-497), e-mail (F-498).

Each forward is a row in ``sms_forward`` written in the same transaction that stores
the received message (see goip_tw/sms/inbound.py), then tried until the far side
accepts it: a 2xx to the SIP MESSAGE, the outgoing queue's durable acceptance, or the
SMTP relay's 250. Failures back off exponentially (``base_delay`` doubling up to
``max_delay``); a job older than ``max_age`` is marked failed and logged. Pending
jobs are reloaded at start, so a restart delays a forward but never loses it.
``stop()`` cancels the attempts still waiting for the far side and records nothing
for them (the store closes right after): they stay ``pending`` and are tried again
at the next start.  A far side that had accepted just before the stop may so get the
forward twice (at least once, never lost); F-497 is idempotent through its
``source_ref``.

Formats are the manual's (SPEC F-496/F-497): the SIP body is exactly
``<sender>\\n(L<line>)<text>`` and the mobile text ``L<line>,<sender>><text>``.
"""

from __future__ import annotations

import json
import re
from typing import Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.sms.inbound import IForwardPlanner, ReceivedSms
from goip_tw.sms.mailer import SmtpSettings, build_message, send_message

log = Logger()

KINDS = ("sip", "mobile", "email")


def sip_body(sender: str, line: int, text: str) -> str:
    """F-496: e.g. ``+8613670128297\\n(L1)你好``."""
    return f"{sender}\n(L{int(line)}){text}"


def mobile_text(sender: str, line: int, text: str) -> str:
    """F-497: e.g. ``L1,+8613670128297>你好``."""
    return f"L{int(line)},{sender}>{text}"


_FORWARDED = re.compile(r"L[0-9]{1,3},[^>\n]{0,40}>")


def is_forwarded_text(text: str) -> bool:
    """True for a text in the F-497 format: forwarding it by SMS again would loop
    when the forward number is one of our own SIMs."""
    return _FORWARDED.match(text) is not None


@attrs.frozen
class ForwardRules:
    """Where received SMS go. Empty targets switch a kind off; ``lines`` limits
    forwarding to those lines (empty = every line)."""

    sip_target: str = ""
    sip_from_user: str = ""
    mobile_number: str = ""
    mobile_line: int | None = None
    email_to: tuple[str, ...] = ()
    lines: tuple[int, ...] = ()

    def targets(self, line: int) -> list[tuple[str, str]]:
        if self.lines and line not in self.lines:
            return []
        out = []
        if self.sip_target:
            out.append(("sip", self.sip_target))
        if self.mobile_number:
            out.append(("mobile", self.mobile_number))
        if self.email_to:
            out.append(("email", ",".join(self.email_to)))
        return out


@attrs.frozen
class ForwardJob:
    id: int
    history_id: int
    kind: str
    target: str
    sender: str
    line: int
    text: str
    received_at: float
    attempts: int = 0
    next_at: float = 0.0
    created_at: float = 0.0


def _job_from_row(r) -> ForwardJob:
    body = json.loads(r["body"])
    return ForwardJob(
        id=r["id"], history_id=r["history_id"], kind=r["kind"], target=r["target"],
        sender=body.get("sender", ""), line=int(body.get("line", 0)),
        text=body.get("text", ""), received_at=float(body.get("received_at", 0)),
        attempts=r["attempts"], next_at=r["next_at"], created_at=r["created_at"],
    )


def _insert_jobs(conn, msg: ReceivedSms, targets, now: float) -> list[ForwardJob]:
    body = json.dumps({"sender": msg.sender, "line": msg.line, "text": msg.text,
                       "received_at": msg.received_at}, ensure_ascii=False)
    jobs = []
    for kind, target in targets:
        cur = conn.execute(
            "INSERT INTO sms_forward (history_id, kind, target, body, state, attempts, "
            "next_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            (msg.id, kind, target, body, now, now, now),
        )
        jobs.append(ForwardJob(cur.lastrowid, msg.id, kind, target, msg.sender, msg.line,
                               msg.text, msg.received_at, 0, now, now))
    return jobs


def _load_pending(conn):
    return [_job_from_row(r) for r in conn.execute(
        "SELECT * FROM sms_forward WHERE state = 'pending' ORDER BY next_at, id")]


def _mark_done(conn, job_id: int, now: float) -> None:
    """A delivered forward keeps no copy of the text (the inbox has it)."""
    conn.execute("UPDATE sms_forward SET state = 'done', attempts = attempts + 1, "
                 "body = '{}', last_error = '', updated_at = ? WHERE id = ?", (now, job_id))


def _mark_retry(conn, job_id: int, next_at: float, error: str, now: float) -> None:
    conn.execute("UPDATE sms_forward SET attempts = attempts + 1, next_at = ?, "
                 "last_error = ?, updated_at = ? WHERE id = ?",
                 (next_at, error[:500], now, job_id))


def _mark_failed(conn, job_id: int, error: str, now: float) -> None:
    conn.execute("UPDATE sms_forward SET state = 'failed', attempts = attempts + 1, "
                 "last_error = ?, updated_at = ? WHERE id = ?", (error[:500], now, job_id))


Sender = Callable[[ForwardJob], defer.Deferred]


@implementer(IForwardPlanner)
class Forwarder:
    """Plans forward jobs (inside the inbound transaction) and runs them.

    ``senders`` maps a kind to ``send(job) -> Deferred`` that fires once the far
    side accepted the forward and fails otherwise; kinds without a sender are not
    planned.
    """

    def __init__(self, store, clock, rules: ForwardRules, senders: dict[str, Sender], *,
                 base_delay: float = 10.0, max_delay: float = 900.0,
                 max_age: float = 3 * 86400.0):
        self.store = store
        self.clock = clock
        self.rules = rules
        self.senders = dict(senders)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_age = max_age
        self._timers: dict[int, object] = {}
        self._busy: set[int] = set()
        self._inflight: dict[int, defer.Deferred] = {}
        self.running = False
        self._closed = False  # set by stop(): the store may close any moment

    # -- IForwardPlanner ------------------------------------------------------------

    def plan(self, conn, msg: ReceivedSms, now: float) -> list[ForwardJob]:
        """Runs in the store's writer thread: reads only immutable attributes."""
        rules, senders = self.rules, self.senders
        targets = [(k, t) for k, t in rules.targets(msg.line) if k in senders
                   and not (k == "mobile" and is_forwarded_text(msg.text))]
        return _insert_jobs(conn, msg, targets, now) if targets else []

    def schedule(self, jobs) -> None:
        now = self.clock.seconds()
        for job in jobs:
            self._arm(job, max(0.0, job.next_at - now))

    # -- life cycle -----------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self):
        self.running = True
        self._closed = False
        jobs = yield self.store.read(_load_pending)
        if jobs:
            log.info("sms forward: {n} pending forward(s) reloaded", n=len(jobs))
        self.schedule(jobs)

    def stop(self) -> None:
        """Cancel timers and attempts in flight; nothing is written after this."""
        self.running = False
        self._closed = True
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        inflight, self._inflight = list(self._inflight.values()), {}
        for d in inflight:
            if not d.called:
                d.cancel()

    # -- internals ------------------------------------------------------------------

    def _arm(self, job: ForwardJob, delay: float) -> None:
        if job.id in self._timers or job.id in self._busy:
            return
        self._timers[job.id] = self.clock.callLater(delay, self._attempt, job)

    def _delay(self, attempts: int) -> float:
        return min(self.max_delay, self.base_delay * (2 ** min(attempts, 30)))

    def _attempt(self, job: ForwardJob) -> defer.Deferred:
        self._timers.pop(job.id, None)
        if self._closed:
            return defer.succeed(None)
        sender = self.senders.get(job.kind)
        self._busy.add(job.id)
        if sender is None:
            d = defer.fail(RuntimeError(f"kind: no sender for {job.kind!r}"))
        else:
            d = defer.maybeDeferred(sender, job)
            if not d.called:
                self._inflight[job.id] = d
        d.addCallbacks(self._accepted, self._refused, callbackArgs=(job,), errbackArgs=(job,))
        d.addBoth(self._free, job)
        d.addErrback(lambda f: log.failure("sms forward {id}: recording the result failed",
                                           f, id=job.id))
        return d

    def _free(self, result, job):
        self._busy.discard(job.id)
        return result

    def _stopped(self, job: ForwardJob) -> bool:
        """The attempt ended after stop(): the store may be closed, record nothing."""
        self._inflight.pop(job.id, None)
        if not self._closed:
            return False
        log.info("sms forward {id} ({kind}) interrupted by the stop: tried again at the "
                 "next start", id=job.id, kind=job.kind)
        return True

    def _accepted(self, _, job: ForwardJob):
        if self._stopped(job):
            return None
        log.info("sms forward {id} ({kind}) of message {history} accepted after "
                 "{n} attempt(s)", id=job.id, kind=job.kind, history=job.history_id,
                 n=job.attempts + 1)
        return self.store.write(_mark_done, job.id, self.clock.seconds())

    def _refused(self, failure, job: ForwardJob):
        if self._stopped(job):
            return None
        now = self.clock.seconds()
        error = failure.getErrorMessage() or failure.type.__name__
        if now - job.created_at >= self.max_age:
            log.error("sms forward {id} ({kind}) to {target} given up after {n} attempts: "
                      "{error}", id=job.id, kind=job.kind, target=job.target,
                      n=job.attempts + 1, error=error)
            return self.store.write(_mark_failed, job.id, error, now)
        next_at = now + self._delay(job.attempts)
        log.warn("sms forward {id} ({kind}) to {target} failed ({error}); retry in "
                 "{delay:.0f} s", id=job.id, kind=job.kind, target=job.target, error=error,
                 delay=next_at - now)
        retry = attrs.evolve(job, attempts=job.attempts + 1, next_at=next_at)
        d = self.store.write(_mark_retry, job.id, next_at, error, now)

        def rearm(_):
            self._busy.discard(job.id)
            if self.running:
                self._arm(retry, next_at - self.clock.seconds())

        return d.addCallback(rearm)


# -- senders ------------------------------------------------------------------------


class ForwardRefused(Exception):
    """The far side answered but did not accept (e.g. a SIP 4xx/5xx)."""


def sip_sender(sip, from_user: str = "") -> Sender:
    """F-496 through goip_tw.sip.service.SipService.send_message, which fires with
    the final status code. ``line`` picks the line's SIP account, so the From user is
    that line's registration ID unless ``from_user`` overrides it."""

    def send(job: ForwardJob) -> defer.Deferred:
        d = sip.send_message(job.target, sip_body(job.sender, job.line, job.text).encode("utf-8"),
                             from_user=from_user or None, line=job.line)

        def check(code):
            if not 200 <= int(code) < 300:
                raise ForwardRefused(f"SIP {code}")
            return code

        return d.addCallback(check)

    return send


def _find_submitted(conn, source_ref: str):
    return conn.execute("SELECT id FROM sms_message WHERE source = 'forward' AND "
                        "source_ref = ?", (source_ref,)).fetchone()


def mobile_sender(queue, store, line: int | None = None) -> Sender:
    """F-497 through the outgoing queue (goip_tw.sms.queue.SmsQueue.submit).

    Idempotent across a crash between the queue's commit and ours: the queue row
    carries ``source_ref = fwd:<job id>``, looked up before submitting again.
    """
    from goip_tw.sms.model import Submission

    @defer.inlineCallbacks
    def send(job: ForwardJob):
        ref = f"fwd:{job.id}"
        existing = yield store.read(_find_submitted, ref)
        if existing is not None:
            return existing[0]
        accepted = yield queue.submit(Submission(
            recipient=job.target, text=mobile_text(job.sender, job.line, job.text),
            source="forward", source_ref=ref, line=line))
        return accepted

    return send


def email_sender(reactor, settings: SmtpSettings) -> Sender:
    """F-498 through twisted.mail (see goip_tw/sms/mailer.py)."""
    import datetime

    def send(job: ForwardJob) -> defer.Deferred:
        when = datetime.datetime.fromtimestamp(job.received_at, datetime.timezone.utc)
        to_addrs = tuple(a for a in job.target.split(",") if a) or settings.to_addrs
        message = build_message(
            from_addr=settings.from_addr, to_addrs=to_addrs, sms_sender=job.sender,
            line=job.line, text=job.text, received_at=when.isoformat(timespec="seconds"),
        )
        return send_message(reactor, attrs.evolve(settings, to_addrs=to_addrs), message)

    return send
