"""CDR table (migration ids 200-299, see goip_tw/store/migrations.py).

One row per call, answered or not (issue 7 item 7).  Times are Unix seconds (REAL);
NULL where the event did not happen (no ring, no answer).  Portable SQL only.
"""

MIGRATIONS = [
    (200, "call detail records", """
CREATE TABLE cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line INTEGER,
    slot TEXT,
    iccid TEXT,
    direction TEXT NOT NULL,
    caller_before TEXT,
    caller_after TEXT,
    callee_before TEXT,
    callee_after TEXT,
    sip_call_id TEXT,
    setup_time REAL NOT NULL,
    ring_time REAL,
    answer_time REAL,
    end_time REAL NOT NULL,
    duration REAL NOT NULL DEFAULT 0,
    billable_seconds INTEGER NOT NULL DEFAULT 0,
    billed_periods INTEGER NOT NULL DEFAULT 0,
    end_side TEXT,
    mobile_cause INTEGER,
    mobile_cause_text TEXT,
    sip_code INTEGER,
    sip_reason TEXT,
    codec TEXT,
    rtp_loss REAL,
    rtp_jitter_ms REAL,
    one_way_audio INTEGER NOT NULL DEFAULT 0,
    two_stage INTEGER NOT NULL DEFAULT 0,
    test_call INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX cdr_line_time ON cdr (line, setup_time);
CREATE INDEX cdr_iccid_time ON cdr (iccid, setup_time);
CREATE INDEX cdr_call_id ON cdr (sip_call_id);
"""),
]
