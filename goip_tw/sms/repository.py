"""SQL for the SMS queue and history, run through ``IStore.write``/``read``.

Every function here takes a DB-API connection and runs inside the store's writer
(or reader) thread; the ``Repository`` methods return Deferreds that fire after the
group commit, which is the moment an interface may acknowledge a message.  State
changes and the module's message reference are written in one statement so a crash
can never separate them.
"""

from __future__ import annotations

import attrs

from goip_tw.sms.model import FINAL_STATES, Outgoing, State


class DuplicateFragment(ValueError):
    """The same fragment of a long message was submitted twice."""


@attrs.frozen
class NewMessage:
    id: int
    source: str
    source_ref: str
    sender: str
    recipient: str
    dest: str
    text: str
    parts: tuple[str, ...]
    line: int | None
    report: bool
    now: float
    expires_at: float
    not_before: float = 0.0


def insert_message(conn, m: NewMessage, state: str = State.QUEUED.value) -> int:
    conn.execute(
        "INSERT INTO sms_message (id, source, source_ref, sender, recipient, dest, text, parts,"
        " line, state, report, concat_ref, created_at, updated_at, expires_at, not_before)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (m.id, m.source, m.source_ref, m.sender, m.recipient, m.dest, m.text, len(m.parts),
         m.line, state, int(m.report), m.id % 256, m.now, m.now, m.expires_at, m.not_before))
    conn.executemany(
        "INSERT INTO sms_part (message_id, seq, text, state) VALUES (?, ?, ?, ?)",
        [(m.id, seq, text, state) for seq, text in enumerate(m.parts, 1)])
    return m.id


def insert_many(conn, messages: list[NewMessage]) -> int:
    for m in messages:
        insert_message(conn, m)
    return len(messages)


def add_fragment(conn, m: NewMessage, frag_key: str, seq: int, total: int) -> tuple[int, bool]:
    """Store one client-split fragment; returns (message id, complete).

    The first fragment creates an ``assembling`` message; the last one turns it
    ``queued`` in the same transaction, so the set of parts is decided exactly once.
    """
    row = conn.execute(
        "SELECT id FROM sms_message WHERE frag_key = ? AND state = ?",
        (frag_key, State.ASSEMBLING.value)).fetchone()
    if row is None:
        mid = m.id
        conn.execute(
            "INSERT INTO sms_message (id, source, source_ref, sender, recipient, dest, text,"
            " parts, line, state, report, concat_ref, frag_key, created_at, updated_at,"
            " expires_at, client_split) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (mid, m.source, m.source_ref, m.sender, m.recipient, m.dest, total, m.line,
             State.ASSEMBLING.value, int(m.report), mid % 256, frag_key, m.now, m.now,
             m.expires_at))
    else:
        mid = row[0]
    if conn.execute("SELECT 1 FROM sms_part WHERE message_id = ? AND seq = ?",
                    (mid, seq)).fetchone():
        raise DuplicateFragment(f"fragment {seq}/{total} already submitted")
    conn.execute("INSERT INTO sms_part (message_id, seq, text, state, report) VALUES (?, ?, ?, ?, ?)",
                 (mid, seq, m.text, State.ASSEMBLING.value, int(m.report)))
    if m.report:
        conn.execute("UPDATE sms_message SET report = ? WHERE id = ? AND report = 0",
                     (int(m.report), mid))
    have = conn.execute("SELECT COUNT(*) FROM sms_part WHERE message_id = ?", (mid,)).fetchone()[0]
    complete = have >= total
    if complete:
        _finish_assembly(conn, mid, m.now)
    return mid, complete


def _finish_assembly(conn, mid: int, now: float) -> None:
    rows = conn.execute("SELECT text FROM sms_part WHERE message_id = ? ORDER BY seq",
                        (mid,)).fetchall()
    conn.execute("UPDATE sms_message SET state = ?, text = ?, frag_key = NULL, updated_at = ?"
                 " WHERE id = ?", (State.QUEUED.value, "".join(r[0] for r in rows), now, mid))
    conn.execute("UPDATE sms_part SET state = ? WHERE message_id = ?", (State.QUEUED.value, mid))


