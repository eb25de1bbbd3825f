"""The store interface every backend implements (SQLite now, PostgreSQL in fleet mode)."""

from zope.interface import Attribute, Interface


class IStore(Interface):
    """Durable storage used without blocking the reactor.

    ``fn`` callables receive a DB-API connection with ``?`` placeholders and
    ``sqlite3.Row``-like rows; keep SQL portable (no backend-specific syntax beyond
    ``?`` parameters and ``INSERT ... ON CONFLICT``).
    """

    path = Attribute("Where the data lives (a file path or a DSN without password).")

    def start():
        """Open, apply pending migrations; Deferred fires when ready."""

    def stop():
        """Finish queued writes, close; Deferred fires when closed."""

    def write(fn, *args, **kwargs):
        """Run ``fn(conn, *args, **kwargs)`` in a write transaction.

        Writes queued together are group-committed; each Deferred fires with the
        function's result only after the commit that made it durable, or fails
        with the function's exception (other writes in the batch are unaffected).
        """

    def read(fn, *args, **kwargs):
        """Run ``fn(conn, ...)`` on a read connection (sees committed data)."""

    def query(sql, params=()):
        """Deferred list of rows for one SELECT."""

    def execute(sql, params=()):
        """Deferred: one write statement, durable when it fires; result = lastrowid."""
