"""`TaskloomProject`: a throwaway project directory for tests (task modules, config file,
SQLite database), and `reset_client`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, Config, load_config
from ..sdk import client
from .subprocesses import WorkerProcess


def reset_client() -> None:
    """Forget this process's configuration and close its client (`taskloom.sdk.client.reset`:
    the local client's store connection and wake-up socket), so the next call builds a
    new one from the configuration."""
    client.reset()


# --- the project ----------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: TOML cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str | os.PathLike):
        return json.dumps(os.fspath(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item, where) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v, f'{where}.{k}')}" for k, v in value.items()
        )
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"{where}: cannot write a {type(value).__name__} to TOML: {value!r}")


def _toml_document(keys: Mapping[str, object]) -> str:
    """Top-level scalars first, then one ``[table]`` per dict value."""
    lines = [
        f"{_toml_key(k)} = {_toml_value(v, k)}"
        for k, v in keys.items()
        if not isinstance(v, Mapping)
    ]
    for name, table in keys.items():
        if isinstance(table, Mapping):
            lines.append("")
            lines.append(f"[{_toml_key(name)}]")
            lines.extend(
                f"{_toml_key(str(k))} = {_toml_value(v, f'{name}.{k}')}" for k, v in table.items()
            )
    return "\n".join(lines) + "\n"


class TaskloomProject:
    """A project directory for tests: task modules, ``taskloom.toml`` and a SQLite file.

    `root` is created if needed (a pytest ``tmp_path`` is ideal). The config file is
    written at once with the task directories and the absolute database URL, so a
    worker started anywhere uses this project's database.

    >>> project = TaskloomProject(tmp_path)  # doctest: +SKIP
    >>> project.write_config(worker={"lease_seconds": 2})  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        dirs: Sequence[str] = ("trigger",),
        database: str = "taskloom.db",
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.dirs = tuple(dirs)
        if not self.dirs:
            raise ValueError("a project needs at least one task directory")
        for directory in self.dirs:
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self.database_path = self.root / ".taskloom" / database
        """The SQLite file of this project."""
        self._config: dict[str, object] = {}
        self._workers = 0
        self.write_config()

    @property
    def database_url(self) -> str:
        """``sqlite:////absolute/path/to/taskloom.db``."""
        return f"sqlite:///{self.database_path}"

    @property
    def config_path(self) -> Path:
        """The project's ``taskloom.toml``."""
        return self.root / CONFIG_FILE

    def write_task_module(self, name: str, source: str, *, directory: str | None = None) -> Path:
        """Write ``<directory>/<name>.py`` (first task directory by default); return its path.

        `source` is dedented, so it can be an indented triple-quoted string. `name` may
        contain slashes for sub-packages (``"billing/invoices"``). Write ``"init"`` for
        the directory's ``init.py``, imported before every other module.
        """
        if not name or name.endswith(".py") or name.startswith("/"):
            raise ValueError(f"module name must be like 'billing' or 'sub/billing', got {name!r}")
        path = self.root / (directory or self.dirs[0]) / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
        return path

    def write_config(self, **keys: object) -> Path:
        """Merge `keys` into ``taskloom.toml`` and rewrite it; return its path.

        Keys are the file's keys; a dict value is a table whose keys are merged with
        earlier calls' (``worker={"lease_seconds": 2}``); a dict inside a table is
        written as an inline table (``retries={"default": {"max_attempts": 1}}``).
        ``dirs`` and ``database_url`` default to this project's. The file is
        validated by taskloom's own loader, so a bad key fails here (and the file is
        left as it was), not in a worker.
        """
        merged = dict(self._config)
        for key, value in keys.items():
            current = merged.get(key)
            if isinstance(value, Mapping) and isinstance(current, Mapping):
                merged[key] = {**current, **value}
            elif isinstance(value, Mapping):
                merged[key] = dict(value)
            else:
                merged[key] = value
        document = {"dirs": list(self.dirs), "database_url": self.database_url, **merged}
        path = self.config_path
        previous = path.read_text(encoding="utf-8") if path.exists() else None
        path.write_text(_toml_document(document), encoding="utf-8")
        try:
            self.load_config()
        except BaseException:
            if previous is None:
                path.unlink()
            else:
                path.write_text(previous, encoding="utf-8")
            raise
        self._config = merged
        return path

    def load_config(self) -> Config:
        """The configuration a worker of this project sees (files and `env()`, no overrides)."""
        return load_config(self.root, self.env())

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for processes of this project: this process's, without its
        ``TASKLOOM_*`` variables, plus the project root, its database and `extra`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
        env["TASKLOOM_PROJECT_ROOT"] = str(self.root)
        env["TASKLOOM_DATABASE_URL"] = self.database_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(extra or {})
        return env

    def configure(self, **overrides: object) -> Config:
        """Point this process (triggers, `runs`, ...) at the project; forget earlier config.

        `overrides` are `taskloom.configure` options applied on top. Undo with `reset`.
        """
        reset_client()
        return client.configure(project_root=self.root, database_url=self.database_url, **overrides)

    def reset(self) -> None:
        """Forget this process's configuration and close its client (see `reset_client`)."""
        reset_client()

    @contextlib.contextmanager
    def configured(self, **overrides: object) -> Iterator[Config]:
        """`configure` for the body of a ``with`` block, then `reset`."""
        try:
            yield self.configure(**overrides)
        finally:
            self.reset()

    def worker(
        self,
        *,
        concurrency: int | None = None,
        executors: int | None = None,
        env: Mapping[str, str] | None = None,
        prelude: str | None = None,
        wait_ready: bool = True,
        ready_timeout: float = 60.0,
    ) -> WorkerProcess:
        """Start a worker for this project (see `WorkerProcess`) and, by default, wait until
        it is ready to claim runs."""
        worker = WorkerProcess(
            self, concurrency=concurrency, executors=executors, env=env, prelude=prelude
        )
        worker.start()
        if wait_ready:
            try:
                worker.wait_ready(ready_timeout)
            except BaseException:
                worker.close()
                raise
        return worker

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the project database, for assertions on what the
        public API does not show (the ``workers`` table, counts over many runs). Before
        anything created the schema the database is empty: ``sqlite_master`` has no rows."""
        conn = sqlite3.connect(self.database_path, timeout=10)
        try:
            conn.execute("PRAGMA query_only = ON")
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def _next_worker_dir(self) -> Path:
        self._workers += 1
        path = self.root / ".taskloom" / "test-workers" / f"worker-{self._workers}"
        path.mkdir(parents=True, exist_ok=True)
        return path
