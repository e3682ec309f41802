-- Runs, attempts, events, workers, signals, leaders and the task catalog.
-- Times are integers: milliseconds since the Unix epoch.

CREATE TABLE runs (
    id                      TEXT PRIMARY KEY,
    task_id                 TEXT NOT NULL,
    queue                   TEXT NOT NULL,
    concurrency_key         TEXT NOT NULL DEFAULT '',
    status                  TEXT NOT NULL,
    payload                 BLOB,
    output                  BLOB,
    error                   BLOB,
    attempt                 INTEGER NOT NULL DEFAULT 0,
    max_attempts            INTEGER NOT NULL,
    retry                   BLOB NOT NULL,
    machine                 TEXT NOT NULL,
    max_duration            INTEGER,
    ttl_ms                  INTEGER,
    priority_ms             INTEGER NOT NULL DEFAULT 0,
    queue_ts                INTEGER NOT NULL,
    sort_key                INTEGER NOT NULL,
    available_at            INTEGER NOT NULL,
    delay_until             INTEGER,
    expires_at              INTEGER,
    idempotency_key         TEXT,
    idempotency_expires_at  INTEGER,
    tags                    BLOB,
    metadata                BLOB,
    parent_run_id           TEXT,
    root_run_id             TEXT,
    depth                   INTEGER NOT NULL DEFAULT 0,
    batch_id                TEXT,
    is_test                 INTEGER NOT NULL DEFAULT 0,
    replayed_from           TEXT,
    worker_id               TEXT,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    started_at              INTEGER,
    finished_at             INTEGER,
    isolate                 INTEGER NOT NULL DEFAULT 0
);

-- The claim walks the sub-queues (queue, concurrency key) that have ready runs, and takes
-- each one's oldest runs; limits count the runs of a sub-queue that are held by workers.
CREATE INDEX runs_ready ON runs (queue, concurrency_key, sort_key) WHERE status = 'QUEUED';
CREATE INDEX runs_active ON runs (queue, concurrency_key) WHERE status IN ('DEQUEUED', 'EXECUTING');
CREATE INDEX runs_delayed ON runs (delay_until) WHERE status = 'DELAYED';
CREATE INDEX runs_task ON runs (task_id, id);
CREATE UNIQUE INDEX runs_idempotency ON runs (task_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE attempts (
    run_id       TEXT NOT NULL,
    number       INTEGER NOT NULL,
    status       TEXT NOT NULL,
    worker_id    TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    error        BLOB,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;

CREATE TABLE run_events (
    id       INTEGER PRIMARY KEY,
    run_id   TEXT NOT NULL,
    attempt  INTEGER,
    ts       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    data     BLOB NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    concurrency   INTEGER NOT NULL,
    tasks         BLOB,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
);

CREATE TABLE run_signals (
    id          INTEGER PRIMARY KEY,
    worker_id   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX run_signals_worker ON run_signals (worker_id);

CREATE TABLE leaders (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Queues known to workers: every task's own queue and every queue declared in code.
-- `concurrency_limit` comes from code; `limit_override` and `paused` from management calls.
CREATE TABLE queues (
    name                TEXT PRIMARY KEY,
    kind                TEXT NOT NULL,
    concurrency_limit   INTEGER,
    key_total_limit     INTEGER,
    limit_override      INTEGER,
    overridden_at       INTEGER,
    paused              INTEGER NOT NULL DEFAULT 0,
    updated_at          INTEGER NOT NULL
);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    definition  BLOB NOT NULL,
    file_path   TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX runs_expiry ON runs (expires_at) WHERE status = 'QUEUED' AND expires_at IS NOT NULL;
