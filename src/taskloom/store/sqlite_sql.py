"""SQL of the SQLite store, as named constants. Nothing here is built from input."""

RUN_COLUMNS = (
    "id, task_id, queue, concurrency_key, status, payload, output, error, attempt, "
    "max_attempts, retry, machine, max_duration, ttl_ms, priority_ms, queue_ts, available_at, "
    "delay_until, expires_at, idempotency_key, idempotency_expires_at, tags, metadata, "
    "parent_run_id, root_run_id, depth, batch_id, is_test, replayed_from, worker_id, "
    "created_at, updated_at, started_at, finished_at, isolate"
)

INSERT_RUN = """
INSERT INTO runs (
    id, task_id, queue, concurrency_key, status, payload, max_attempts, retry, machine,
    max_duration, ttl_ms, priority_ms, queue_ts, sort_key, available_at, delay_until,
    expires_at, idempotency_key, idempotency_expires_at, tags, metadata, parent_run_id,
    root_run_id, depth, batch_id, is_test, replayed_from, created_at, updated_at
) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
"""

SELECT_IDEMPOTENT = """
SELECT id, idempotency_expires_at FROM runs WHERE task_id = ? AND idempotency_key = ?
"""

CLEAR_IDEMPOTENCY = "UPDATE runs SET idempotency_key = NULL WHERE id = ?"
RESET_IDEMPOTENCY = """
UPDATE runs SET idempotency_key = NULL WHERE task_id = ? AND idempotency_key = ?
"""

SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"

# tags are stored as TEXT (for json_each) but cross the seam as bytes, like every JSON value.
HEARTBEAT = "UPDATE workers SET heartbeat_at = ? WHERE id = ? AND status = 'RUNNING'"

START_ATTEMPT = """
UPDATE runs SET status = 'EXECUTING', started_at = COALESCE(started_at, ?), updated_at = ?
WHERE id = ? AND attempt = ? AND worker_id = ? AND status = 'DEQUEUED'
"""

SELECT_GUARDS_PREFIX = "SELECT id, attempt, worker_id, status, waited FROM runs WHERE id IN ("

FINISH_ATTEMPT = """
UPDATE runs SET
    status = ?,
    output = ?,
    error = ?,
    available_at = COALESCE(?, available_at),
    finished_at = ?,
    started_at = COALESCE(started_at, ?),
    worker_id = CASE WHEN ? = 'QUEUED' THEN NULL ELSE worker_id END,
    attempt = attempt - ? * (1 - suspended),
    idempotency_key = CASE WHEN ? THEN NULL ELSE idempotency_key END,
    machine = COALESCE(?, machine),
    suspended = CASE WHEN ? THEN suspended ELSE 0 END,
    resume_worker = NULL,
    updated_at = ?
WHERE id = ? AND attempt = ? AND worker_id = ? AND status IN ('DEQUEUED', 'EXECUTING')
"""

INSERT_ATTEMPT = """
INSERT OR REPLACE INTO attempts (run_id, number, status, worker_id, started_at, finished_at, error)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

INSERT_EVENT = "INSERT INTO run_events (run_id, attempt, ts, kind, data) VALUES (?, ?, ?, ?, ?)"

SELECT_SIGNALS = "SELECT id, run_id, kind, reason FROM run_signals WHERE worker_id = ? ORDER BY id"
DELETE_SIGNALS = "DELETE FROM run_signals WHERE worker_id = ? AND id <= ?"
INSERT_SIGNAL = """
INSERT INTO run_signals (worker_id, run_id, kind, reason, created_at) VALUES (?, ?, ?, ?, ?)
"""

SELECT_STATUS = "SELECT status, worker_id, resume_worker FROM runs WHERE id = ?"
SELECT_LIVE_CHILDREN = """
SELECT id FROM runs WHERE parent_run_id = ? AND status NOT IN
    ('COMPLETED', 'CANCELED', 'FAILED', 'CRASHED', 'SYSTEM_FAILURE', 'EXPIRED', 'TIMED_OUT')
"""
UNPARK_DEAD = """
UPDATE runs SET resume_worker = NULL WHERE resume_worker IN (
    SELECT id FROM workers WHERE status != 'RUNNING'
)
"""
UNPARK_RUN = "UPDATE runs SET resume_worker = NULL WHERE id = ? AND resume_worker = ?"

CANCEL_RUN = """
UPDATE runs SET status = 'CANCELED', finished_at = ?, updated_at = ?, error = ?
WHERE id = ? AND status = ?
"""

RESCHEDULE_RUN = """
UPDATE runs SET delay_until = ?, available_at = ?, queue_ts = ?, sort_key = ? - priority_ms,
    updated_at = ?
WHERE id = ? AND status = 'DELAYED'
"""

PROMOTE_DELAYED = """
UPDATE runs SET
    status = 'QUEUED',
    queue_ts = delay_until,
    sort_key = delay_until - priority_ms,
    available_at = delay_until,
    expires_at = CASE WHEN ttl_ms IS NOT NULL AND ttl_ms > 0 THEN ? + ttl_ms END,
    updated_at = ?
