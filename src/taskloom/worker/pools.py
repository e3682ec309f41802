"""Executor processes grouped by machine preset, with their CPU and memory limits.

Each machine preset gets its own executors: the worker's default machine has a warm pool
from the start, other presets get one executor when their first run arrives. A run marked
`isolate` (it shared an executor that crashed, and which attempt crashed it is unknown)
runs alone in an isolation executor, so a second crash is charged to the right run.

Limits: CPU by affinity (whole CPUs: a preset of 0.25-1 vCPU gets one CPU); memory by a
watchdog that samples each executor's resident memory every `memory_check_seconds` and
kills an executor over its preset's memory (the attempt fails as out of memory). A preset
larger than this host is clamped to the host, with one warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config
from ..machines import MACHINE_PRESETS, MachinePreset
from .process import ExecutorFailure, ExecutorProcess, spawn_executor

log = logging.getLogger("taskloom.internal.worker")

PoolKey = tuple[str, bool]  # (machine preset, isolated)


@dataclass(frozen=True, slots=True)
class Limits:
    """What an executor of a preset may use on this host."""

    preset: MachinePreset
    cpus: int | None  # None: no affinity limit
    memory_bytes: int | None  # None: no watchdog limit


def host_memory_bytes() -> int:
    """Physical memory of this host."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 62


def host_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return None


class ExecutorPools:
    """Starts, picks, watches and retires executor processes."""

    def __init__(
        self,
        config: Config,
        default_count: int,
        on_spawned: Callable[[ExecutorProcess], None],
        on_memory_exceeded: Callable[[ExecutorProcess, int, int], None],
        on_spawn_failed: Callable[[PoolKey], None] = lambda key: None,
    ) -> None:
        self.config = config
        self.default_count = default_count
        self.on_spawned = on_spawned
        self.on_memory_exceeded = on_memory_exceeded
        self.on_spawn_failed = on_spawn_failed
        self.executors: list[ExecutorProcess] = []
        self._spawning: dict[PoolKey, asyncio.Task[ExecutorProcess | None]] = {}
        self._warned: set[str] = set()
        self._next_index = 0
        self._host_cpus = host_cpus()
        self._host_memory = host_memory_bytes()

    # -- limits ---------------------------------------------------------------------
    def limits(self, machine: str) -> Limits:
        """The CPU and memory an executor of `machine` gets here (clamped to the host)."""
        preset = MACHINE_PRESETS.get(machine) or MACHINE_PRESETS[self.config.machine]
        memory = round(preset.memory_gb * 2**30)
        if (
            preset.cpu > self._host_cpus or memory > self._host_memory
        ) and preset.name not in self._warned:
            self._warned.add(preset.name)
            log.warning(
                "machine preset %s (%s vCPU, %s GB) is larger than this host (%d CPUs, "
                "%.1f GB): its runs get the whole host",
                preset.name,
                preset.cpu,
                preset.memory_gb,
                self._host_cpus,
                self._host_memory / 2**30,
            )
        cpus = max(1, math.ceil(preset.cpu))
        return Limits(
            preset,
            None if cpus >= self._host_cpus else cpus,
            None if memory >= self._host_memory else memory,
        )

    def _cpu_set(self, index: int, count: int) -> list[int] | None:
        if not hasattr(os, "sched_getaffinity"):
            return None  # no affinity on this OS (macOS): CPU is not limited
        available = sorted(os.sched_getaffinity(0))
        start = (index * count) % len(available)
        return [available[(start + i) % len(available)] for i in range(count)]

    # -- starting -------------------------------------------------------------------
    async def start(self) -> ExecutorFailure | None:
        """Start the default machine's pool; the first failure (import error...) if any."""
        spawned = await asyncio.gather(
            *(self._spawn(self.config.machine, False) for _ in range(self.default_count))
        )
        failures = await asyncio.gather(*(e.wait_ready() for e in spawned))
        self.executors.extend(spawned)
        return next((f for f in failures if f is not None), None)

    async def _spawn(self, machine: str, isolated: bool) -> ExecutorProcess:
        index = self._next_index
        self._next_index += 1
        limits = self.limits(machine)
        cpus = None if limits.cpus is None else self._cpu_set(index, limits.cpus)
        executor = await spawn_executor(index, self.config, machine=machine, cpus=cpus)
        executor.isolated = isolated
        executor.memory_limit = limits.memory_bytes
        return executor

    async def _spawn_ready(self, key: PoolKey) -> ExecutorProcess | None:
        executor = await self._spawn(*key)
        failure = await executor.wait_ready()
        if failure is not None:
            log.error("an executor for machine %s failed to start: %s", key[0], failure.details)
            await executor.stop()
            self.on_spawn_failed(key)
            return None
        self.executors.append(executor)
        # Done spawning before runs are handed out: a run that still finds no executor
        # (an isolated run needs one to itself) must start another spawn, not wait on
        # this one, which is over.
        if self._spawning.get(key) is asyncio.current_task():
            del self._spawning[key]
        self.on_spawned(executor)
        return executor

    def replace(self, executor: ExecutorProcess) -> None:
        """Forget a dead executor; start another for the default pool."""
        with contextlib.suppress(ValueError):
            self.executors.remove(executor)
        if executor.machine == self.config.machine and not executor.isolated:
            self.ensure((executor.machine, False))

    def ensure(self, key: PoolKey) -> asyncio.Task[ExecutorProcess | None]:
        """Start an executor for `key` unless one is already starting."""
        task = self._spawning.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._spawn_ready(key))
            self._spawning[key] = task
        return task

    # -- picking --------------------------------------------------------------------
    def pick(self, machine: str, isolate: bool) -> ExecutorProcess | None:
        """A live executor for a run: least loaded of its machine, or a free isolated one."""
        best: ExecutorProcess | None = None
        for executor in self.executors:
            if executor.retiring or executor.machine != machine or executor.isolated != isolate:
                continue
            if isolate:
                if not executor.in_flight:
                    return executor
                continue
            if best is None or len(executor.in_flight) < len(best.in_flight):
                best = executor
        return best

    def any_available(self) -> bool:
        """True when some executor can take work now."""
        return any(not e.retiring for e in self.executors)

    # -- memory ---------------------------------------------------------------------
    async def watch_memory(self) -> None:
        """Kill executors over their machine's memory (runs until cancelled)."""
        while True:
            await asyncio.sleep(self.config.memory_check_seconds)
            for executor in list(self.executors):
                limit = executor.memory_limit
                if limit is None or executor.retiring or not executor.in_flight:
                    continue
                used = rss_bytes(executor.pid)
                if used is not None and used > limit:
                    executor.retiring = True
                    executor.kill()
                    self.on_memory_exceeded(executor, used, limit)

    async def stop_all(self) -> None:
        """Stop every executor (and any still starting)."""
        for task in self._spawning.values():
            task.cancel()
        await asyncio.gather(*(e.stop() for e in self.executors), return_exceptions=True)
