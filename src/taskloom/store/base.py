"""The store interface: every durable read and write taskloom makes goes through it.

Nothing outside `taskloom.store` speaks SQL, and only the engine uses a store. A store
opens sessions (`taskloom.store.sql.session.Session`: every statement, dialect-neutral)
on its connection: `write` runs a body of statements as one transaction (retried as a
whole while the database is busy), `read` runs reads, `execute` runs a body of ONE
statement that is its own transaction (the trigger hot path). Each dialect (SQLite now,
PostgreSQL later) is a subclass differing only where its database does; the same suite in
`tests/store/` runs against every one. Times are integers in ms since the epoch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TypeVar

from .sql.session import Session

T = TypeVar("T")


class Store(abc.ABC):
    """Durable state of runs, attempts, waits, events, workers, leaders and queues."""

    url: str
    dialect: str

    @abc.abstractmethod
    def write(self, body: Callable[[Session], T], what: str) -> T:
        """Run `body` in one write transaction and commit; a busy database is retried
        (the whole body again) up to the busy timeout, then StoreBusyError (`what` names
        the operation in the message)."""

    @abc.abstractmethod
    def execute(self, body: Callable[[Session], T], what: str) -> T:
        """Run `body`, which makes exactly one statement, as its own transaction."""

    @abc.abstractmethod
    def read(self, body: Callable[[Session], T]) -> T:
        """Run `body`'s reads, all of them on one consistent snapshot of the database."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply pending numbered migrations; return the names applied."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The highest migration number applied (0 for an empty database)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store may be reopened by using it again."""
