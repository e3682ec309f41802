"""A task using the database client of the "db" middleware, in run and in a hook."""

from trigger.db import get_db

from taskloom import logger, task


async def run(payload, ctx):
    db = get_db()
    return await db.query("SELECT 1")


async def on_success(output):
    # Task hooks see the same client (it is still connected: middleware wraps the hooks).
    db = get_db()
    logger.info("Still connected", connected=db.connected, rows=output)


db_task = task(id="db-task", run=run, on_success=on_success)
