"""The embedded store: one SQLite file through the standard library.

WAL journal, `synchronous=FULL` by default, `BEGIN IMMEDIATE` for every write, one
connection per process (re-opened after a fork). SQLite's own busy handler sleeps a
whole millisecond or more between tries, which halves throughput when a producer and
a worker share the file, so the connection has no busy timeout and `_retry_busy` retries
with short, growing sleeps up to the configured busy timeout instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ...errors import StoreBusyError
from ..base import Store
from ..migrate import load_migrations
from ..sql.claim import Claimer
from ..sql.session import Session
from .session import SqliteSession

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL
)
"""
SELECT_SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
INSERT_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
HAS_MIGRATIONS_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


class SqliteStore(Store):
    """The store on one SQLite file."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.path = Path(path).absolute()
        self.url = f"sqlite:///{self.path}"
        self.synchronous = mode
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._session: Session | None = None
        self._pid = 0
        self._claimer = Claimer()

    # -- connection and transactions ------------------------------------------------
    def _connect(self) -> tuple[sqlite3.Connection, Session]:
        if self._conn is None or self._session is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"), "open")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")  # validated above
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-16000")
            self._conn = conn
            self._session = SqliteSession(conn, self._claimer)
            self._pid = os.getpid()
        return self._conn, self._session

    def _retry_busy(self, action: Callable[[], T], what: str) -> T:
        delay = 0.00002
        deadline: float | None = None
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.busy_timeout_ms / 1000
                if now >= deadline:
                    raise StoreBusyError(
                        f"the database {self.path} stayed locked by another process for "
                        f"{self.busy_timeout_ms} ms ({what}); nothing was written"
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.001)

    def write(self, body: Callable[[Session], T], what: str) -> T:
        with self._lock:
            conn, session = self._connect()

            def attempt() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(session)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

            return self._retry_busy(attempt, what)

    def execute(self, body: Callable[[Session], T], what: str) -> T:
        # One statement is its own transaction: no BEGIN/COMMIT round trips.
        with self._lock:
            _, session = self._connect()
            return self._retry_busy(lambda: body(session), what)

    def read(self, body: Callable[[Session], T]) -> T:
        with self._lock:
            conn, session = self._connect()

            def attempt() -> T:
                conn.execute("BEGIN")  # deferred: one consistent snapshot of the WAL
                try:
                    return body(session)
                finally:
                    conn.execute("COMMIT")

            return self._retry_busy(attempt, "read")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._session = None

    # -- schema ---------------------------------------------------------------------
    def migrate(self) -> list[str]:
        migrations = load_migrations("sqlite")

        def body(session: Session) -> list[str]:
            conn = session.conn
            conn.execute(CREATE_MIGRATIONS_TABLE)
            current = conn.execute(SELECT_SCHEMA_VERSION).fetchone()[0]
            applied: list[str] = []
            for migration in migrations:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    INSERT_MIGRATION,
                    (migration.version, migration.name, time.time_ns() // 1_000_000),
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
            return applied

        return self.write(body, "migrate")

    def schema_version(self) -> int:
        def body(session: Session) -> int:
            conn = session.conn
            if not conn.execute(HAS_MIGRATIONS_TABLE).fetchone():
                return 0
            return int(conn.execute(SELECT_SCHEMA_VERSION).fetchone()[0])

        return self.read(body)
