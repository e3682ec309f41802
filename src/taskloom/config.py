"""The effective configuration: defaults, then the config file, then ``TASKLOOM_*``, then code.

Sources, lowest precedence first:

1. the defaults of `Config`;
2. ``taskloom.toml`` in the project root or, when there is none, the
   ``[tool.taskloom]`` table of its ``pyproject.toml``;
3. environment variables (`ENV_VARS`);
4. `configure(**overrides)` in code.

The project root is ``TASKLOOM_PROJECT_ROOT`` when set, else the nearest
directory at or above the start directory (default: the working directory)
that holds a ``taskloom.toml`` or a ``pyproject.toml`` with a
``[tool.taskloom]`` table, else the start directory itself.

A config file looks like this (in ``pyproject.toml`` each key sits under
``[tool.taskloom]``)::

    dirs = ["trigger"]
    database_url = "sqlite:///.taskloom/taskloom.db"
    max_duration = 3600
    machine = "small-1x"
    ttl = "1h"
    environment = "DEVELOPMENT"
    payload_limit_bytes = 3145728
    output_limit_bytes = 10485760

    [retries]
    enabled_in_dev = true
    default = { max_attempts = 3, factor = 2, min_timeout_ms = 1000 }

    [worker]
    concurrency = 100
    executors = 4
    lease_seconds = 30
    shutdown_grace_seconds = 30
    cancel_grace_seconds = 30
    poll_interval_seconds = 1

    [database]
    synchronous = "FULL"
    busy_timeout_ms = 5000

Every bad value raises `InvalidOptionError` naming where it came from.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .durations import parse_duration
from .errors import InvalidOptionError
from .machines import DEFAULT_MACHINE, resolve_machine
from .retry import Retry

__all__ = [
    "CONFIG_FILE",
    "ENVIRONMENTS",
    "ENV_VARS",
    "Config",
    "configure",
    "find_project_root",
    "get_config",
    "load_config",
    "reset_config",
    "sqlite_path",
]

CONFIG_FILE = "taskloom.toml"
"""The dedicated config file name; it wins over ``[tool.taskloom]`` in ``pyproject.toml``."""

ENVIRONMENTS = ("DEVELOPMENT", "STAGING", "PRODUCTION", "PREVIEW")
"""The environment types, as Trigger.dev names them."""

_ENVIRONMENT_ALIASES = {"DEV": "DEVELOPMENT", "PROD": "PRODUCTION"}
_SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
_PROJECT_ROOT_VAR = "TASKLOOM_PROJECT_ROOT"

ENV_VARS: dict[str, str] = {
    "TASKLOOM_DATABASE_URL": "database_url",
    "TASKLOOM_DIRS": "dirs",
    "TASKLOOM_ENVIRONMENT": "environment",
    "TASKLOOM_CONCURRENCY": "worker_concurrency",
    "TASKLOOM_SYNCHRONOUS": "sqlite_synchronous",
    "TASKLOOM_MACHINE": "machine",
    "TASKLOOM_MAX_DURATION": "max_duration",
    "TASKLOOM_TTL": "ttl",
    "TASKLOOM_ENVIRONMENT_CONCURRENCY_LIMIT": "environment_concurrency_limit",
}
"""Environment variables read by `load_config`, and the `Config` field each sets.

