"""SQLite implementation of IStore: WAL mode, one writer thread, group commit.

Why a single writer thread instead of adbapi's pool: SQLite allows one writer at a
time anyway, and draining every queued write into one transaction turns N fsyncs
into one, which is what lets SMPP acknowledge thousands of durable submits per
second.  Each write runs inside its own SAVEPOINT, so one failing write does not
take the rest of its batch down with it.  Reads use a second connection on their
own thread; WAL lets them proceed while a commit is in progress.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from goip_tw.store.interface import IStore
from goip_tw.store.migrations import all_migrations, split_sql

_STOP = object()


def connect(path: str, wal: bool = True) -> sqlite3.Connection:
    # timeout= sets the busy handler before the first statement: switching to WAL
    # may meet the other worker's connection opening at the same moment.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.row_factory = sqlite3.Row
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class _Worker(threading.Thread):
    """A thread owning one connection and serving queued jobs."""

    def __init__(self, store, name, batch, after=None):
        super().__init__(name=name, daemon=True)
        self.store = store
        self.jobs: queue.Queue = queue.Queue()
        self.batch = batch
        self.conn = None
        self.connected = threading.Event()
        self.after = after

    def run(self):
        # Switching to WAL needs the file to ourselves: the writer does it alone,
        # the reader connects once the writer has (WAL then persists in the file).
        if self.after is not None:
            self.after.connected.wait(30)
        try:
            self.conn = connect(self.store.path, wal=self.batch)
        except sqlite3.Error as e:
            self.connected.set()
            self._fail_all(e)
            return
        self.connected.set()
        try:
            while True:
                job = self.jobs.get()
                if job is _STOP:
                    return
                jobs = [job]
                if self.batch:
                    while len(jobs) < self.store.max_batch:
                        try:
                            nxt = self.jobs.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is _STOP:
                            self._run_batch(jobs)
                            return
                        jobs.append(nxt)
                    self._run_batch(jobs)
                else:
                    self._run_read(job)
        finally:
            self.conn.close()

    def _fail_all(self, error):
        """Without a connection every queued and future job fails instead of hanging."""
        self.store.log.error("store connection failed: {error}", error=error)
        while True:
            job = self.jobs.get()
            if job is _STOP:
                return
            self._deliver(job[0], False, error)

    def _deliver(self, d, ok, value):
        reactor = self.store.reactor
        if ok:
            reactor.callFromThread(d.callback, value)
        else:
            reactor.callFromThread(d.errback, value)

    def _run_read(self, job):
        d, fn, args, kwargs = job
        try:
            value = fn(self.conn, *args, **kwargs)
        except Exception as e:  # handed to the caller's errback
            self._deliver(d, False, e)
        else:
            self._deliver(d, True, value)

    def _run_batch(self, jobs):
        conn = self.conn
        results = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for d, fn, args, kwargs in jobs:
                conn.execute("SAVEPOINT w")
                try:
                    value = fn(conn, *args, **kwargs)
                except Exception as e:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((d, False, e))
                else:
                    conn.execute("RELEASE w")
                    results.append((d, True, value))
            conn.execute("COMMIT")
        except Exception as e:  # the commit itself failed: nothing in the batch is durable
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            results = [(d, False, e) for d, _, _, _ in jobs]
        self.store.commits += 1
        for d, ok, value in results:
            self._deliver(d, ok, value)


@implementer(IStore)
class SqliteStore:
    """The embedded default store (a file in the data directory)."""

    log = Logger()
    max_batch = 1000

    def __init__(self, path: str, reactor=None):
        if reactor is None:
            from twisted.internet import reactor as _r
            reactor = _r
        self.path = path
        self.reactor = reactor
        self.commits = 0
        self._writer = None
        self._reader = None
        self.running = False
        self._held_reads = None

    # -- life cycle ------------------------------------------------------------------

    def start(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._writer = _Worker(self, "store-writer", batch=True)
        self._reader = _Worker(self, "store-reader", batch=False, after=self._writer)
        self._writer.start()
        self._reader.start()
        self.running = True
        self._held_reads = []
        d = self.write(self._migrate)
        d.addBoth(self._release_reads)
        return d

    def _release_reads(self, result):
        """Reads issued before the migration ran now see the migrated schema."""
        held, self._held_reads = self._held_reads, None
        for job in held:
            self._reader.jobs.put(job)
        return result

    def stop(self):
        if not self.running:
            return defer.succeed(None)
        self.running = False
        done = defer.Deferred()
        writer, reader = self._writer, self._reader

        def join():
            # Reader first: the writer's close is then the last one, which
            # checkpoints the WAL into the database file and removes it.
            for w in (reader, writer):
                w.jobs.put(_STOP)
                w.join(30)
            self.reactor.callFromThread(done.callback, None)

        threading.Thread(target=join, name="store-close", daemon=True).start()
        return done

    def _migrate(self, conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
        applied = {r[0] for r in conn.execute("SELECT id FROM schema_migrations")}
        done = []
        for mid, name, sql in all_migrations():
            if mid in applied:
                continue
            for stmt in split_sql(sql):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)",
                         (mid, name, time.time()))
            done.append(mid)
        if done:
            self.log.info("store migrated: applied {ids}", ids=done)
        return done

    # -- IStore ----------------------------------------------------------------------

    def _submit(self, worker, fn, args, kwargs):
        if not self.running:
            return defer.fail(RuntimeError("store is not running"))
        d = defer.Deferred()
        worker.jobs.put((d, fn, args, kwargs))
        return d

    def write(self, fn, *args, **kwargs):
        return self._submit(self._writer, fn, args, kwargs)

    def read(self, fn, *args, **kwargs):
        if self.running and self._held_reads is not None:
            d = defer.Deferred()
            self._held_reads.append((d, fn, args, kwargs))
            return d
        return self._submit(self._reader, fn, args, kwargs)

    def query(self, sql, params=()):
        return self.read(lambda conn: conn.execute(sql, params).fetchall())

    def execute(self, sql, params=()):
        return self.write(lambda conn: conn.execute(sql, params).lastrowid)

    def applied_migrations(self):
        return self.query("SELECT id FROM schema_migrations ORDER BY id").addCallback(
            lambda rows: [r[0] for r in rows])
