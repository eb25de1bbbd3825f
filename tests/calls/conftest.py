"""Shared fixtures: the real-peer harness (Kamailio, baresip) of tests/peers."""

import sqlite3

from tests.peers.harness import (baresip_factory, kamailio_factory,  # noqa: F401
                                 peer_dir)


def wal_file(path) -> str:
    """Create an empty SQLite file already in WAL mode.  The store's writer and reader
    threads both switch a fresh file to WAL at start and can meet "database is
    locked" (a lock-upgrade deadlock skips the busy handler); reported to the lead."""
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return str(path)
