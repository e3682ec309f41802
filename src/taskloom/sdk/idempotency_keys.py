"""`idempotency_keys`: keys that make a trigger return the run an earlier trigger made.

How long a key lives and what its scopes mean: `taskloom.runtime.idempotency_keys`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..runtime.idempotency_keys import SCOPES, IdempotencyKey, key_parts, make_key, scoped_options
from .client import current_client

__all__ = [
    "SCOPES",
    "IdempotencyKey",
    "IdempotencyKeys",
    "idempotency_keys",
    "make_key",
    "scoped_options",
]


class IdempotencyKeys:
    """The `idempotency_keys` namespace."""

    def create(self, key: str | Sequence[str], scope: str = "run") -> IdempotencyKey:
        """A key in a scope: "run" (default; global outside a run), "attempt" or "global".

        >>> key = idempotency_keys.create("charge-order-42", scope="global")
        """
        return make_key(key, scope)

    def reset(self, task_id: str, key: str | Sequence[str]) -> bool:
        """Forget a key so the next trigger with it creates a new run. Pass the key as you
        passed it to trigger (an `IdempotencyKey`, or the plain string used outside a run)."""
        value = key if isinstance(key, str) else "-".join(key_parts(key))
        return current_client().idempotency_key_reset(task_id, value)


idempotency_keys = IdempotencyKeys()