``TASKLOOM_PROJECT_ROOT`` is read too: it replaces the search for the project root.
"""

# Config file keys ("table.key" for nested ones) and the field each sets.
_FILE_KEYS: dict[str, str] = {
    "dirs": "dirs",
    "database_url": "database_url",
    "max_duration": "max_duration",
    "machine": "machine",
    "ttl": "ttl",
    "environment": "environment",
    "payload_limit_bytes": "payload_limit_bytes",
    "output_limit_bytes": "output_limit_bytes",
    "retries.enabled_in_dev": "retries_enabled_in_dev",
    "retries.default": "retries_default",
    "worker.concurrency": "worker_concurrency",
    "worker.executors": "executors",
    "worker.lease_seconds": "lease_seconds",
    "worker.shutdown_grace_seconds": "shutdown_grace_seconds",
    "worker.cancel_grace_seconds": "cancel_grace_seconds",
    "worker.poll_interval_seconds": "poll_interval_seconds",
    "worker.memory_check_seconds": "memory_check_seconds",
    "queues.environment_concurrency_limit": "environment_concurrency_limit",
    "database.synchronous": "sqlite_synchronous",
    "database.busy_timeout_ms": "busy_timeout_ms",
}
_FILE_TABLES = frozenset(key.partition(".")[0] for key in _FILE_KEYS if "." in key)


# --- value checks ---------------------------------------------------------------------
# Each takes the raw value and `where` (the source and key, for the message) and returns
# the normalised value. They are idempotent, so `Config.__post_init__` can re-run them.


def _fail(where: str, expected: str, value: object) -> InvalidOptionError:
    return InvalidOptionError(f"{where}: expected {expected}, got {value!r}")


def _int_at_least(minimum: int) -> Callable[[object, str], int]:
    def check(value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _fail(where, f"an integer >= {minimum}", value)
        return value

    return check


def _optional(check: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    def check_optional(value: object, where: str) -> Any:
        return None if value is None else check(value, where)

    return check_optional


def _seconds(*, positive: bool) -> Callable[[object, str], float]:
    def check(value: object, where: str) -> float:
        seconds = parse_duration(value, what=where)
        if positive and seconds <= 0:
            raise _fail(where, "a duration > 0", value)
        return seconds

    return check


def _check_max_duration(value: object, where: str) -> int:
    seconds = parse_duration(value, what=where)
    if seconds < 5 or seconds != int(seconds):
        raise _fail(where, "a whole number of seconds >= 5 (or None for no limit)", value)
    return int(seconds)


def _check_dirs(value: object, where: str) -> tuple[str, ...]:
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _fail(where, "a list of directory names", value)
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise _fail(where, "a non-empty list of non-empty directory names", value)
    return tuple(str(item) for item in items)


SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str, root: Path) -> Path | None:
    """The file of a SQLite URL: ``sqlite:///relative/path`` (against `root`) or
    ``sqlite:////absolute/path``; None for any other URL.

    >>> sqlite_path("sqlite:///.taskloom/t.db", Path("/app"))
    PosixPath('/app/.taskloom/t.db')
    """
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = Path(url.removeprefix(SQLITE_PREFIX))
    return path if path.is_absolute() else root / path


def _check_database_url(value: object, where: str) -> str:
    expected = (
        "'sqlite:///relative/path.db', 'sqlite:////absolute/path.db' "
        "or 'postgresql://user:password@host:port/database'"
    )
    if not isinstance(value, str):
        raise _fail(where, expected, value)
    if value.startswith(SQLITE_PREFIX):
        path = value.removeprefix(SQLITE_PREFIX)
        if not path or path.endswith("/"):
            raise _fail(where, expected + " with a file name", value)
        if path == ":memory:":
            raise InvalidOptionError(
                f"{where}: an in-memory SQLite database cannot be shared by callers and "
                f"workers; use a file path such as 'sqlite:///.taskloom/taskloom.db', got {value!r}"
            )
        return value
    for scheme in ("postgresql://", "postgres://"):
        if value.startswith(scheme) and len(value) > len(scheme):
            return value
    raise _fail(where, expected, value)


def _check_machine(value: object, where: str) -> str:
    return resolve_machine(value, what=where).name


def _check_ttl(value: object, where: str) -> float:
    return parse_duration(value, what=where)


def _check_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)
    return value


def _check_retry(value: object, where: str) -> Retry:
    if value is not None and not isinstance(value, Retry | Mapping):
        raise _fail(where, "a Retry(...) or a table of retry options", value)
    return Retry.from_value(value, what=where, default=Retry())


def _check_environment(value: object, where: str) -> str:
    if isinstance(value, str):
        name = value.strip().upper()
        name = _ENVIRONMENT_ALIASES.get(name, name)
        if name in ENVIRONMENTS:
            return name
    raise _fail(where, "one of " + ", ".join(ENVIRONMENTS), value)


def _check_synchronous(value: object, where: str) -> str:
    if isinstance(value, str) and value.strip().upper() in _SYNCHRONOUS_MODES:
        return value.strip().upper()
    raise _fail(where, "one of " + ", ".join(_SYNCHRONOUS_MODES), value)


def _check_project_root(value: object, where: str) -> Path:
    if isinstance(value, str) and value:
        return Path(value)
    if isinstance(value, Path):
        return value
    raise _fail(where, "a directory path", value)


_CHECKS: dict[str, Callable[[object, str], Any]] = {
    "project_root": _check_project_root,
    "dirs": _check_dirs,
    "database_url": _check_database_url,
    "max_duration": _optional(_check_max_duration),
    "machine": _check_machine,
    "ttl": _optional(_check_ttl),
    "retries_enabled_in_dev": _check_bool,
    "retries_default": _check_retry,
    "environment": _check_environment,
    "payload_limit_bytes": _int_at_least(1),
    "output_limit_bytes": _int_at_least(1),
    "sqlite_synchronous": _check_synchronous,
    "busy_timeout_ms": _int_at_least(0),
    "worker_concurrency": _int_at_least(1),
    "executors": _optional(_int_at_least(1)),
    "lease_seconds": _seconds(positive=True),
    "shutdown_grace_seconds": _seconds(positive=False),
    "cancel_grace_seconds": _seconds(positive=False),
    "poll_interval_seconds": _seconds(positive=True),
    "memory_check_seconds": _seconds(positive=True),
    "environment_concurrency_limit": _optional(_int_at_least(0)),
}


@dataclass(frozen=True, slots=True)
class Config:
    """The effective configuration of this process. Build it with `load_config` or `get_config`.

    Durations (`ttl`, `max_duration`, the ``*_seconds`` fields) are seconds; a
    `ttl` of 0 disables any TTL. `executors` None means one per CPU (decided by
    the worker). Constructing a `Config` directly validates and normalises every
    field the same way the loaders do.
    """

    project_root: Path
    dirs: tuple[str, ...] = ("trigger",)
    database_url: str = "sqlite:///.taskloom/taskloom.db"
    max_duration: int | None = None
    machine: str = DEFAULT_MACHINE
    ttl: float | None = None
    retries_enabled_in_dev: bool = True
    retries_default: Retry = field(default_factory=Retry)
    environment: str = "DEVELOPMENT"
    payload_limit_bytes: int = 3 * 1024 * 1024
    output_limit_bytes: int = 10 * 1024 * 1024
    sqlite_synchronous: str = "FULL"
    busy_timeout_ms: int = 5000
    worker_concurrency: int = 100
    executors: int | None = None
    lease_seconds: float = 30.0
    shutdown_grace_seconds: float = 30.0
    cancel_grace_seconds: float = 30.0
    poll_interval_seconds: float = 1.0
    memory_check_seconds: float = 0.1
    environment_concurrency_limit: int | None = None

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(getattr(self, name), f"Config.{name}"))

    @property
    def database_path(self) -> Path | None:
        """The SQLite file, None for PostgreSQL. ``sqlite:///rel`` is relative to `project_root`."""
        return sqlite_path(self.database_url, self.project_root)

    @property
    def is_development(self) -> bool:
        """True in the DEVELOPMENT environment (where `retries_enabled_in_dev` applies)."""
        return self.environment == "DEVELOPMENT"


