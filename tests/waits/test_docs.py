"""The runnable examples of docs/waits.md and docs/idempotency.md run against a real
worker and print exactly what the pages show.

A page's example is a ```python block whose first line is ``# trigger/<name>.py`` (a task
module, written into the project), a block whose first line is ``# <name>_example.py``
(a script, run from the project directory), and the ```text block right after the script:
its stdout, line for line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskloom.testing import TaskloomProject

from .conftest import StartWorker
from .support import run_python

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def example(page: str) -> tuple[dict[str, str], str, list[str]]:
    """(task modules by name, the script, its expected stdout lines) of a page."""
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer((DOCS / page).read_text())]
    modules: dict[str, str] = {}
    script: str | None = None
    expected: list[str] | None = None
    for index, (language, code) in enumerate(blocks):
        first = code.split("\n", 1)[0]
        if language == "python" and (found := re.fullmatch(r"# trigger/(\w+)\.py", first)):
            modules[found.group(1)] = code
        elif language == "python" and re.fullmatch(r"# \w+_example\.py", first):
            assert script is None, f"{page} has two example scripts"
            script = code
            following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
            assert following[0] == "text", f"{page}: the script is not followed by its output"
            expected = following[1].splitlines()
    assert modules and script and expected, f"{page} has no complete runnable example"
    return modules, script, expected


@pytest.mark.parametrize("page", ["waits.md", "idempotency.md"])
def test_the_runnable_example_prints_what_the_page_shows(
    project: TaskloomProject, start_worker: StartWorker, page: str
) -> None:
    modules, script, expected = example(page)
    for name, code in modules.items():
        project.write_task_module(name, code)
    worker = start_worker(concurrency=10)

    printed = run_python(project, script, timeout=120).splitlines()

    assert printed == expected
    assert worker.is_running()
