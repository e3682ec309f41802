"""The task of docs/configuration.md: reports the settings its run was given."""

from __future__ import annotations

from typing import Any

from taskloom import Context, task


@task(id="show-settings")
def show_settings(payload: None, ctx: Context) -> dict[str, Any]:
    return {
        "machine": ctx.machine.name,
        "max_attempts": ctx.run.max_attempts,
        "environment": ctx.environment.type,
    }
