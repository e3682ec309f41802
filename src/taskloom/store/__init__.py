"""Durable state behind one interface; `open_store` picks the dialect from a URL."""

from __future__ import annotations

from pathlib import Path

from ..config import sqlite_path
from ..errors import InvalidOptionError
from .base import Store
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]


def open_store(
    url: str, *, root: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000
) -> Store:
    """A store for a database URL. PostgreSQL arrives as a second implementation."""
    path = sqlite_path(url, root)
    if path is not None:
        return SqliteStore(
            path,
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
        )
    if url.startswith(("postgresql://", "postgres://")):
        raise InvalidOptionError(
            f"database_url {url!r}: the PostgreSQL store is not available in this version; "
            "use a sqlite:/// URL"
        )
    raise InvalidOptionError(
        f"database_url {url!r} is not supported: use sqlite:///path/to/file.db"
    )
