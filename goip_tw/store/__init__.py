"""Persistent store: IStore, the SQLite implementation, numbered migrations."""
