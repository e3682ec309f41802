"""The task of docs/logging.md: structured logs, spans, print and the logging module."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from taskloom import Context, logger, task

log = logging.getLogger("reports")


@task(id="build-report")
async def build_report(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    logger.info("Building report", sections=len(payload["sections"]), attempt=ctx.attempt.number)
    total = 0
    for section in payload["sections"]:
        with logger.trace("load section", section=section) as span:
            rows = 10 * len(section)
            logger.debug("loaded", rows=rows)  # points to the span it is logged in
            span.set_attribute("rows", rows)  # reported when the span ends
            total += rows
    async with logger.trace("upload"):
        await asyncio.sleep(0.01)
    print(f"report has {total} rows")  # captured: level "log"
    log.warning("slow section", extra={"attributes": {"section": "refunds"}})  # level "warn"
    return {"rows": total}
