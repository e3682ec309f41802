"""The documentation works: its code blocks compile and its example scripts run.

1. Every ```python block of docs/*.md compiles (top-level `await` allowed, as the pages
   show async snippets bare), and every ```toml block parses.
2. Every docs/examples/*_example.py runs as a script against a real worker (a
   `python -m taskloom worker` subprocess) of the example project docs/examples/project,
   on a fresh database in tmp_path; it must exit 0 and print the lines listed in
   `EXPECTED`. The worker must then stop with exit code 0 on SIGTERM.

Waits poll a condition with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
PROJECT = EXAMPLES / "project"

START_TIMEOUT = 60.0
EXAMPLE_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)

# Lines each example must print (each one exactly, as a whole line of its stdout).
EXPECTED: dict[str, list[str]] = {
    "tasks": [
        "hello-world: {'greeting': 'Hello, Ada!', 'attempt': 1, 'machine': 'small-1x'}",
        "shout: QUIET PLEASE!",
        "shout, called directly: NO WORKER NEEDED!",
        "flaky: {'attempts': 3}",
        "flaky attempts: ['FAILED', 'FAILED', 'COMPLETED']",
        "check-age -1: FAILED after 1 attempt, AbortTaskRunError: impossible age -1",
        "check-age 30: adult",
        "check-age 12: minor",
        "charge rejected: expected {\"cents\": <positive integer>}, got {'cents': 'ten'}",
        "charge: {'charged': '12.50 EUR'}",
    ],
    "triggering": [
        "output: {'sent_to': 'ada@example.com', 'tags': ['user:ada', 'welcome'], "
        "'idempotency_key': 'welcome-ada', 'machine': 'small-2x', 'max_attempts': 1}",
        "metadata: {'campaign': 'spring'}",
        "same run: True | is_cached: True",
        "delayed status: DELAYED",
        "delayed output: grace@example.com",
        "by id: bob@example.com",
        "failed: FAILED after 2 attempts",
        "error: ValueError: not an email address: 'nobody'",
        "new run after failure: True",
        "bad payload: PayloadError",
        "bad tags: InvalidOptionError",
        "bad machine: InvalidOptionError",
        "bad delay: InvalidOptionError",
        "bad task id: UnknownTaskError",
        "async: async@example.com",
    ],
    "runs": [
        "status: COMPLETED | success: True | final: True",
        "output: {'steps': 3, 'replay': False} | attempts: 1 | tags: ['example']",
        "timings known: True",
        "cancel returns: CANCELED",
        "cancelled run: CANCELED | is_cancelled: True",
        "replay: {'steps': 3, 'replay': True} | of the first run: True",
        "delayed: DELAYED",
        "rescheduled run: COMPLETED",
        "reschedule refused: only DELAYED runs can be rescheduled",
        "completed with tag 'example': 2 (the first run and its replay)",
        "subscribe ends with: COMPLETED",
        "aretrieve: {'steps': 2, 'replay': False}",
    ],
    "workers": [
        "crash-once output: {'attempt': 2}",
        "attempts: [(1, 'CRASHED'), (2, 'COMPLETED')]",
        "first attempt error: TaskRunCrashedError TASK_PROCESS_EXITED",
        "20 naps of 0.5 s finished in under 5 s: True",
        "ran in another process than this script: True",
    ],
    "configuration": [
        "project root: project | dirs: ('trigger',)",
        "retries.default: 3 attempts, first delay 200",
        "worker.concurrency: 100 | lease: 30.0",
        "database.synchronous: FULL | busy: 5000",
        "with TASKLOOM_MACHINE: large-1x",
        "run with the file's defaults: "
        "{'machine': 'small-1x', 'max_attempts': 3, 'environment': 'DEVELOPMENT'}",
        "run after configure(): "
        "{'machine': 'medium-1x', 'max_attempts': 5, 'environment': 'DEVELOPMENT'}",
        "rejected: configure(lease_seconds=...): expected a duration > 0, got 0",
        "machine still: medium-1x",
    ],
    "logging": [
        "output: {'rows': 180}",
        "log info: Building report {'sections': 3, 'attempt': 1}",
        "log debug: loaded {'rows': 50} (in a span)",
        "span 'load section' ended: {'section': 'users', 'rows': 50}",
        "span 'load section' ended: {'section': 'refunds', 'rows': 70}",
        "span 'upload' ended: {}",
        "log log: report has 180 rows {'stream': 'stdout'}",
        "log warn: slow section {'logger': 'reports', 'section': 'refunds'}",
        "runs show has a Logs section: True",
        "taskloom.task INFO not in a run",
    ],
    "queues": [
        "render-video, most at once: 1",
        "sync-account, most at once: 2 | acme at once: 1",
        "custom queues: ['one-at-a-time', 'per-customer']",
        "one-at-a-time: 1 | paused: False",
        "while paused: QUEUED | queued: 1",
        "after resume: COMPLETED",
        "override: 3 | from code: 1",
        "reset: 1",
        "rejected: unknown queue 'no-such-queue' for a run of task 'render-video'",
    ],
    "testing": ["test_greet passed"],
}


# -- 1. code blocks ----------------------------------------------------------------------


def _blocks(language: str) -> list[tuple[str, str]]:
    """(id, code) of every fenced block in that language, in every docs/*.md page."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 2  # the block's first code line
                found.append((f"{page.name}:{line}", match.group(2)))
    return found


PYTHON_BLOCKS = _blocks("python")
TOML_BLOCKS = _blocks("toml")


def test_the_pages_have_code() -> None:
    pages = {block_id.split(":")[0] for block_id, _ in PYTHON_BLOCKS}
    pages_with_code = ("tasks", "triggering", "runs", "queues", "workers", "configuration")
    for page in (*pages_with_code, "logging", "testing"):
        assert f"{page}.md" in pages, f"docs/{page}.md has no ```python block"


@pytest.mark.parametrize(
    "code", [code for _, code in PYTHON_BLOCKS], ids=[i for i, _ in PYTHON_BLOCKS]
)
def test_python_block_compiles(code: str, request: pytest.FixtureRequest) -> None:
    where = request.node.callspec.id
    compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


@pytest.mark.parametrize("code", [code for _, code in TOML_BLOCKS], ids=[i for i, _ in TOML_BLOCKS])
def test_toml_block_parses(code: str) -> None:
    tomllib.loads(code)


# -- links between the pages --------------------------------------------------------------

# The pages of this suite's examples; links from them must lead somewhere.
OWN_PAGES = (
    "tasks",
    "triggering",
    "runs",
    "queues",
    "workers",
    "configuration",
    "logging",
    "testing",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)


def _without_code(text: str) -> str:
    return FENCE.sub("", text)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found: set[str] = set()
    for heading in HEADING.findall(_without_code(page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def _links() -> list[tuple[str, str]]:
    found = []
    for name in OWN_PAGES:
        page = DOCS / f"{name}.md"
        for target in LINK.findall(_without_code(page.read_text(encoding="utf-8"))):
            if not target.startswith(("http://", "https://")):
                found.append((page.name, target))
    return found


@pytest.mark.parametrize(("page", "target"), _links(), ids=str)
def test_link_leads_somewhere(page: str, target: str) -> None:
    path, _, anchor = target.partition("#")
    destination = (DOCS / page).parent / path if path else DOCS / page
    assert destination.exists(), f"{page} links to {target}: {destination} does not exist"
    if anchor:
        assert destination.suffix == ".md", f"{page} links to an anchor in {destination}"
        assert anchor in _anchors(destination), f"{page} links to {target}: no such heading"


# -- 2. example scripts against a real worker -------------------------------------------


def _wait_for(predicate: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {describe()}")
        time.sleep(0.02)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


class Worker:
    """`python -m taskloom worker` for the example project, in its own process group."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.stdout_path = directory / "worker.out"
        self.stderr_path = directory / "worker.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "taskloom", "worker"],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def output(self) -> str:
        return f"--- worker stdout ---\n{_read(self.stdout_path)}--- worker stderr ---\n" + _read(
            self.stderr_path
        )

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{self.output()}")
            return " ready: " in _read(self.stderr_path)

        _wait_for(ready, START_TIMEOUT, self.output)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker ignored SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the worker and the example: the example project, a fresh database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env.update(
        TASKLOOM_PROJECT_ROOT=str(PROJECT),
        TASKLOOM_DATABASE_URL=f"sqlite:///{tmp_path / 'docs.db'}",
        PYTHONDONTWRITEBYTECODE="1",  # keep docs/examples free of __pycache__
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


@pytest.fixture
def worker(example_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    started = Worker(example_env, tmp_path)
    try:
        started.wait_ready()
        yield started
    finally:
        started.kill()


EXAMPLE_SCRIPTS = sorted(EXAMPLES.glob("*_example.py"))


def test_every_example_has_expectations() -> None:
    names = {path.name.removesuffix("_example.py") for path in EXAMPLE_SCRIPTS}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("script", EXAMPLE_SCRIPTS, ids=lambda p: p.name)
def test_example_runs(
    script: Path, worker: Worker, example_env: dict[str, str], tmp_path: Path
) -> None:
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            cwd=tmp_path,
            env=example_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as expired:
        raise AssertionError(
            f"{script.name} did not finish in {EXAMPLE_TIMEOUT} s; "
            f"its output: {expired.stdout!r} {expired.stderr!r}\n{worker.output()}"
        ) from None
    report = (
        f"--- {script.name} stdout ---\n{done.stdout}--- {script.name} stderr ---\n"
        f"{done.stderr}{worker.output()}"
    )
    assert done.returncode == 0, report
    lines = done.stdout.splitlines()
    expected = EXPECTED[script.name.removesuffix("_example.py")]
    missing = [line for line in expected if line not in lines]
    assert not missing, f"missing lines {missing}\n{report}"
    assert worker.stop() == 0, worker.output()