def close_assembly(conn, mid: int, now: float) -> bool:
    """Assembly timed out: send the fragments that arrived (the phone shows what it has)."""
    row = conn.execute("SELECT state FROM sms_message WHERE id = ?", (mid,)).fetchone()
    if row is None or row[0] != State.ASSEMBLING.value:
        return False
    _finish_assembly(conn, mid, now)
    return True


def claim(conn, mid: int, line: int, seq: int, expected_mr: int | None, now: float) -> bool:
    """Atomically give a queued message to ``line`` and mark its next part ``sending``."""
    cur = conn.execute(
        "UPDATE sms_message SET state = ?, sent_line = ?, attempts = attempts + 1, updated_at = ?"
        " WHERE id = ? AND state IN (?, ?)",
        (State.SENDING.value, line, now, mid, State.QUEUED.value, State.SENDING.value))
    if cur.rowcount != 1:
        return False
    conn.execute("UPDATE sms_part SET state = ?, line = ?, expected_mr = ?, claimed_at = ?"
                 " WHERE message_id = ? AND seq = ?",
                 (State.SENDING.value, line, expected_mr, now, mid, seq))
    return True


def part_sent(conn, mid: int, seq: int, line: int, mr: int, now: float,
              next_seq: int | None, next_expected: int | None,
              recovered: bool = False) -> State | None:
    """Record the module's reference; claim the next part in the same transaction.

    A ``recovered`` part left the module before a crash: its claim time is closer to
    the real send (and to its report's SCTS) than ``now``.  A report kept because it
    came before the part was known (see status_report) is applied here.
    Returns the message's final state if every part's report already arrived."""
    # A status report may already have settled this part (see status_report).
    sent_at = "COALESCE(claimed_at, ?)" if recovered else "?"
    cur = conn.execute(
        f"UPDATE sms_part SET state = ?, mr = ?, sent_at = {sent_at} WHERE message_id = ?"
        " AND seq = ? AND state IN (?, ?)",
        (State.SENT.value, mr, now, mid, seq, State.SENDING.value, State.QUEUED.value))
    if cur.rowcount == 1:
        _apply_unmatched(conn, mid, seq, line, mr, now)
    if next_seq is not None:
        conn.execute("UPDATE sms_part SET state = ?, line = ?, expected_mr = ?, claimed_at = ?"
                     " WHERE message_id = ? AND seq = ?",
                     (State.SENDING.value, line, next_expected, now, mid, next_seq))
    else:
        conn.execute("UPDATE sms_message SET state = ?, updated_at = ? WHERE id = ?",
                     (State.SENT.value, now, mid))
        _history_out(conn, mid, now)
        return _combine(conn, mid, now)[0]
    return None


def part_unsent(conn, mid: int, seq: int) -> bool:
    """A claimed part turned out not to have left the module (recovery).

    False when a status report already settled it: the report proves it left, whatever
    the SIM's counter says (modules that keep TP-MR in their own memory)."""
    cur = conn.execute("UPDATE sms_part SET state = ?, expected_mr = NULL WHERE message_id = ?"
                       " AND seq = ? AND state = ?",
                       (State.QUEUED.value, mid, seq, State.SENDING.value))
    return cur.rowcount == 1


def requeue(conn, mid: int, tried_lines: tuple[int, ...], error: str, now: float,
            keep_line: bool) -> None:
    conn.execute(
        "UPDATE sms_message SET state = ?, tried_lines = ?, error = ?, updated_at = ?"
        + ("" if keep_line else ", sent_line = NULL") + " WHERE id = ?",
        (State.QUEUED.value, ",".join(map(str, tried_lines)), error, now, mid))
    conn.execute("UPDATE sms_part SET state = ? WHERE message_id = ? AND state = ?",
                 (State.QUEUED.value, mid, State.SENDING.value))


def finish(conn, mid: int, state: State, error: str, now: float) -> bool:
    """Move a not yet final message to a final state (failed, expired, cancelled)."""
    cur = conn.execute(
        "UPDATE sms_message SET state = ?, error = ?, updated_at = ? WHERE id = ?"
        " AND state NOT IN (?, ?, ?, ?)",
        (state.value, error, now, mid, *[s.value for s in FINAL_STATES]))
    if cur.rowcount != 1:
        return False
    conn.execute("UPDATE sms_part SET state = ?, done_at = ? WHERE message_id = ? AND state NOT IN (?, ?)",
                 (state.value, now, mid, State.DELIVERED.value, State.FAILED.value))
    _history_out(conn, mid, now)
    return True


