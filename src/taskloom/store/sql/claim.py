"""The claim: pick ready runs fairly and within every limit, inside the caller's write
transaction, so limits hold with any number of workers.

Runs wait in sub-queues: (queue, concurrency key), the key '' when there is none. A
queue's limit applies to each of its sub-queues (a concurrency key gets its own copy of
the limit); an optional `key_total_limit` caps a queue's sub-queues together, and the
environment limit caps everything. Only DEQUEUED and EXECUTING runs count.

Fairness: each claim visits the sub-queues that have ready runs in key order, starting
after the last sub-queue the worker's previous claim served (round robin), gives each at
most an equal share of the batch, and hands candidates out in rounds: every visited
sub-queue's first run, in visiting order, before any sub-queue's second. So a sub-queue
with 10,000 ready runs can take neither the batch nor a queue's total cap across keys
from one with a single run. Within a sub-queue runs go oldest first (queue timestamp
minus priority).

How the walk finds the next sub-queues with ready runs is the dialect's
(`ClaimSession.claim_pairs_after`); the rest is the same on every database.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from ..records import ClaimedRun, ClaimRequest
from .base import Cursor, Params
from .rows import RowReader, columns

SELECT_QUEUE_SETTINGS = """
SELECT name, COALESCE(limit_override, concurrency_limit), key_total_limit, paused FROM queues
WHERE paused = 1 OR concurrency_limit IS NOT NULL OR limit_override IS NOT NULL
    OR key_total_limit IS NOT NULL
"""

SELECT_ACTIVE = """
SELECT queue, concurrency_key, COUNT(*) FROM runs
WHERE status IN ('DEQUEUED', 'EXECUTING')
GROUP BY queue, concurrency_key
"""

SELECT_PAIRS_AFTER = """
SELECT DISTINCT queue, concurrency_key FROM runs
WHERE status = 'QUEUED' AND (queue > ? OR (queue = ? AND concurrency_key > ?))
ORDER BY queue, concurrency_key
LIMIT ?
"""

SELECT_HEADS = """
SELECT sort_key, id FROM runs
WHERE status = 'QUEUED' AND queue = ? AND concurrency_key = ? AND available_at <= ?
    AND (expires_at IS NULL OR expires_at > ?) AND (resume_worker IS NULL OR resume_worker = ?)
ORDER BY sort_key
LIMIT ? OFFSET ?
"""

CLAIM_COLUMNS = columns(ClaimedRun, exclude=("waits",))
CLAIM_PREFIX = """
UPDATE runs SET status = 'DEQUEUED', worker_id = ?, attempt = attempt + 1 - suspended,
    expires_at = NULL, updated_at = ?
