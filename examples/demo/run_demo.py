"""Start `taskloom dev` on the demo project, trigger a few runs, show them, keep running.

Run it with `bash scripts/demo` from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import taskloom  # noqa: E402
from taskloom import runs  # noqa: E402


def main() -> int:
    taskloom.configure(project_root=HERE)
    dev = subprocess.Popen([sys.executable, "-m", "taskloom", "--project", str(HERE), "dev"])
    try:
        from trigger.demo_tasks import (
            build_report,
            charge_card,
            flaky_api,
            hello_world,
            publish_report,
        )

        handles = [
            hello_world.trigger({"name": "taskloom"}, tags=["demo"]),
            flaky_api.trigger({"succeed_on_attempt": 3}, tags=["demo"]),
            charge_card.trigger({"card": "5100-0000", "amount": 42}, tags=["demo"]),
            build_report.trigger({}, tags=["demo"]),
            hello_world.trigger({"name": "later"}, delay="3s", tags=["demo", "delayed"]),
            publish_report.trigger({}, tags=["demo", "waits"]),
        ]
        print(f"\ntriggered {len(handles)} demo runs; waiting for them to finish...\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # show the parent while it waits for its child
            status = runs.retrieve(handles[-1].id).status
            if status.value == "WAITING":
                print(f"  {handles[-1].id}  publish-report is WAITING: it holds no worker slot\n")
                break
            time.sleep(0.1)
        for handle in handles:
            run = runs.poll(handle.id, timeout=60)
            print(f"  {run.id}  {run.task_id:14s} {run.status.value:10s} output={run.output}")
        print(
            "\nWatch and manage runs from another terminal:\n"
            f"  .venv/bin/taskloom --project {HERE} runs list\n"
            f"  .venv/bin/taskloom --project {HERE} runs show {handles[1].id}\n"
            f"  .venv/bin/taskloom --project {HERE} trigger hello-world "
            '\'{"name": "you"}\' --wait\n'
            "\nThe dev worker keeps running (editing trigger/*.py reloads it). Ctrl-C stops.\n"
        )
        while dev.poll() is None:
            time.sleep(0.5)
        return dev.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if dev.poll() is None:
            dev.terminate()
            dev.wait(30)


if __name__ == "__main__":
    sys.exit(main())
