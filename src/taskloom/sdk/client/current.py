"""The client this process's public calls go through, built from the configuration.

`configure()` replaces the configuration, and with it the client, for the whole process;
`reset()` closes it. Today the client is always a `LocalClient` over an engine on
`database_url`; with `TASKLOOM_API_URL` an HTTP client will take its place here, and no
other sdk module changes.
"""

from __future__ import annotations

import threading

from ...config import Config, get_config
from ...config import configure as _configure_config
from ...config import reset_config as _reset_config
from ...engine.factory import open_engine
from ...runtime import registry
from ...runtime.queues import is_declared
from .local_client import LocalClient
from .protocol import Client

_lock = threading.Lock()
_client: Client | None = None
_built_for: Config | None = None  # the configuration _client was built for
_installed = False  # _client came from use_client(): kept whatever the configuration


def client_for(config: Config) -> Client:
    """A new client for a configuration (for the local client: its own engine and store
    connection, which sees the tasks and queues defined in this process)."""
    engine = open_engine(config, local_specs=registry.spec_lookup(config), local_queues=is_declared)
    return LocalClient(engine)


def current_client() -> Client:
    """The client for the current configuration (rebuilt after `configure`), or the one
    given to `use_client`."""
    global _client, _built_for
    config = get_config()
    client = _client
    if client is not None and (_installed or _built_for is config):
        return client
    with _lock:
        if _client is None or not (_installed or _built_for is config):
            if _client is not None:
                _client.close()
            _client, _built_for = client_for(config), config
        return _client


def use_client(client: Client | None) -> None:
    """Send this process's public calls to `client` (a stand-in in tests, or a client of
    your own) until `reset()`; None goes back to the one the configuration builds. The
    caller keeps ownership of `client`: taskloom never closes it.

    >>> use_client(RecordingClient())  # doctest: +SKIP
    """
    global _client, _built_for, _installed
    with _lock:
        if _client is not None and not _installed:
            _client.close()
        _client, _built_for, _installed = client, None, client is not None


def configure(**options: object) -> Config:
    """Configure taskloom in code, over `taskloom.toml`, `[tool.taskloom]` and `TASKLOOM_*`.

    >>> import taskloom
    >>> taskloom.configure(database_url="sqlite:///.taskloom/app.db")  # doctest: +SKIP
    """
    return _configure_config(**options)


def reset() -> None:
    """Forget configuration overrides and the client, closing it unless it came from
    `use_client` (for tests)."""
    global _client, _built_for, _installed
    with _lock:
        if _client is not None and not _installed:
            _client.close()
        _client, _built_for, _installed = None, None, False
    _reset_config()
