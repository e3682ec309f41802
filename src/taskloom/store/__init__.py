"""Durable state behind one interface; `open_store` picks the dialect from a URL."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidOptionError
from .base import Store
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store", "sqlite_path_from_url"]


def sqlite_path_from_url(url: str, root: Path) -> Path:
    """`sqlite:///relative/path` (against root) or `sqlite:////absolute/path` to a path."""
    if not url.startswith("sqlite:///"):
        raise InvalidOptionError(f"not a sqlite:/// database URL: {url!r}")
    rest = url[len("sqlite:///") :]
    path = Path(rest)
    return path if path.is_absolute() else root / path


def open_store(
    url: str, *, root: Path, synchronous: str = "FULL", busy_timeout_ms: int = 5000
) -> Store:
    """A store for a database URL. PostgreSQL arrives as a second implementation."""
    if url.startswith("sqlite:///"):
        return SqliteStore(
            sqlite_path_from_url(url, root),
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
