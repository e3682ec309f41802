"""Tests for taskloom.engine.wake: real Unix datagram sockets in a temporary directory."""

from __future__ import annotations

import select
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.engine.wake import (
    DELAYED,
    RUNS_READY,
    SIGNAL,
    WakeListener,
    WakeNotifier,
    wake_directory,
)

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")


@pytest.fixture
def directory() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes, so not pytest's (long) tmp_path.
    short = "/tmp" if Path("/tmp").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="tlw-", dir=short) as name:
        yield Path(name) / "wake"


@pytest.fixture
def listeners(directory: Path) -> Iterator[list[WakeListener]]:
    opened: list[WakeListener] = []
    yield opened
    for listener in opened:
        listener.close()


@pytest.fixture
def notifier(directory: Path) -> Iterator[WakeNotifier]:
    notifier = WakeNotifier(directory)
    yield notifier
    # WakeNotifier has no close(); its socket would otherwise be a ResourceWarning.
    if notifier._socket is not None:
        notifier._socket.close()


def receive(listener: WakeListener, timeout: float = 5.0) -> set[bytes]:
    """Wait (on the socket, not a sleep) until a wake-up arrives; return what is pending."""
    ready, _, _ = select.select([listener.socket], [], [], timeout)
    assert ready, "no wake-up arrived"
    return listener.drain()


def test_a_notify_reaches_every_listener(
    notifier: WakeNotifier, directory: Path, listeners: list[WakeListener]
) -> None:
    listeners += [WakeListener(directory, "w1"), WakeListener(directory, "w2")]

    notifier.notify()

    assert [receive(listener) for listener in listeners] == [{RUNS_READY}, {RUNS_READY}]


def test_messages_are_drained_as_a_set(
    notifier: WakeNotifier, directory: Path, listeners: list[WakeListener]
) -> None:
    listener = WakeListener(directory, "w1")
    listeners.append(listener)
    for message in (RUNS_READY, SIGNAL, RUNS_READY, DELAYED):
        notifier.notify(message)

    seen = receive(listener)
    while len(seen) < 3 and select.select([listener.socket], [], [], 5)[0]:
        seen |= listener.drain()
    assert seen == {RUNS_READY, SIGNAL, DELAYED}
    assert listener.drain() == set()  # nothing left


def test_a_listener_that_joins_later_is_reached(
    notifier: WakeNotifier, directory: Path, listeners: list[WakeListener]
) -> None:
    first = WakeListener(directory, "w1")
    listeners.append(first)
    notifier.notify()
    assert receive(first) == {RUNS_READY}

    second = WakeListener(directory, "w2")
    listeners.append(second)
    # The notifier caches the directory listing by mtime; a new socket file changes it.
    notifier.notify(SIGNAL)
    assert receive(second) == {SIGNAL}


def test_a_stale_socket_file_is_removed(
    notifier: WakeNotifier, directory: Path, listeners: list[WakeListener]
) -> None:
    live = WakeListener(directory, "live")
    listeners.append(live)
    # A worker that died without cleaning up leaves its socket file behind.
    stale_path = directory / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale_path))
    dead.close()
    assert stale_path.exists()

    notifier.notify()

    assert not stale_path.exists()
    assert receive(live) == {RUNS_READY}


def test_a_listener_replaces_a_stale_file_with_its_own_name(
    notifier: WakeNotifier, directory: Path, listeners: list[WakeListener]
) -> None:
    directory.mkdir(parents=True)
    (directory / "w1.sock").write_bytes(b"left over")
    listener = WakeListener(directory, "w1")
    listeners.append(listener)
    notifier.notify()
    assert receive(listener) == {RUNS_READY}


def test_close_removes_the_socket_file(notifier: WakeNotifier, directory: Path) -> None:
    listener = WakeListener(directory, "w1")
    assert listener.path.exists()
    listener.close()
    assert not listener.path.exists()
    notifier.notify()  # nobody is listening: fine


def test_no_listeners_is_fine(notifier: WakeNotifier, directory: Path) -> None:
    notifier.notify()  # the directory does not even exist
    directory.mkdir(parents=True)
    (directory / "notes.txt").write_text("not a socket")
    notifier.notify()
    assert (directory / "notes.txt").exists()


def test_the_wake_directory_is_per_database_and_short() -> None:
    a = wake_directory("sqlite:////srv/app/a.db")
    b = wake_directory("sqlite:////srv/app/b.db")
    assert a != b
    assert a == wake_directory("sqlite:////srv/app/a.db")
    assert len(str(a / "w_01JD8X3V4TQ6M2K5B7N9P0R1S2.sock")) < 100
