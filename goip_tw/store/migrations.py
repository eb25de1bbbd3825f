"""Numbered schema migrations.

Core tables are here (ids 1-99).  Areas own their tables in their own modules, each
with a ``MIGRATIONS = [(id, name, sql), ...]`` list, in id ranges: sms 100-199,
calls/CDR 200-299, SIM management 300-399.  Applied ids are recorded in
``schema_migrations``; an applied migration is never edited, only followed.
"""

from __future__ import annotations

import importlib

CORE_MIGRATIONS = [
    (1, "event log and per-SIM statistics", """
CREATE TABLE event_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    line INTEGER,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX event_log_ts ON event_log (ts);
CREATE INDEX event_log_line ON event_log (line, ts);
CREATE TABLE sim_stats (
    iccid TEXT PRIMARY KEY,
    imsi TEXT,
    line INTEGER,
    slot TEXT,
    number TEXT,
    calls_total INTEGER NOT NULL DEFAULT 0,
    calls_connected INTEGER NOT NULL DEFAULT 0,
    talk_seconds INTEGER NOT NULL DEFAULT 0,
    billed_minutes INTEGER NOT NULL DEFAULT 0,
    sms_sent INTEGER NOT NULL DEFAULT 0,
    sms_received INTEGER NOT NULL DEFAULT 0,
    consecutive_no_answer INTEGER NOT NULL DEFAULT 0,
    consecutive_short INTEGER NOT NULL DEFAULT 0,
    consecutive_no_ring INTEGER NOT NULL DEFAULT 0,
    today_calls INTEGER NOT NULL DEFAULT 0,
    today_sms INTEGER NOT NULL DEFAULT 0,
    first_seen REAL,
    updated_at REAL
);
"""),
]

#: Area modules holding MIGRATIONS lists; a module that does not exist is skipped.
AREA_MODULES = (
    "goip_tw.sms.schema",
    "goip_tw.sms.inbound_schema",
    "goip_tw.calls.schema",
    "goip_tw.sim.schema",
)


def all_migrations() -> list[tuple[int, str, str]]:
    found = list(CORE_MIGRATIONS)
    for name in AREA_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not (e.name and name.startswith(e.name)):
                raise
            continue
        found.extend(getattr(mod, "MIGRATIONS", []))
    ids = [m[0] for m in found]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise RuntimeError(f"duplicate migration ids: {sorted(dupes)}")
    return sorted(found)


def split_sql(sql: str) -> list[str]:
    """Statements of a migration (no semicolons inside literals in our migrations)."""
    return [s.strip() for s in sql.split(";") if s.strip()]
