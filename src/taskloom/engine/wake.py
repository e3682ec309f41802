"""Cross-process wake-ups on one machine: a trigger wakes idle workers within a millisecond.

Each worker binds a Unix datagram socket in a directory derived from the database
path; a producer sends one byte to every socket there after its commit. The listing is
cached and re-read only when the directory changes. A wake-up is a hint: workers still
poll at `poll_interval_seconds` in case one is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
from pathlib import Path

RUNS_READY = b"r"
SIGNAL = b"s"
DELAYED = b"d"


def wake_directory(database_key: str) -> Path:
    """The socket directory for a database (short: Unix socket paths are limited)."""
    digest = hashlib.sha256(database_key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"taskloom-{os.getuid()}-{digest}"


class WakeNotifier:
    """Sends wake-ups to every worker listening on a database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._mtime = -1
        self._targets: list[str] = []
        self._socket: socket.socket | None = None
        self._pid = 0

    def _refresh(self) -> list[str]:
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            self._targets = []
            self._mtime = -1
            return self._targets
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            self._targets = [str(self.directory / n) for n in names if n.endswith(".sock")]
        return self._targets

    def close(self) -> None:
        """Close the sending socket (it is reopened if used again)."""
        with self._lock:
            if self._socket is not None and self._pid == os.getpid():
                self._socket.close()
            self._socket = None

    def notify(self, message: bytes = RUNS_READY) -> None:
        """Wake every listening worker. Never raises: a lost wake-up only costs latency."""
        with self._lock:
            targets = self._refresh()
            if not targets:
                return
            if self._socket is None or self._pid != os.getpid():
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
                self._pid = os.getpid()
            for target in targets:
                try:
                    self._socket.sendto(message, target)
                except (BlockingIOError, InterruptedError):
                    pass  # its buffer is full: it has wake-ups pending already
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):
                        os.unlink(target)  # a worker that died without cleaning up
                    self._mtime = -1
                except OSError:
                    self._mtime = -1


class WakeListener:
    """The receiving end, owned by one worker supervisor."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.path = directory / f"{name}.sock"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.socket.bind(str(self.path))

    def drain(self) -> set[bytes]:
        """Read every pending wake-up; return the distinct messages."""
        seen: set[bytes] = set()
        while True:
            try:
                seen.add(self.socket.recv(64))
            except (BlockingIOError, InterruptedError):
                return seen

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.socket.close()
