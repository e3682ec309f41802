"""Build an engine (and its store) from a configuration."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config
from ..store import open_store
from .engine import Engine, SpecLookup


def open_engine(
    config: Config,
    *,
    local_specs: SpecLookup | None = None,
    local_queues: Callable[[str], bool] | None = None,
) -> Engine:
    """A new engine on the store `config.database_url` names.

    `local_specs` and `local_queues` let the engine see the tasks and queues defined in
    this process (the runtime's registries) before it asks the store's catalog.
    """
    store = open_store(
        config.database_url,
        root=config.project_root,
        synchronous=config.sqlite_synchronous,
        busy_timeout_ms=config.busy_timeout_ms,
    )
    return Engine(store, config, local_specs=local_specs, local_queues=local_queues)
