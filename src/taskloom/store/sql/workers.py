"""Statements on workers (their leases), leaders (named leaderships) and the task catalog
(task definitions workers announce, so a process can trigger a task it never imported)."""

from __future__ import annotations

from ..records import LeaderTerm, TaskDefinitionRecord, WorkerInfo
from .base import SessionBase
from .rows import RowReader, columns

REGISTER_WORKER = """
INSERT INTO workers (id, hostname, pid, concurrency, tasks, status, started_at, heartbeat_at)
VALUES (:id, :hostname, :pid, :concurrency, :tasks, 'RUNNING', :started_at, :now)
"""
HEARTBEAT = """
UPDATE workers SET heartbeat_at = :now WHERE id = :id AND status = 'RUNNING'
"""
STOP_WORKER = "UPDATE workers SET status = 'STOPPED', stopped_at = :now WHERE id = :id"
REAP_WORKERS = """
UPDATE workers SET status = 'DEAD', stopped_at = :now
WHERE status = 'RUNNING' AND heartbeat_at < :before
RETURNING id
"""

ELECT_LEADER = """
INSERT INTO leaders (name, holder, expires_at) VALUES (:name, :holder, :expires_at)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leaders.holder = excluded.holder OR leaders.expires_at < :now
"""
SELECT_LEADER = "SELECT holder FROM leaders WHERE name = :name"
RESIGN_LEADER = "DELETE FROM leaders WHERE name = :name AND holder = :holder"

UPSERT_TASK = """
INSERT INTO tasks (id, definition, file_path, updated_at)
VALUES (:id, :definition, :file_path, :updated_at)
ON CONFLICT (id) DO UPDATE SET
    definition = excluded.definition, file_path = excluded.file_path,
    updated_at = excluded.updated_at
"""
SELECT_TASK = f"SELECT {columns(TaskDefinitionRecord)} FROM tasks WHERE id = :id"
SELECT_TASKS = f"SELECT {columns(TaskDefinitionRecord)} FROM tasks ORDER BY id"

TASKS = RowReader(TaskDefinitionRecord)


class WorkerStatements(SessionBase):
    """Workers, leaders and the task catalog."""

    # -- workers ----------------------------------------------------------------------
    def worker_register(self, worker: WorkerInfo, now: int) -> None:
        """Record a live worker; its lease starts at `now`."""
        self.run(
            REGISTER_WORKER,
            {
                "id": worker.id,
                "hostname": worker.hostname,
                "pid": worker.pid,
                "concurrency": worker.concurrency,
                "tasks": ",".join(worker.tasks).encode(),
                "started_at": worker.started_at,
                "now": now,
            },
        )

    def worker_heartbeat(self, worker_id: str, now: int) -> bool:
        """Renew a worker's lease; False when it is not RUNNING (stopped, or reaped)."""
        return self.run(HEARTBEAT, {"id": worker_id, "now": now}).rowcount == 1

    def worker_stop(self, worker_id: str, now: int) -> None:
        """Mark a worker stopped."""
        self.run(STOP_WORKER, {"id": worker_id, "now": now})

    def workers_reap(self, now: int, lease_ms: int) -> list[str]:
        """Mark workers without a heartbeat for `lease_ms` DEAD; return their ids."""
        return self.column(REAP_WORKERS, {"now": now, "before": now - lease_ms})

    # -- leaders ----------------------------------------------------------------------
    def leader_elect(self, term: LeaderTerm) -> bool:
        """Take or keep a named leadership until `now + ttl_ms`; True when `holder` leads."""
        self.run(
            ELECT_LEADER,
            {
                "name": term.name,
                "holder": term.holder,
                "expires_at": term.now + term.ttl_ms,
                "now": term.now,
            },
        )
        return bool(self.scalar(SELECT_LEADER, {"name": term.name}) == term.holder)

    def leader_resign(self, name: str, holder: str) -> None:
        """Give up a leadership held by `holder`."""
        self.run(RESIGN_LEADER, {"name": name, "holder": holder})

    # -- task catalog -----------------------------------------------------------------
    def task_catalog_upsert(self, tasks: list[TaskDefinitionRecord]) -> None:
        """Record task definitions announced by a worker."""
        self.run_many(
            UPSERT_TASK,
            [
                {
                    "id": t.id,
                    "definition": t.definition,
                    "file_path": t.file_path,
                    "updated_at": t.updated_at,
                }
                for t in tasks
            ],
        )

    def task_catalog_get(self, task_id: str) -> TaskDefinitionRecord | None:
        """A task definition announced by some worker."""
        return TASKS.one(self.run(SELECT_TASK, {"id": task_id}))

    def task_catalog_list(self) -> list[TaskDefinitionRecord]:
        """Every announced task definition."""
        return TASKS.all(self.run(SELECT_TASKS))
