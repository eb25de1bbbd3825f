"""Call detail records: the value written at the end of every call and the derived
figures of the status and statistics pages (F-304, F-306).

ACD (average call duration of connected calls, seconds), ASR (connected / total
outgoing calls), consecutive no-answer and consecutive short calls (counted over the
newest outgoing calls of a line or a SIM, stopping at the first call that breaks the
run; consecutive no-ring counts unanswered calls that never rang).  Billing by period follows F-470: a 68 s call with a 60 s period is 2 periods.
"""

from __future__ import annotations

import math

import attrs

OUTGOING = "out"      # VoIP -> mobile
INCOMING = "in"       # mobile -> VoIP
TEST = "test"         # F-508 call test (outgoing from the line, no SIP leg)

_COLUMNS = (
    "line", "slot", "iccid", "direction", "caller_before", "caller_after", "callee_before",
    "callee_after", "sip_call_id", "setup_time", "ring_time", "answer_time", "end_time",
    "duration", "billable_seconds", "billed_periods", "end_side", "mobile_cause",
    "mobile_cause_text", "sip_code", "sip_reason", "codec", "rtp_loss", "rtp_jitter_ms",
    "one_way_audio", "two_stage", "test_call")


def billed(duration: float, period: int) -> tuple[int, int]:
    """(periods, billable seconds) of a talk of ``duration`` seconds (F-470)."""
    if duration <= 0 or period <= 0:
        return 0, 0
    periods = math.ceil(round(duration, 3) / period)
    return periods, periods * period


@attrs.frozen
class Cdr:
    direction: str
    setup_time: float
    end_time: float
    line: int | None = None
    slot: str | None = None
    iccid: str | None = None
    caller_before: str | None = None
    caller_after: str | None = None
    callee_before: str | None = None
    callee_after: str | None = None
    sip_call_id: str | None = None
    ring_time: float | None = None
    answer_time: float | None = None
    end_side: str | None = None          # "sip", "mobile", "gateway"
    mobile_cause: int | None = None
    mobile_cause_text: str | None = None
    sip_code: int | None = None
    sip_reason: str | None = None
    codec: str | None = None
    rtp_loss: float | None = None        # fraction lost, 0..1
    rtp_jitter_ms: float | None = None
    one_way_audio: bool = False
    two_stage: bool = False
    test_call: bool = False
    billing_period: int = 60

    @property
    def answered(self) -> bool:
        return self.answer_time is not None

    @property
    def duration(self) -> float:
        if self.answer_time is None:
            return 0.0
        return max(0.0, self.end_time - self.answer_time)

    def row(self) -> tuple:
        periods, seconds = billed(self.duration, self.billing_period)
        values = attrs.asdict(self)
        values.update(duration=round(self.duration, 3), billed_periods=periods,
                      billable_seconds=seconds, one_way_audio=int(self.one_way_audio),
                      two_stage=int(self.two_stage), test_call=int(self.test_call))
        return tuple(values[c] for c in _COLUMNS)


@attrs.frozen
class CdrFigures:
    total: int
    connected: int
    talk_seconds: float
    billed_periods: int
    consecutive_no_answer: int
    consecutive_short: int
    consecutive_no_ring: int = 0

    @property
    def asr(self) -> float | None:
        return None if not self.total else self.connected / self.total

    @property
    def acd(self) -> float | None:
        return None if not self.connected else self.talk_seconds / self.connected


def _insert(conn, row):
    sql = "INSERT INTO cdr ({}) VALUES ({})".format(", ".join(_COLUMNS),
                                                   ", ".join("?" * len(_COLUMNS)))
    return conn.execute(sql, row).lastrowid


def _figures(conn, column, value, short_seconds, scan, since=None):
    where = f"direction IN ('{OUTGOING}', '{TEST}')"
    params: tuple = ()
    if column is not None:
        where += f" AND {column} = ?"
        params = (value,)
    if since is not None:
        where += " AND setup_time >= ?"
        params += (since,)
    total, connected, talk, periods = conn.execute(
        "SELECT COUNT(*), SUM(CASE WHEN answer_time IS NULL THEN 0 ELSE 1 END), "
        f"SUM(duration), SUM(billed_periods) FROM cdr WHERE {where}", params).fetchone()
    recent = conn.execute(
        f"SELECT answer_time, duration, ring_time FROM cdr WHERE {where} "
        "ORDER BY end_time DESC, id DESC LIMIT ?", params + (scan,)).fetchall()
    no_answer = 0
    for answer_time, _, _ in recent:
        if answer_time is not None:
            break
        no_answer += 1
    no_ring = 0
    for answer_time, _, ring_time in recent:
        if answer_time is not None or ring_time is not None:
            break
        no_ring += 1
    short = 0
    for answer_time, duration, _ in recent:
        if answer_time is None:
            continue  # unanswered calls neither extend nor break a short-call run
        if duration >= short_seconds:
            break
        short += 1
    return CdrFigures(total or 0, connected or 0, float(talk or 0), int(periods or 0),
                      no_answer, short, no_ring)


class CdrRepository:
    """Writes CDRs durably and answers the statistics queries."""

    scan_limit = 1000

    def __init__(self, store, short_call_seconds: int = 10):
        self.store = store
        self.short_call_seconds = short_call_seconds

    def record(self, cdr: Cdr):
        """Deferred row id, fired after the commit."""
        return self.store.write(_insert, cdr.row())

    def recent(self, limit: int = 50, line: int | None = None):
        if line is None:
            return self.store.query("SELECT * FROM cdr ORDER BY id DESC LIMIT ?", (limit,))
        return self.store.query("SELECT * FROM cdr WHERE line = ? ORDER BY id DESC LIMIT ?",
                                (line, limit))

    def by_call_id(self, call_id: str):
        return self.store.query("SELECT * FROM cdr WHERE sip_call_id = ? ORDER BY id",
                                (call_id,))

    def talk_by_iccid(self):
        """Deferred {iccid: talk seconds} over every answered call (F-421 least talk
        time: a SIM's total follows the SIM, not the line it sits in)."""
        d = self.store.query("SELECT iccid, SUM(duration) FROM cdr WHERE iccid IS NOT NULL "
                             "GROUP BY iccid")
        return d.addCallback(lambda rows: {r[0]: float(r[1] or 0) for r in rows})

    def figures(self, line: int | None = None, iccid: str | None = None,
                since: float | None = None):
        """Deferred CdrFigures over outgoing calls of a line, a SIM, or everything;
        ``since`` (Unix time) limits them, e.g. to "today" (F-306, reset at 04:10)."""
        column, value = (("iccid", iccid) if iccid is not None else
                         ("line", line) if line is not None else (None, None))
        return self.store.read(_figures, column, value, self.short_call_seconds,
                               self.scan_limit, since)
