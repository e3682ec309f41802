"""The SQLite dialect of the store."""

from .store import SqliteStore

__all__ = ["SqliteStore"]
