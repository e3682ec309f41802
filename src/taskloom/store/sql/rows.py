"""Rows to records, by column name.

A record (a msgspec Struct of `taskloom.store.records`) names the columns it is read from:
`columns(Record)` is the select list, and `RowReader(Record)` matches the names in a
cursor's description to the record's fields once per statement, then builds records with
one positional lookup per field. So no statement's column order is counted by hand, and a
new column is one new field.

Values are converted where the database's type differs from the record's: integers that
are booleans, JSON held as TEXT read back as bytes (or as `msgspec.Raw`, JSON to pass on
undecoded), and the empty concurrency key (the claim's sub-queue key for "none") read back
as None.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import msgspec

R = TypeVar("R")
Converter = Callable[[Any], Any]

EMPTY_IS_NONE = frozenset({"concurrency_key"})
"""Columns where '' stands for "none" (they take part in an index that needs a value)."""


def _fields(record: type[Any]) -> list[tuple[str, bool]]:
    """(name, has a default) of each field of a record, in order."""
    return [
        (f.name, f.default is not msgspec.NODEFAULT or f.default_factory is not msgspec.NODEFAULT)
        for f in msgspec.structs.fields(record)
    ]


def field_names(record: type[Any], *, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The record's fields, in order (its column names), less `exclude`."""
    skipped = set(exclude)
    return tuple(name for name, _ in _fields(record) if name not in skipped)


def columns(record: type[Any], *, exclude: Iterable[str] = (), prefix: str = "") -> str:
    """The select list for a record: its column names separated by commas."""
    return ", ".join(prefix + name for name in field_names(record, exclude=exclude))


def astuple(record: msgspec.Struct) -> tuple[Any, ...]:
    """A record's values in field order: the parameters of a statement whose columns are
    the record's fields."""
    return msgspec.structs.astuple(record)


def _to_bool(value: Any) -> bool:
    return bool(value)


def _to_bytes(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


def _to_raw(value: Any) -> Any:
    return msgspec.Raw(value)


def _empty_to_none(value: Any) -> Any:
    return value or None


def _converter(name: str, annotation: Any) -> Converter | None:
    if name in EMPTY_IS_NONE:
        return _empty_to_none
    if annotation is bool:
        return _to_bool
    if annotation is bytes or annotation == (bytes | None):
        return _to_bytes
    if annotation is msgspec.Raw:
        return _to_raw
    return None


class RowReader(Generic[R]):
    """Builds `record`s from rows, matching columns to fields by name.

    >>> reader = RowReader(SomeRecord)          # doctest: +SKIP
    >>> reader.all(conn.execute("SELECT ..."))  # doctest: +SKIP
    """

    def __init__(self, record: type[R], *, defaults: Iterable[str] = ()) -> None:
        self.record = record
        hints = typing.get_type_hints(record)
        fields = _fields(record)
        self._optional = set(defaults) | {name for name, has_default in fields if has_default}
        self._fields = [(name, _converter(name, hints[name])) for name, _ in fields]
        self._plans: dict[tuple[str, ...], Callable[[Sequence[Any]], R]] = {}

    def _plan(self, description: Sequence[Sequence[Any]]) -> Callable[[Sequence[Any]], R]:
        names = tuple(str(column[0]) for column in description)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = self._compile(names)
        return plan

    def _compile(self, names: tuple[str, ...]) -> Callable[[Sequence[Any]], R]:
        index = {name: position for position, name in enumerate(names)}
        missing = [
            name for name, _ in self._fields if name not in index and name not in self._optional
        ]
        if missing:
            raise LookupError(
                f"a row for {self.record.__name__} lacks the column(s) {', '.join(missing)} "
                f"(it has {', '.join(names)})"
            )
        # One function per statement shape, generated once: a positional lookup per field
        # (by keyword for a field after one the row lacks), converted where needed.
        namespace: dict[str, Any] = {"record": self.record}
        arguments = []
        positional = True
        for name, convert in self._fields:
            if name not in index:
                positional = False
                continue
            value = f"row[{index[name]}]"
            if convert is _to_bool:
                value = f"bool({value})"
            elif convert is _empty_to_none:
                value = f"({value} or None)"
            elif convert is not None:
                namespace[f"convert_{name}"] = convert
                value = f"convert_{name}({value})"
            arguments.append(value if positional else f"{name}={value}")
        source = f"def build(row):\n    return record({', '.join(arguments)})\n"
        exec(compile(source, f"<row reader for {self.record.__name__}>", "exec"), namespace)
        build: Callable[[Sequence[Any]], R] = namespace["build"]
        return build

    def all(self, cursor: Any) -> list[R]:
        """Every row of an executed cursor as a record."""
        rows = cursor.fetchall()
        if not rows:
            return []
        plan = self._plan(cursor.description)
        return [plan(row) for row in rows]

    def one(self, cursor: Any) -> R | None:
        """The first row of an executed cursor as a record, or None."""
        row = cursor.fetchone()
        return None if row is None else self._plan(cursor.description)(row)
