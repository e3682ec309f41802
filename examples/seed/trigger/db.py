"""A database client shared through `locals` by middleware, hooks and run (db.ts).

The global "db" middleware connects before everything else of an attempt and
disconnects after; `on_wait` / `on_resume` disconnect while a run is paused.
Anything that runs inside the attempt gets the client with `get_db()`.
"""

from taskloom import locals, logger, tasks


class Db:
    """Stands in for your database client."""

    def __init__(self):
        self.connected = False

    async def connect(self):
        logger.info("Connecting to the database")
        self.connected = True

    async def disconnect(self):
        logger.info("Disconnecting from the database")
        self.connected = False

    async def query(self, sql):
        if not self.connected:
            raise ConnectionError("query on a closed connection")
        logger.info("Query", sql=sql)
        return [[1]]


DbLocal = locals.create("db")


def get_db() -> Db:
    return locals.get_or_throw(DbLocal)


def set_db(db: Db) -> None:
    locals.set(DbLocal, db)


async def db_middleware(ctx, payload, next, task):
    # This would be your database client here
    db = locals.set(DbLocal, Db())

    await db.connect()

    await next()

    await db.disconnect()


tasks.middleware("db", db_middleware)


# Disconnect when the run is paused
@tasks.on_wait("db")
async def disconnect_while_waiting(ctx, payload, task):
    db = get_db()
    await db.disconnect()


# Reconnect when the run is resumed
@tasks.on_resume("db")
async def reconnect_on_resume(ctx, payload, task):
    db = get_db()
    await db.connect()