def cancel(conn, mid: int, now: float) -> bool:
    """cancel_sm: only a message no module has touched can be cancelled."""
    row = conn.execute("SELECT state FROM sms_message WHERE id = ?", (mid,)).fetchone()
    if row is None or row[0] not in (State.QUEUED.value, State.ASSEMBLING.value):
        return False
    sent = conn.execute("SELECT COUNT(*) FROM sms_part WHERE message_id = ? AND state IN (?, ?)",
                        (mid, State.SENT.value, State.SENDING.value)).fetchone()[0]
    if sent:
        return False
    return finish(conn, mid, State.CANCELLED, "cancelled", now)


@attrs.frozen
class ReportResult:
    message: int
    seq: int
    part_state: State
    message_state: State | None  # set when the whole message reached a final state
    parts: int
    delivered: int
    source: str
    source_ref: str
    report: bool


#: how many parts with one line/TP-MR a report looks at (newest wraps first)
REPORT_CANDIDATES = 16
#: seconds a report no part claimed is kept (longer than any validity period we set)
UNMATCHED_KEEP = 2 * 86_400.0


def status_report(conn, line: int, mr: int, delivered: bool, final: bool, status: int,
                  now: float, scts: float | None = None) -> ReportResult | None:
    """Apply a status report to the part with this line/reference.

    TP-MR is 8 bits and wraps, so among the parts with that reference the one sent
    closest to the report's service-centre time stamp (TS 23.040 §9.2.3.11) and still
    waiting for its report is meant, or the newest when the report has none.  A part
    already settled by this very report (same SCTS) means a repeat, read again from
    the SIM after a restart: ignored.  A part settled by another report is passed
    over, so a report taken by the wrong part of a wrapped reference is handed on by
    that part's own report.  A part still ``sending`` whose expected reference
    matches is proof the module sent it (a report drained from the SIM right after a
    restart, before recovery).  A report no part can take yet (its part's +CMGS
    answer not recorded, no expected reference) is kept in ``sms_report_unmatched``
    and applied when the part is recorded as sent (part_sent).  The message becomes
    delivered when every part is delivered, failed when every part is final and one
    is not (SPEC §7: reports combined over all parts).
    """
    if not final:
        return None
    if scts is not None:
        # Candidates: parts sent with this reference (settled ones too) and a part
        # still ``sending`` that expects it (its claim time stands for its send time).
        rows = conn.execute(
            "SELECT message_id, seq, state, report_scts, ABS(sent_at - ?) AS gap FROM sms_part"
            " WHERE line = ? AND mr = ? AND sent_at IS NOT NULL AND state IN (?, ?, ?)"
            " UNION ALL SELECT p.message_id, p.seq, p.state, p.report_scts,"
            " ABS(COALESCE(p.claimed_at, m.updated_at) - ?) AS gap"
            " FROM sms_part p JOIN sms_message m ON m.id = p.message_id"
            " WHERE p.line = ? AND p.expected_mr = ? AND p.state = ?"
            " ORDER BY gap LIMIT ?",
            (scts, line, mr, State.SENT.value, State.DELIVERED.value, State.FAILED.value,
             scts, line, mr, State.SENDING.value, REPORT_CANDIDATES)).fetchall()
        row = None
        for r in rows:
            if r[2] in (State.SENT.value, State.SENDING.value):
                row = r
                break
            if r[3] is None or r[3] == scts:
                return None  # a repeat (or settled before report times were kept)
    else:
        row = conn.execute(
            "SELECT message_id, seq FROM sms_part WHERE line = ? AND mr = ? AND state = ?"
            " ORDER BY sent_at DESC LIMIT 1", (line, mr, State.SENT.value)).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT message_id, seq FROM sms_part WHERE line = ? AND expected_mr = ?"
                " AND state = ? LIMIT 1", (line, mr, State.SENDING.value)).fetchone()
    if row is None:
        conn.execute("DELETE FROM sms_report_unmatched WHERE received_at < ?",
                     (now - UNMATCHED_KEEP,))
        conn.execute("INSERT INTO sms_report_unmatched (line, mr, delivered, status, scts,"
                     " received_at) VALUES (?, ?, ?, ?, ?, ?)",
                     (line, mr, int(delivered), status, scts, now))
        return None
    return _settle(conn, row[0], row[1], mr, delivered, status, now, scts)


