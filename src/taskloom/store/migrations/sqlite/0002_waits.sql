-- Waits: waitpoints (the one blocking primitive), the waits each run made by sequence
-- number with their recorded results, and batches of child runs.

-- A run that waited keeps its attempt: `suspended` says it has a recorded attempt to
-- continue, `resume_worker` which worker holds its coroutine (NULL: replay anywhere).
-- `waited` says someone waits for this run to end (a RUN waitpoint exists).
ALTER TABLE runs ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN resume_worker TEXT;
ALTER TABLE runs ADD COLUMN waited INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_children ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_resume_worker ON runs (resume_worker) WHERE resume_worker IS NOT NULL;

CREATE TABLE waitpoints (
    id                      TEXT PRIMARY KEY,
    kind                    TEXT NOT NULL,
    status                  TEXT NOT NULL,
    resume_at               INTEGER,
    target_id               TEXT,
    idempotency_key         TEXT,
    idempotency_expires_at  INTEGER,
    tags                    TEXT,
    output                  BLOB,
    is_error                INTEGER NOT NULL DEFAULT 0,
    created_at              INTEGER NOT NULL,
    completed_at            INTEGER
);
CREATE INDEX waitpoints_due ON waitpoints (resume_at)
    WHERE status = 'WAITING' AND resume_at IS NOT NULL;
CREATE INDEX waitpoints_target ON waitpoints (target_id)
    WHERE status = 'WAITING' AND target_id IS NOT NULL;
CREATE UNIQUE INDEX waitpoints_idempotency ON waitpoints (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE run_waits (
    run_id        TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    waitpoint_id  TEXT,
    status        TEXT NOT NULL,
    result        BLOB,
    delivered     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    PRIMARY KEY (run_id, attempt, seq)
) WITHOUT ROWID;
CREATE INDEX run_waits_waitpoint ON run_waits (waitpoint_id) WHERE status = 'PENDING';

-- A batch's items in order; an item may be an existing run (its idempotency key matched),
-- so a run can belong to several batches. `completed_count` counts final items.
CREATE TABLE batches (
    id               TEXT PRIMARY KEY,
    parent_run_id    TEXT,
    run_count        INTEGER NOT NULL,
    completed_count  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE TABLE batch_items (
    batch_id  TEXT NOT NULL,
    position  INTEGER NOT NULL,
    run_id    TEXT NOT NULL,
    PRIMARY KEY (batch_id, position)
) WITHOUT ROWID;
CREATE INDEX batch_items_run ON batch_items (run_id);
