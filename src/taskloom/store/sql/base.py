"""The session every SQL statement runs in: one connection, inside a transaction (or a
single statement that is its own), with the helpers the statement modules share.

Statements are written once, in dialect-neutral SQL with `:name` parameters, as named
constants beside the methods that run them (`runs`, `attempts`, `waitpoints`, `workers`,
`queues`, `claim`). A dialect's session subclass (`taskloom.store.sqlite`) supplies the
connection and replaces only the statements its database spells differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

Params = Mapping[str, Any] | Sequence[Any]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    description: Any
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Any: ...


class Connection(Protocol):
    """The part of a DB-API connection the store uses."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


class SessionBase:
    """A connection and the helpers every statement module uses."""

    dialect = "sql"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def sql(self, statement: str) -> str:
        """The statement as this dialect's driver takes it (placeholders, spelling)."""
        return statement

    def run(self, statement: str, params: Params = ()) -> Cursor:
        """Execute one statement."""
        cursor: Cursor = self.conn.execute(self.sql(statement), params)
        return cursor

    def run_many(self, statement: str, rows: Iterable[Params]) -> None:
        """Execute one statement for every row of parameters."""
        self.conn.executemany(self.sql(statement), rows)

    def scalar(self, statement: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.run(statement, params).fetchone()
        return None if row is None else row[0]

    def column(self, statement: str, params: Params = ()) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self.run(statement, params)]