def _settle(conn, mid: int, seq: int, mr: int, delivered: bool, status: int, now: float,
            scts: float | None) -> ReportResult:
    pstate = State.DELIVERED if delivered else State.FAILED
    conn.execute("UPDATE sms_part SET state = ?, status = ?, done_at = ?, mr = ?, report_scts = ?,"
                 " sent_at = COALESCE(sent_at, claimed_at, ?) WHERE message_id = ? AND seq = ?",
                 (pstate.value, status, now, mr, scts, now, mid, seq))
    mstate, total, ndelivered = _combine(conn, mid, now)
    msg = conn.execute("SELECT source, source_ref, report FROM sms_message WHERE id = ?",
                       (mid,)).fetchone()
    return ReportResult(mid, seq, pstate, mstate, total, ndelivered, msg[0], msg[1], bool(msg[2]))


def _apply_unmatched(conn, mid: int, seq: int, line: int, mr: int, now: float) -> None:
    """The part was just recorded as sent: a kept report for its line/TP-MR that came
    after the part was claimed is its report (an older one belongs to someone else)."""
    claimed = conn.execute(
        "SELECT COALESCE(p.claimed_at, m.updated_at) FROM sms_part p JOIN sms_message m"
        " ON m.id = p.message_id WHERE p.message_id = ? AND p.seq = ?", (mid, seq)).fetchone()
    if claimed is None:
        return
    row = conn.execute(
        "SELECT id, delivered, status, scts FROM sms_report_unmatched WHERE line = ? AND mr = ?"
        " AND received_at >= ? ORDER BY received_at DESC LIMIT 1",
        (line, mr, claimed[0])).fetchone()
    if row is None:
        return
    conn.execute("DELETE FROM sms_report_unmatched WHERE id = ?", (row[0],))
    _settle(conn, mid, seq, mr, bool(row[1]), row[2], now, row[3])


def _combine(conn, mid: int, now: float) -> tuple[State | None, int, int]:
    """Final state of a sent message once every part has its report, else None."""
    counts = {r[0]: r[1] for r in conn.execute(
        "SELECT state, COUNT(*) FROM sms_part WHERE message_id = ? GROUP BY state", (mid,))}
    total = sum(counts.values())
    delivered = counts.get(State.DELIVERED.value, 0)
    failed = counts.get(State.FAILED.value, 0)
    row = conn.execute("SELECT state FROM sms_message WHERE id = ?", (mid,)).fetchone()
    if row is None or row[0] != State.SENT.value or delivered + failed != total:
        return None, total, delivered
    mstate = State.DELIVERED if failed == 0 else State.FAILED
    conn.execute("UPDATE sms_message SET state = ?, updated_at = ? WHERE id = ?",
                 (mstate.value, now, mid))
    conn.execute("UPDATE sms_history SET state = ? WHERE direction = 'out' AND message_id = ?",
                 (mstate.value, mid))
    return mstate, total, delivered


def _history_out(conn, mid: int, now: float) -> None:
    m = conn.execute("SELECT sent_line, line, dest, text, parts, state FROM sms_message WHERE id = ?",
                     (mid,)).fetchone()
    if m is None:
        return
    cur = conn.execute("UPDATE sms_history SET state = ? WHERE direction = 'out' AND message_id = ?",
                       (m[5], mid))
    if cur.rowcount == 0:
        conn.execute("INSERT INTO sms_history (direction, line, peer, text, parts, state, message_id,"
                     " created_at) VALUES ('out', ?, ?, ?, ?, ?, ?, ?)",
                     (m[0] if m[0] is not None else m[1], m[2], m[3], m[4], m[5], mid, now))


