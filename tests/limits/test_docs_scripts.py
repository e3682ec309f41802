"""The self-contained scripts of docs/queues.md and docs/machines.md print what the pages
say they print.

A script is a ```python block that builds its own project with `taskloom.testing`; the
```text block right after it is its expected output, line for line. Each runs as a real
`python` process (it starts its own worker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SCRIPT_MARK = "from taskloom.testing import TaskloomProject"


def scripts() -> list[tuple[str, str, str]]:
    """(id, code, expected output) of every self-contained script of the two pages."""
    found = []
    for page in ("queues.md", "machines.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]
        for index, (language, code) in enumerate(blocks):
            if language == "python" and SCRIPT_MARK in code:
                following = blocks[index + 1] if index + 1 < len(blocks) else ("", "")
                assert following[0] == "text", f"{page}: a script without its output block"
                found.append((f"{page}#{index}", code, following[1]))
    return found


SCRIPTS = scripts()


def test_both_pages_have_a_script() -> None:
    assert {script_id.split("#")[0] for script_id, _, _ in SCRIPTS} == {
        "queues.md",
        "machines.md",
    }


@pytest.mark.parametrize(
    ("code", "expected"), [s[1:] for s in SCRIPTS], ids=[s[0] for s in SCRIPTS]
)
def test_a_docs_script_prints_its_documented_output(
    tmp_path: Path, code: str, expected: str
) -> None:
    if "machine" in code and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the machines example shows CPU pinning on a host with 2 CPUs or more")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected.splitlines(), result.stderr
