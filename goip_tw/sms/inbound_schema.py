"""Tables of the received-SMS side (migration ids 150-199).

``sms_history`` and ``sms_inbound_part`` are declared by goip_tw/sms/schema.py
(migration 100); this module adds:

- ``sms_forward``: one durable job per forward of a received SMS (F-496 SIP
  MESSAGE, F-497 mobile number, F-498 e-mail), written in the same transaction as
  the message itself, so a crash can delay a forward but never lose it.
- ``sim_own_number``: numbers learned by own-number discovery (F-510), keyed by
  ICCID so the number follows the SIM to another line or slot.
"""

MIGRATIONS = [
    (150, "received sms forwards and learned own numbers", """
CREATE TABLE sms_forward (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    history_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX sms_forward_state ON sms_forward (state, next_at);
CREATE TABLE sim_own_number (
    iccid TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    method TEXT NOT NULL,
    line INTEGER,
    learned_at REAL NOT NULL
)
"""),
]
