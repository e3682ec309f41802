"""docs/queues.md, runnable: concurrency limits, concurrency keys, pausing and overrides.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/queues_example.py
"""

import sys

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.limits import render_video, sync_account

from taskloom import queues, runs
from taskloom.errors import InvalidOptionError


def most_at_once(spans: list[list[float]]) -> int:
    """The largest number of (start, end) spans that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def main() -> int:
    # concurrency_limit=1: three runs, one after the other.
    handles = [render_video.trigger({"video": name}) for name in ("a", "b", "c")]
    spans = [handle.result(timeout=30) for handle in handles]
    print("render-video, most at once:", most_at_once(spans))

    # One run at a time per customer (concurrency_key), at most two over all customers.
    customers = ["acme", "acme", "globex", "initech"]
    handles = [sync_account.trigger({}, concurrency_key=c) for c in customers]
    spans = [handle.result(timeout=30) for handle in handles]
    acme = [span for span, customer in zip(spans, customers, strict=True) if customer == "acme"]
    print("sync-account, most at once:", most_at_once(spans), "| acme at once:", most_at_once(acme))

    # The queues, as workers declared them.
    print("custom queues:", [q.name for q in queues.list() if q.type == "custom"])
    details = queues.retrieve("one-at-a-time")
    print("one-at-a-time:", details.concurrency_limit, "| paused:", details.paused)

    # Pause: nothing new starts (runs still queue up); resume: they run.
    queues.pause("one-at-a-time")
    try:
        paused = render_video.trigger({"video": "d"})
        print(
            "while paused:",
            runs.retrieve(paused.id).status.value,
            "| queued:",
            queues.retrieve("one-at-a-time").queued,
        )
    finally:
        queues.resume("one-at-a-time")
    print("after resume:", runs.poll(paused.id, timeout=30).status.value)

    # Override the limit from code, then go back to it.
    details = queues.override_concurrency_limit("one-at-a-time", 3)
    print("override:", details.concurrency_limit, "| from code:", details.base_concurrency_limit)
    print("reset:", queues.reset_concurrency_limit("one-at-a-time").concurrency_limit)

    # A trigger may only name a queue that is declared in code.
    try:
        render_video.trigger({"video": "e"}, queue="no-such-queue")
    except InvalidOptionError as error:
        print("rejected:", str(error).split(":")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
