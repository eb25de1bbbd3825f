"""SMS tables (migration ids 100-199).

``sms_message`` holds one row per logical outgoing SMS (counted once however many
parts it has); ``sms_part`` one row per part with the module's message reference
(TP-MR) recorded in the same transaction that moves the part to ``sent``.
``expected_mr`` is written when a part is claimed so that, after a crash, the SIM's
"last used TP-MR" (EF_SMSS, 3GPP TS 31.102 §4.2.28) tells whether the module sent it;
``claimed_at`` dates that claim (the best estimate of the send time for a part that
recovery records as sent), ``report_scts`` the report that settled the part (a
report read again from the SIM is recognised by it).  ``sms_report_unmatched`` keeps
a status report that came before its part was known, until that part is recorded.

``sms_history`` is the inbox/outbox of F-506 shared with the received-SMS side
(goip_tw/sms/inbound.py): direction 'in' or 'out', newest first per line.
``sms_inbound_part`` holds received fragments until reassembly; its unique key is
the duplicate test of SPEC §7 (IMSI, sender, service-centre time stamp, reference,
part).  SQL is kept portable (INTEGER/TEXT/REAL, ``?`` parameters).
"""

MIGRATIONS = [
    (100, "sms outgoing queue and history", """
CREATE TABLE sms_message (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    source_ref TEXT NOT NULL DEFAULT '',
    sender TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL,
    dest TEXT NOT NULL,
    text TEXT NOT NULL,
    parts INTEGER NOT NULL,
    line INTEGER,
    sent_line INTEGER,
    state TEXT NOT NULL,
    report INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    tried_lines TEXT NOT NULL DEFAULT '',
    concat_ref INTEGER NOT NULL DEFAULT 0,
    frag_key TEXT,
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sms_message_state ON sms_message (state);
CREATE INDEX sms_message_frag ON sms_message (frag_key);
CREATE TABLE sms_part (
    message_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    state TEXT NOT NULL,
    line INTEGER,
    mr INTEGER,
    expected_mr INTEGER,
    status INTEGER,
    sent_at REAL,
    done_at REAL,
    PRIMARY KEY (message_id, seq)
);
CREATE INDEX sms_part_mr ON sms_part (line, mr, state);
CREATE TABLE sms_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL,
    line INTEGER,
    slot TEXT,
    imsi TEXT,
    peer TEXT NOT NULL,
    text TEXT NOT NULL,
    parts INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT '',
    message_id INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX sms_history_line ON sms_history (direction, line, id);
CREATE TABLE sms_inbound_part (
    imsi TEXT NOT NULL,
    sender TEXT NOT NULL,
    scts TEXT NOT NULL,
    ref INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    line INTEGER,
    text TEXT NOT NULL,
    received_at REAL NOT NULL,
    history_id INTEGER,
    PRIMARY KEY (imsi, sender, scts, ref, seq)
)
"""),
    (101, "sms client-split flag", """
ALTER TABLE sms_message ADD COLUMN client_split INTEGER NOT NULL DEFAULT 0
"""),
    (102, "sms per-part receipt request (SMPP clients that split texts themselves)", """
ALTER TABLE sms_part ADD COLUMN report INTEGER NOT NULL DEFAULT 0
"""),
    (103, "smpp: received SMS acknowledged by SMPP clients (restart catch-up)", """
CREATE TABLE smpp_mo_cursor (
    name TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
)
"""),
    (104, "sms scheduled delivery (SMPP schedule_delivery_time)", """
ALTER TABLE sms_message ADD COLUMN not_before REAL NOT NULL DEFAULT 0
"""),
    (105, "sms status reports also look up parts still sending by expected TP-MR", """
CREATE INDEX sms_part_expected ON sms_part (line, expected_mr, state)
"""),
    (106, "sms status reports kept until their part is known; claim and report times", """
ALTER TABLE sms_part ADD COLUMN claimed_at REAL;
ALTER TABLE sms_part ADD COLUMN report_scts REAL;
CREATE TABLE sms_report_unmatched (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line INTEGER NOT NULL,
    mr INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    status INTEGER NOT NULL,
    scts REAL,
    received_at REAL NOT NULL
);
CREATE INDEX sms_report_unmatched_mr ON sms_report_unmatched (line, mr)
"""),
]
