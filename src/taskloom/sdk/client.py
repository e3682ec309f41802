"""The engine this process talks to, built from the effective configuration.

`configure()` replaces the configuration, and with it the engine, for the whole process.
"""

from __future__ import annotations

import threading

from ..config import Config, get_config
from ..config import configure as _configure_config
from ..config import reset_config as _reset_config
from ..engine.engine import Engine
from ..engine.factory import open_engine
from ..engine.spec import TaskSpec
from ..runtime import registry
from ..runtime.queues import is_declared

_lock = threading.Lock()
_engine: Engine | None = None


def _local_spec(task_id: str) -> TaskSpec | None:
    task = registry.get(task_id)
    return None if task is None else task.spec_for(get_config())


def engine_for(config: Config) -> Engine:
    """A new engine (and store connection) for a configuration."""
    return open_engine(config, local_specs=_local_spec, local_queues=is_declared)


def current_engine() -> Engine:
    """The engine for the current configuration (rebuilt after `configure`)."""
    global _engine  # noqa: PLW0603 - one engine per process
    config = get_config()
    engine = _engine
    if engine is not None and engine.config is config:
        return engine
    with _lock:
        if _engine is None or _engine.config is not config:
            if _engine is not None:
                _engine.close()
            _engine = engine_for(config)
        return _engine


def configure(**options: object) -> Config:
    """Configure taskloom in code, over `taskloom.toml`, `[tool.taskloom]` and `TASKLOOM_*`.

    >>> import taskloom
    >>> taskloom.configure(database_url="sqlite:///.taskloom/app.db")  # doctest: +SKIP
    """
    return _configure_config(**options)


def reset() -> None:
    """Forget configuration overrides and close the engine (for tests)."""
    global _engine  # noqa: PLW0603 - one engine per process
    with _lock:
        if _engine is not None:
            _engine.close()
        _engine = None
    _reset_config()