WHERE status = 'QUEUED' AND id IN ("""
CLAIM_SUFFIX = f") RETURNING {CLAIM_COLUMNS}"

CLAIMED = RowReader(ClaimedRun)

CHUNK = 500
SCAN_FACTOR = 10  # a claim walks past at most this many blocked sub-queues per run it wants
MIN_SCAN = 1000  # ... and never fewer than this in all
START = ("", "")

Pair = tuple[str, str]
Candidate = tuple[int, int, int, str, str, str]  # rank, visit position, sort key, id, pair


class ClaimSession(Protocol):
    """What the claim needs of a session."""

    def run(self, statement: str, params: Params = ...) -> Cursor: ...

    def claim_pairs_after(self, after: Pair, wanted: int) -> list[Pair]: ...


def pairs_after(session: ClaimSession, after: Pair, wanted: int) -> list[Pair]:
    """The next `wanted` sub-queues with ready runs after `after`, in key order (a plain
    DISTINCT scan; a dialect replaces it with a faster walk of its index)."""
    rows = session.run(SELECT_PAIRS_AFTER, (after[0], *after, wanted)).fetchall()
    return [(str(queue), str(key)) for queue, key in rows]


@dataclass(slots=True)
class QueueSettings:
    """What limits a queue: its effective limit, key total cap, and whether it is paused."""

    limit: int | None = None
    key_total: int | None = None
    paused: bool = False


@dataclass(slots=True)
class Claimer:
    """Claims for one store connection; remembers where its round robin stopped."""

    cursor: Pair = START
    stats: dict[str, int] = field(default_factory=lambda: {"claims": 0, "pairs": 0})

    def claim(
        self,
        session: ClaimSession,
        request: ClaimRequest,
    ) -> list[ClaimedRun]:
        """Claim up to `request.limit` runs for its worker; they become DEQUEUED."""
        worker_id, now, limit = request.worker_id, request.now, request.limit
        environment_limit = request.environment_limit
        settings = {
            name: QueueSettings(lim, total, bool(paused))
            for name, lim, total, paused in session.run(SELECT_QUEUE_SETTINGS)
        }
        active: dict[Pair, int] = {}
        if settings or environment_limit is not None:
            active = {(q, k): n for q, k, n in session.run(SELECT_ACTIVE)}
        budget = limit
        if environment_limit is not None:
            budget = min(budget, environment_limit - sum(active.values()))
        if budget <= 0:
            return []
        caps, visited = self._eligible(session, budget, settings, active)
        if not caps:
            return []
        candidates = self._candidates(session, caps, budget, now, worker_id)
        chosen, last_served = _choose(candidates, budget, settings, active)
        if last_served is not None:
            # Sub-queues visited but left out (by the batch size or a total cap) go first
            # next time.
            self.cursor = last_served
        self.stats["claims"] += 1
        self.stats["pairs"] += visited
        return _claim_ids(session, chosen, worker_id, now)

    def _eligible(
        self,
        session: ClaimSession,
        budget: int,
        settings: dict[str, QueueSettings],
        active: dict[Pair, int],
    ) -> tuple[dict[Pair, int], int]:
        """Up to `budget` sub-queues that can start runs now, with how many each may start,
        walking on from where the last claim stopped (wrapping around once). Paused and
        full sub-queues are passed over without using up the walk, up to a bound."""
        caps: dict[Pair, int] = {}
        seen: set[Pair] = set()
        cursor = self.cursor
        wrapped = cursor == START
        last = cursor
        bound = max(budget * SCAN_FACTOR, MIN_SCAN)
        while len(caps) < budget and len(seen) < bound:
            batch = session.claim_pairs_after(cursor, max(budget, 50))
            if not batch:
                if wrapped:
                    break
                wrapped, cursor = True, START
                continue
            for pair in batch:
                if pair in seen:  # came full circle
                    batch = []
                    break
                seen.add(pair)
                last = pair
                cap = _cap(pair, budget, settings, active)
                if cap > 0:
                    caps[pair] = cap
                    if len(caps) >= budget:
                        break
            if not batch or len(caps) >= budget:
                break
            cursor = batch[-1]
        self.cursor = last if seen else START
        return caps, len(seen)

    @staticmethod
    def _candidates(
        session: ClaimSession, caps: dict[Pair, int], budget: int, now: int, worker_id: str
    ) -> list[Candidate]:
        share = max(1, math.ceil(budget / len(caps)))
        found: list[Candidate] = []
        short: list[tuple[int, Pair, int, int]] = []
        for position, (pair, cap) in enumerate(caps.items()):
            want = min(cap, share)
            rows = session.run(SELECT_HEADS, (*pair, now, now, worker_id, want, 0)).fetchall()
            found.extend(
                (rank, position, sort_key, run_id, *pair)
                for rank, (sort_key, run_id) in enumerate(rows)
            )
            if len(rows) == want and cap > want:
                short.append((position, pair, cap, want))
        # Top up from sub-queues that had more than their share, when others had less.
        for position, pair, cap, got in short:
            if len(found) >= budget:
                break
            more = min(cap - got, budget - len(found))
            rows = session.run(SELECT_HEADS, (*pair, now, now, worker_id, more, got)).fetchall()
            found.extend(
                (got + rank, position, sort_key, run_id, *pair)
                for rank, (sort_key, run_id) in enumerate(rows)
            )
        found.sort()  # in rounds: each sub-queue's first run, then each one's second...
        return found


def _cap(
    pair: Pair, budget: int, settings: dict[str, QueueSettings], active: dict[Pair, int]
) -> int:
    """How many runs a sub-queue may start now (0: paused or full)."""
    queue = settings.get(pair[0])
    if queue is None:
        return budget
    if queue.paused:
        return 0
    if queue.limit is None:
        return budget
    return min(budget, queue.limit - active.get(pair, 0))


def _choose(
    candidates: list[Candidate],
    budget: int,
    settings: dict[str, QueueSettings],
    active: dict[Pair, int],
) -> tuple[list[str], Pair | None]:
    """The candidates in their order, keeping each queue's total across keys under its cap;
    and the last sub-queue (in visiting order) that got one."""
    totals: dict[str, int] = defaultdict(int)
    capped = {name for name, s in settings.items() if s.key_total is not None}
    if capped:
        for (queue, _key), count in active.items():
            if queue in capped:
                totals[queue] += count
    chosen: list[str] = []
    last_position = -1
    last_served: Pair | None = None
    for _rank, position, _sort_key, run_id, queue, key in candidates:
        if len(chosen) >= budget:
            break
        if queue in capped:
            cap = settings[queue].key_total
            assert cap is not None
            if totals[queue] >= cap:
                continue
            totals[queue] += 1
        chosen.append(run_id)
        if position > last_position:
            last_position, last_served = position, (queue, key)
    return chosen, last_served


def _claim_ids(
    session: ClaimSession, run_ids: list[str], worker_id: str, now: int
) -> list[ClaimedRun]:
    claimed: list[ClaimedRun] = []
    for start in range(0, len(run_ids), CHUNK):
        chunk = run_ids[start : start + CHUNK]
        query = CLAIM_PREFIX + ",".join("?" * len(chunk)) + CLAIM_SUFFIX
        claimed.extend(CLAIMED.all(session.run(query, (worker_id, now, *chunk))))
    claimed.sort(key=lambda run: run.sort_key)
    return claimed