WHERE id IN (
    SELECT id FROM runs WHERE status = 'DELAYED' AND delay_until <= ? ORDER BY delay_until LIMIT ?
)
"""

EXPIRE_RUNS = """
UPDATE runs SET status = 'EXPIRED', finished_at = ?, updated_at = ?, idempotency_key = NULL
WHERE id IN (
    SELECT id FROM runs
    WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= ?
    LIMIT ?
)
RETURNING id
"""

NEXT_DELAYED = "SELECT MIN(delay_until) FROM runs WHERE status = 'DELAYED'"
NEXT_EXPIRY = "SELECT MIN(expires_at) FROM runs WHERE status = 'QUEUED' AND expires_at IS NOT NULL"

RELEASE_RUN = """
UPDATE runs SET status = 'QUEUED', worker_id = NULL, attempt = attempt - 1 + suspended,
    resume_worker = NULL, updated_at = ?, isolate = MAX(isolate, ?)
WHERE id = ? AND worker_id = ? AND status IN ('DEQUEUED', 'EXECUTING')
"""

REAP_WORKERS = """
UPDATE workers SET status = 'DEAD', stopped_at = ?
WHERE status = 'RUNNING' AND heartbeat_at < ?
RETURNING id
"""

SELECT_LAPSED = """
SELECT r.id, r.attempt, r.worker_id, r.task_id, r.max_attempts, r.retry, r.started_at
FROM runs AS r LEFT JOIN workers AS w ON w.id = r.worker_id
WHERE r.status IN ('DEQUEUED', 'EXECUTING')
  AND (w.id IS NULL OR w.status != 'RUNNING' OR w.heartbeat_at < ?)
LIMIT ?
"""

REGISTER_WORKER = """
INSERT INTO workers (id, hostname, pid, concurrency, tasks, status, started_at, heartbeat_at)
VALUES (?, ?, ?, ?, ?, 'RUNNING', ?, ?)
"""

STOP_WORKER = "UPDATE workers SET status = 'STOPPED', stopped_at = ? WHERE id = ?"

ELECT_LEADER = """
INSERT INTO leaders (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leaders.holder = excluded.holder OR leaders.expires_at < ?
"""

RESIGN_LEADER = "DELETE FROM leaders WHERE name = ? AND holder = ?"

UPSERT_TASK = """
INSERT INTO tasks (id, definition, file_path, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    definition = excluded.definition, file_path = excluded.file_path,
    updated_at = excluded.updated_at
"""

SELECT_TASK = "SELECT id, definition, file_path, updated_at FROM tasks WHERE id = ?"
SELECT_TASKS = "SELECT id, definition, file_path, updated_at FROM tasks ORDER BY id"

SELECT_ATTEMPTS = """
SELECT run_id, number, status, worker_id, started_at, finished_at, error
FROM attempts WHERE run_id = ? ORDER BY number
"""

SELECT_EVENTS = """
SELECT id, run_id, attempt, ts, kind, data FROM run_events
WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?
"""

# Fragments for run_list; combined in a fixed order, values always bound as parameters.
LIST_BASE = f"SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1"
LIST_TAG = " AND EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ?)"
LIST_SINCE = " AND created_at >= ?"
LIST_BEFORE = " AND id < ?"
LIST_ORDER = " ORDER BY id DESC LIMIT ?"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL
)
"""
SELECT_SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
INSERT_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"

DECLARE_QUEUE = """
INSERT INTO queues (name, kind, concurrency_limit, key_total_limit, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    kind = excluded.kind, concurrency_limit = excluded.concurrency_limit,
    key_total_limit = excluded.key_total_limit, updated_at = excluded.updated_at
"""

QUEUE_COLUMNS = (
    "name, kind, concurrency_limit, key_total_limit, limit_override, overridden_at, paused, "
    "updated_at"
)
SELECT_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY name"
SELECT_QUEUE = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?"
COUNT_RUNNING = """
SELECT queue, COUNT(*) FROM runs WHERE status IN ('DEQUEUED', 'EXECUTING') GROUP BY queue
"""
COUNT_QUEUED = "SELECT queue, COUNT(*) FROM runs WHERE status = 'QUEUED' GROUP BY queue"
COUNT_RUNNING_ONE = (
    "SELECT COUNT(*) FROM runs WHERE status IN ('DEQUEUED', 'EXECUTING') AND queue = ?"
)
COUNT_QUEUED_ONE = "SELECT COUNT(*) FROM runs WHERE status = 'QUEUED' AND queue = ?"
PAUSE_QUEUE = "UPDATE queues SET paused = ?, updated_at = ? WHERE name = ?"
OVERRIDE_QUEUE_LIMIT = """
UPDATE queues SET limit_override = ?, overridden_at = ?, updated_at = ? WHERE name = ?
"""

SET_TAGS = "UPDATE runs SET tags = ? WHERE id = ?"
SELECT_METADATA = "SELECT metadata FROM runs WHERE id = ?"
SET_METADATA = "UPDATE runs SET metadata = ? WHERE id = ?"
