"""The task of docs/triggering.md: a sync task that reports what its run was given."""

from __future__ import annotations

from typing import Any

from taskloom import Context, task


@task(id="send-email", retry={"max_attempts": 2, "min_timeout_ms": 100, "randomize": False})
def send_email(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if "@" not in payload["to"]:
        raise ValueError(f"not an email address: {payload['to']!r}")
    return {
        "sent_to": payload["to"],
        "tags": list(ctx.run.tags),
        "idempotency_key": ctx.run.idempotency_key,
        "machine": ctx.machine.name,
        "max_attempts": ctx.run.max_attempts,
    }
