"""The SQLite session: the statements SQLite spells differently from the neutral core."""

from __future__ import annotations

from ..sql.claim import Pair
from ..sql.session import Session

# A loose index scan: the next `?` distinct (queue, key) pairs with queued runs after a
# cursor. A pair travels as one text, queue + U+001F + key (names and keys never hold
# control characters). Each step is two index seeks that jump over a whole sub-queue:
# first a later key in the same queue, else the first key of a later queue.
SEPARATOR = "\x1f"
SELECT_PAIRS_AFTER = """
WITH RECURSIVE pairs(n, pair) AS (
    SELECT 0, ? || char(31) || ?
    UNION ALL
    SELECT pairs.n + 1, COALESCE(
        (SELECT r.queue || char(31) || r.concurrency_key FROM runs AS r
         WHERE r.status = 'QUEUED'
           AND r.queue = substr(pairs.pair, 1, instr(pairs.pair, char(31)) - 1)
           AND r.concurrency_key > substr(pairs.pair, instr(pairs.pair, char(31)) + 1)
         ORDER BY r.concurrency_key LIMIT 1),
        (SELECT r.queue || char(31) || r.concurrency_key FROM runs AS r
         WHERE r.status = 'QUEUED'
           AND r.queue > substr(pairs.pair, 1, instr(pairs.pair, char(31)) - 1)
         ORDER BY r.queue, r.concurrency_key LIMIT 1))
    FROM pairs
    WHERE pairs.pair IS NOT NULL AND pairs.n < ?
)
SELECT pair FROM pairs WHERE n > 0 AND pair IS NOT NULL
"""

# Tags are stored as TEXT so json_each can read them.
LIST_TAG = " AND EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ?)"


class SqliteSession(Session):
    """Statements on one SQLite connection."""

    dialect = "sqlite"

    def claim_pairs_after(self, after: Pair, wanted: int) -> list[Pair]:
        rows = self.run(SELECT_PAIRS_AFTER, (*after, wanted)).fetchall()
        pairs: list[Pair] = []
        for (text,) in rows:
            queue, _, key = text.partition(SEPARATOR)
            pairs.append((queue, key))
        return pairs

    def list_tag_filter(self) -> str:
        return LIST_TAG
