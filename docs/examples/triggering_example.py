"""docs/triggering.md, runnable: trigger options, idempotency, delays, failures and bad input.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/triggering_example.py
"""

import asyncio
import sys

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.emails import send_email

from taskloom import RunFailedError, TaskloomError, runs, tasks
from taskloom.errors import InvalidOptionError


def main() -> int:
    # Options: tags, metadata, an idempotency key, a machine preset, fewer attempts.
    handle = send_email.trigger(
        {"to": "ada@example.com"},
        idempotency_key="welcome-ada",
        tags=["user:ada", "welcome"],
        metadata={"campaign": "spring"},
        machine="small-2x",
        max_attempts=1,
    )
    print("output:", handle.result(timeout=30))
    print("metadata:", runs.retrieve(handle.id).metadata)

    # The same key (for the same task) returns the same run: nothing new is created.
    again = send_email.trigger({"to": "ada@example.com"}, idempotency_key="welcome-ada")
    print("same run:", again.id == handle.id, "| is_cached:", again.is_cached)

    # Delayed: DELAYED until its time comes, then QUEUED and run like any other.
    later = send_email.trigger({"to": "grace@example.com"}, delay="1s")
    print("delayed status:", runs.retrieve(later.id).status.value)
    print("delayed output:", later.result(timeout=30)["sent_to"])

    # By id, without importing the task (a worker has registered it).
    print(
        "by id:",
        tasks.trigger("send-email", {"to": "bob@example.com"}).result(timeout=30)["sent_to"],
    )

    # A run that fails: result() raises RunFailedError, with the run in `.run`.
    failing = send_email.trigger({"to": "nobody"}, idempotency_key="nobody")
    try:
        failing.result(timeout=30)
    except RunFailedError as error:
        print("failed:", error.run.status.value, "after", error.run.attempt_count, "attempts")
        print("error:", error.run.error)
    # A failed run gives its idempotency key up: the same key now creates a new run.
    retried = send_email.trigger({"to": "nobody"}, idempotency_key="nobody")
    print("new run after failure:", retried.id != failing.id)

    # Bad input raises at once, and nothing is created.
    bad_calls = {
        "payload": lambda: send_email.trigger({"to": {"a", "set"}}),
        "tags": lambda: send_email.trigger({"to": "x@y"}, tags=[f"t{i}" for i in range(11)]),
        "machine": lambda: send_email.trigger({"to": "x@y"}, machine="huge"),
        "delay": lambda: send_email.trigger({"to": "x@y"}, delay="soon"),
        "task id": lambda: tasks.trigger("no-such-task", {}),
    }
    for what, call in bad_calls.items():
        try:
            call()
        except InvalidOptionError as error:  # PayloadError is one too
            print(f"bad {what}: {type(error).__name__}")
        except TaskloomError as error:
            print(f"bad {what}: {type(error).__name__}")

    # The async twins.
    async def trigger_async() -> None:
        handle = await send_email.atrigger({"to": "async@example.com"})
        output = await handle.aresult(timeout=30)
        print("async:", output["sent_to"])

    asyncio.run(trigger_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
