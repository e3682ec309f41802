"""Numbered migrations, one `.sql` file each, per dialect, applied in order.

Files live in `taskloom/store/migrations/<dialect>/NNNN_name.sql`; every dialect has the
same numbers. Statements are separated by a `;` at the end of a line (the files hold no
triggers or string literals with semicolons).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its number, name and statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations(dialect: str) -> list[Migration]:
    """Every migration of a dialect, in version order."""
    folder = resources.files("taskloom.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), match.group(2), split_statements(text)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations for {dialect} are not numbered 1..n: {versions}")
    return found


def split_statements(script: str) -> tuple[str, ...]:
    """Split a migration script into statements, dropping comment-only lines."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return tuple(statements)