_FIELD_NAMES = tuple(f.name for f in fields(Config))


# --- loading --------------------------------------------------------------------------


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) that holds taskloom's config.

    That is a ``taskloom.toml``, or a ``pyproject.toml`` with a ``[tool.taskloom]``
    table. When no directory qualifies, `start` itself is the root.
    """
    begin = (start if start is not None else Path.cwd()).resolve()
    for directory in (begin, *begin.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and _pyproject_table(pyproject) is not None:
            return directory
    return begin


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InvalidOptionError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise InvalidOptionError(f"{path}: cannot be read: {error}") from None


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    tool = _read_toml(path).get("tool")
    if not isinstance(tool, dict) or "taskloom" not in tool:
        return None
    table = tool["taskloom"]
    if not isinstance(table, dict):
        raise InvalidOptionError(f"{path}: [tool.taskloom] must be a table, got {table!r}")
    return table


def _file_settings(root: Path) -> tuple[Path, str, dict[str, Any]] | None:
    """(file, key prefix for messages, table) of the config file in `root`, if any."""
    dedicated = root / CONFIG_FILE
    if dedicated.is_file():
        return dedicated, "", _read_toml(dedicated)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = _pyproject_table(pyproject)
        if table is not None:
            return pyproject, "tool.taskloom.", table
    return None


def _flatten(path: Path, prefix: str, table: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Map field name -> (raw value, where) for one config file, rejecting unknown keys."""
    values: dict[str, tuple[Any, str]] = {}
    for key, value in table.items():
        if key in _FILE_TABLES:
            if not isinstance(value, dict):
                raise InvalidOptionError(
                    f"{path}: key '{prefix}{key}' must be a table, got {value!r}"
                )
            pairs = [(f"{key}.{sub}", sub_value) for sub, sub_value in value.items()]
        else:
            pairs = [(key, value)]
        for dotted, raw in pairs:
            name = _FILE_KEYS.get(dotted)
            if name is None:
                known = ", ".join(prefix + known for known in _FILE_KEYS)
                raise InvalidOptionError(
                    f"{path}: unknown key '{prefix}{dotted}'; known keys are {known}"
                )
            values[name] = (raw, f"{path}, key '{prefix}{dotted}'")
    return values