def _outgoing(conn, r) -> Outgoing:
    parts = conn.execute("SELECT seq, text, state FROM sms_part WHERE message_id = ? ORDER BY seq",
                         (r["id"],)).fetchall()
    sent = sum(1 for p in parts if p[2] in (State.SENT.value, State.DELIVERED.value, State.FAILED.value))
    tried = tuple(int(x) for x in r["tried_lines"].split(",") if x)
    return Outgoing(id=r["id"], recipient=r["dest"], parts=tuple(p[1] for p in parts),
                    line=r["line"], state=State(r["state"]), attempts=r["attempts"],
                    expires_at=r["expires_at"], concat_ref=r["concat_ref"], sent_parts=sent,
                    tried_lines=tried, source=r["source"], source_ref=r["source_ref"],
                    sender=r["sender"], report=bool(r["report"]), not_before=r["not_before"])


def load_pending(conn) -> tuple[list[Outgoing], list[tuple[Outgoing, int, int, int | None]]]:
    """Unfinished work after a start: (queued messages, parts left ``sending``).

    The second list holds (message, seq, line, expected_mr) for parts whose fate is
    unknown: the process stopped between handing them to the module and recording
    the module's answer.
    """
    queued, uncertain = [], []
    rows = conn.execute(
        "SELECT * FROM sms_message WHERE state IN (?, ?, ?) ORDER BY id",
        (State.QUEUED.value, State.SENDING.value, State.ASSEMBLING.value)).fetchall()
    for r in rows:
        out = _outgoing(conn, r)
        if out.sent_parts and r["sent_line"] is not None:
            # Parts already left through this line: the rest must follow them there.
            out = attrs.evolve(out, line=r["sent_line"])
        if out.state is State.SENDING:
            p = conn.execute("SELECT seq, line, expected_mr FROM sms_part WHERE message_id = ?"
                             " AND state = ?", (out.id, State.SENDING.value)).fetchone()
            if p is not None:
                uncertain.append((out, p[0], p[1], p[2]))
                continue
            out = attrs.evolve(out, state=State.QUEUED)
        queued.append(out)
    return queued, uncertain


def max_id(conn) -> int:
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM sms_message").fetchone()[0]


def message_info(conn, mid: int) -> dict | None:
    r = conn.execute("SELECT * FROM sms_message WHERE id = ?", (mid,)).fetchone()
    if r is None:
        return None
    info = dict(r)
    info["part_rows"] = [dict(p) for p in conn.execute(
        "SELECT seq, state, line, mr, status, sent_at, done_at, report FROM sms_part"
        " WHERE message_id = ?"
        " ORDER BY seq", (mid,))]
    return info


def message_with_texts(conn, mid: int) -> dict | None:
    info = message_info(conn, mid)
    if info is not None:
        info["part_texts"] = [dict(r) for r in conn.execute(
            "SELECT seq, text FROM sms_part WHERE message_id = ? ORDER BY seq", (mid,))]
    return info


# -- history (F-506), shared with the received-SMS side ----------------------------------

def add_history_in(conn, line: int | None, peer: str, text: str, now: float, imsi: str = "",
                   slot: str = "", parts: int = 1) -> int:
    return conn.execute(
        "INSERT INTO sms_history (direction, line, slot, imsi, peer, text, parts, state, created_at)"
        " VALUES ('in', ?, ?, ?, ?, ?, ?, 'received', ?)",
        (line, slot, imsi, peer, text, parts, now)).lastrowid


def history_page(conn, direction: str, line: int | None = None, before_id: int | None = None,
                 limit: int = 20, search: str = "") -> list[dict]:
    """Newest first; page with ``before_id`` = the last id of the previous page."""
    sql = "SELECT * FROM sms_history WHERE direction = ?"
    params: list = [direction]
    if line is not None:
        sql += " AND line = ?"
        params.append(line)
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    if search:
        sql += " AND (peer LIKE ? OR text LIKE ?)"
        params += [f"%{search}%", f"%{search}%"]
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(max(1, min(int(limit), 500)))
    return [dict(r) for r in conn.execute(sql, params)]


def history_delete(conn, direction: str, line: int | None = None) -> int:
    if line is None:
        return conn.execute("DELETE FROM sms_history WHERE direction = ?", (direction,)).rowcount
    return conn.execute("DELETE FROM sms_history WHERE direction = ? AND line = ?",
                        (direction, line)).rowcount
