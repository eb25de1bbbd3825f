"""The SQLite store: migrations from empty, group commit, reactor never blocked."""

import os
import sqlite3
import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from goip_tw.store import migrations
from goip_tw.store.eventlog import EventLog
from goip_tw.store.sqlite import SqliteStore


@pytest_twisted.inlineCallbacks
def test_migrations_from_empty(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    applied = yield store.start()
    expected = [m[0] for m in migrations.all_migrations()]
    assert applied == expected
    yield store.stop()
    # a second start applies nothing and keeps data
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    assert (yield store.start()) == []
    assert (yield store.applied_migrations()) == expected
    mode = yield store.query("PRAGMA journal_mode")
    assert mode[0][0] == "wal"
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_failing_write_does_not_spoil_its_batch(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    yield store.start()
    log = EventLog(store)
    ds = [log.append("t", f"e{i}") for i in range(50)]
    ds.insert(10, store.execute("INSERT INTO nosuchtable VALUES (1)"))
    results = yield defer.DeferredList(ds, consumeErrors=True)
    oks = [ok for ok, _ in results]
    assert oks.count(False) == 1 and not oks[10]
    assert isinstance(results[10][1].value, sqlite3.OperationalError)
    rows = yield store.query("SELECT COUNT(*) FROM event_log")
    assert rows[0][0] == 50
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_concurrent_writes_do_not_block_the_reactor(tmp_path):
    """2,000 writes in flight while a 5 ms LoopingCall keeps ticking on time."""
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    yield store.start()
    log = EventLog(store)
    gaps = []
    last = [time.monotonic()]

    def tick():
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    lc = task.LoopingCall(tick)
    lc.start(0.005)
    before = store.commits
    ds = [log.append("load", "write", i=i) for i in range(2000)]
    yield defer.gatherResults(ds)
    lc.stop()
    rows = yield store.query("SELECT COUNT(*) FROM event_log WHERE source = 'load'")
    assert rows[0][0] == 2000
    # group commit: far fewer commits than writes
    assert store.commits - before < 500
    # the reactor kept running: no tick waited longer than 250 ms (shared CI box)
    assert gaps and max(gaps) < 0.25
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_write_acknowledged_only_when_durable(tmp_path):
    path = str(tmp_path / "s.sqlite")
    store = SqliteStore(path, reactor=reactor)
    yield store.start()
    yield EventLog(store).append("t", "durable")
    # another connection (another process in real life) sees it at once
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT event FROM event_log").fetchall() == [("durable",)]
    conn.close()
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_stopped_store_refuses_writes(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    yield store.start()
    yield store.stop()
    with pytest.raises(RuntimeError):
        yield store.execute("SELECT 1")
    assert not [f for f in os.listdir(tmp_path) if f.endswith("-wal") and os.path.getsize(tmp_path / f)]


@pytest_twisted.inlineCallbacks
def test_reads_issued_before_migration_see_the_schema(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"), reactor=reactor)
    started = store.start()
    rows = yield store.query("SELECT COUNT(*) FROM event_log")  # not waiting for start()
    assert rows[0][0] == 0
    yield started
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_unopenable_store_fails_jobs_instead_of_hanging(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    store = SqliteStore(str(tmp_path / "dir.sqlite"), reactor=reactor)
    with pytest.raises(sqlite3.Error):
        yield store.start()
    yield store.stop()


@pytest_twisted.inlineCallbacks
def test_fresh_file_starts_with_both_threads_every_time(tmp_path):
    """Writer and reader open a brand-new file: the writer switches it to WAL alone,
    the reader connects after it, so neither dies on "database is locked"."""
    for i in range(40):
        store = SqliteStore(str(tmp_path / f"s{i}.sqlite"), reactor=reactor)
        yield store.start()
        assert store._writer.is_alive() and store._reader.is_alive()
        yield EventLog(store).append("t", "e")
        rows = yield store.query("SELECT COUNT(*) FROM event_log")
        assert rows[0][0] == 1
        yield store.stop()