_INTEGER_ENV_FIELDS = frozenset({"worker_concurrency", "environment_concurrency_limit"})
"""Fields whose environment variable is read as an integer (the others parse text)."""


def _env_int(text: str) -> object:
    try:
        return int(text.strip())
    except ValueError:
        return text  # left for the field's check to reject, naming the variable


def load_config(
    start: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Compute the configuration from the files, `env` and `overrides` (see the module doc).

    `start` is where the project root search begins (default: the working
    directory); `env` defaults to `os.environ`; `overrides` are `Config` field
    names and values, as `configure` takes them. Reads files, changes nothing.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    overrides = dict(overrides or {})
    _reject_unknown_fields(overrides)
    begin = (start if start is not None else Path.cwd()).resolve()

    if "project_root" in overrides:
        where = "configure(project_root=...)"
        root = _check_project_root(overrides.pop("project_root"), where)
        root = _existing_dir(begin / root, where)
    elif environ.get(_PROJECT_ROOT_VAR):
        where = f"environment variable {_PROJECT_ROOT_VAR}"
        root = _existing_dir(begin / environ[_PROJECT_ROOT_VAR], where)
    else:
        root = find_project_root(begin)

    layers: dict[str, tuple[Any, str]] = {}
    settings = _file_settings(root)
    if settings is not None:
        layers.update(_flatten(*settings))
    for var, name in ENV_VARS.items():
        text = environ.get(var)
        if text is None or not text.strip():
            continue
        raw: object = _env_int(text) if name in _INTEGER_ENV_FIELDS else text
        layers[name] = (raw, f"environment variable {var}")
    for name, value in overrides.items():
        layers[name] = (value, f"configure({name}=...)")

    values = {name: _CHECKS[name](raw, where) for name, (raw, where) in layers.items()}
    return Config(project_root=root, **values)


def _existing_dir(path: Path, where: str) -> Path:
    resolved = path.resolve()
    if not resolved.is_dir():
        raise InvalidOptionError(f"{where}: {str(path)!r} is not an existing directory")
    return resolved


def _reject_unknown_fields(overrides: Mapping[str, object]) -> None:
    unknown = [name for name in overrides if name not in _FIELD_NAMES]
    if unknown:
        raise InvalidOptionError(
            f"configure(): unknown option(s) {', '.join(unknown)}; "
            f"known options are {', '.join(_FIELD_NAMES)}"
        )


# --- process-wide configuration -------------------------------------------------------

_lock = threading.Lock()
_overrides: dict[str, object] = {}
_cached: Config | None = None


def configure(**overrides: object) -> Config:
    """Set configuration in code, over the files and environment, for this whole process.

    Keyword names are `Config` field names; calls accumulate. Invalid values
    raise `InvalidOptionError` and change nothing. Returns the new effective config.

    >>> configure(database_url="sqlite:///jobs.db").database_url  # doctest: +SKIP
    'sqlite:///jobs.db'
    """
    global _cached  # noqa: PLW0603 - the process-wide cache
    _reject_unknown_fields(overrides)
    with _lock:
        merged = {**_overrides, **overrides}
        config = load_config(overrides=merged)
        _overrides.clear()
        _overrides.update(merged)
        _cached = config
        return config


def get_config() -> Config:
    """The effective configuration, computed once and cached until `configure` or `reset_config`.

    Environment variables and files are read at the first call; later changes to
    them are not seen until `reset_config`.
    """
    global _cached  # noqa: PLW0603 - the process-wide cache
    config = _cached
    if config is not None:
        return config
    with _lock:
        if _cached is None:
            _cached = load_config(overrides=_overrides)
        return _cached


def reset_config() -> None:
    """Forget `configure` overrides and the cached config (for tests)."""
    global _cached  # noqa: PLW0603 - the process-wide cache
    with _lock:
        _overrides.clear()
        _cached = None
