"""The `taskloom` command line, run for real: `python -m taskloom ...` in a temporary project.

Workers and `taskloom dev` run as subprocesses; tests wait on conditions (a line in a
process's output, a run's status) with deadlines, never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

COMMAND_TIMEOUT = 60.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
READY = re.compile(r"taskloom worker worker_\w+ ready: .*tasks: ")

TASKS = """\
from taskloom import Retry, logger, task


@task(id="echo")
async def echo(payload, ctx):
    logger.info("echo line", attempt=ctx.attempt.number)
    return {"echo": payload}


@task(
    id="explode",
    retry=Retry(max_attempts=2, min_timeout_ms=10, max_timeout_ms=10, randomize=False),
)
def explode(payload):
    raise RuntimeError(f"kaboom {payload['why']}")
"""

VERSIONED_TASK = """\
from taskloom import task


@task(id="version")
def version(payload):
    return {"version": "%s"}
"""


# -- helpers ---------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of every CLI process: the same whether or not CI or a TTY is around."""
    dropped = {"CI", "NO_COLOR", "FORCE_COLOR", "TERM", "PYTHONWARNINGS"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith("TASKLOOM_")
    }
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m taskloom ARGS` in `project` and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "taskloom", *args],
        cwd=project,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def make_project(root: Path, tasks: str = TASKS, module: str = "tasks.py") -> Path:
    """A project with `trigger/<module>` and a `taskloom.toml` whose database is in `root`."""
    (root / "trigger").mkdir(parents=True)
    (root / "trigger" / module).write_text(tasks, encoding="utf-8")
    database = root / "db" / "taskloom.db"
    (root / "taskloom.toml").write_text(
        textwrap.dedent(
            f"""\
            dirs = ["trigger"]
            database_url = "sqlite:///{database}"

            [worker]
            executors = 1
            """
        ),
        encoding="utf-8",
    )
    return root


class ProcessOutput:
    """Collects a subprocess's output lines on a thread, so tests can wait for a line."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str) -> None:
        """Block until `predicate(lines)` holds; fail naming `what` after START_TIMEOUT."""
        with self._changed:
            ok = self._changed.wait_for(lambda: predicate(self.lines), timeout=START_TIMEOUT)
        assert ok, f"timed out waiting for {what}; output so far:\n{self.text}"

    def count(self, pattern: re.Pattern[str]) -> int:
        with self._changed:
            return sum(1 for line in self.lines if pattern.search(line))


@contextmanager
def background(project: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], ProcessOutput]]:
    """Start `python -m taskloom ARGS` (stderr merged into stdout); on exit, SIGTERM it and
    assert it exits 0 within STOP_TIMEOUT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskloom", *args],
        cwd=project,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ProcessOutput(process.stdout)
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"taskloom {args[0]} did not stop after SIGTERM:\n{output.text}")
        assert process.stdout is not None
        process.stdout.close()
        assert code == 0, f"taskloom {args[0]} exited {code}:\n{output.text}"


def triggered(result: subprocess.CompletedProcess[str]) -> tuple[str, Any]:
    """(run id, output) from `trigger --wait`'s stdout: the id line, then the JSON output."""
    first, _, rest = result.stdout.partition("\n")
    assert first.startswith("run_"), result
    return first, json.loads(rest) if rest.strip() else None


def show_json(project: Path, run_id: str) -> dict[str, Any]:
    result = run_cli(project, "runs", "show", run_id, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project with no worker."""
    return make_project(tmp_path / "project")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with a worker running for the whole module (stopped with SIGTERM after)."""
    root = make_project(tmp_path_factory.mktemp("served"))
    with background(root, "worker", "--concurrency", "4") as (_, output):
        output.wait_for(lambda lines: any(READY.search(line) for line in lines), "worker ready")
        yield root


# -- commands that need no worker ------------------------------------------------------


def test_version() -> None:
    result = run_cli(Path.cwd(), "--version")
    assert result.returncode == 0
    assert re.fullmatch(r"taskloom \d+\.\d+\.\d+\S*\n", result.stdout)


def test_init_scaffolds_and_does_not_overwrite(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "init", "app")
    assert result.returncode == 0, result.stderr
    example = tmp_path / "app" / "trigger" / "example.py"
    config = tmp_path / "app" / "taskloom.toml"
    assert 'id="hello-world"' in example.read_text()
    assert 'dirs = ["trigger"]' in config.read_text()
    assert 'database_url = "sqlite:///.taskloom/taskloom.db"' in config.read_text()
    assert "created  trigger/example.py" in result.stdout
    assert "taskloom dev" in result.stdout
    assert """taskloom trigger hello-world '{"message": "hi"}' --wait""" in result.stdout
    compile(example.read_text(), str(example), "exec")

    example.write_text("# mine\n")
    again = run_cli(tmp_path / "app", "init")
    assert again.returncode == 0, again.stderr
    assert example.read_text() == "# mine\n"
    assert "kept     trigger/example.py" in again.stdout
    assert "kept     taskloom.toml" in again.stdout
    assert "cd " not in again.stdout  # already in the project


def test_migrate_twice(project: Path) -> None:
    first = run_cli(project, "migrate")
    assert first.returncode == 0, first.stderr
    assert "Applied migration 0001_initial" in first.stdout
    assert re.search(r"schema version [1-9]", first.stdout)
    second = run_cli(project, "migrate")
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert "Applied" not in second.stdout
    assert (project / "db" / "taskloom.db").is_file()


def test_global_project_and_database_options(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    result = run_cli(
        tmp_path, "--project", str(project), "--database-url", f"sqlite:///{other}", "migrate"
    )
    assert result.returncode == 0, result.stderr
    assert other.is_file()
    assert not (project / "db").exists()


def test_trigger_unknown_task_names_it(project: Path) -> None:
    result = run_cli(project, "trigger", "no-such-task", "{}")
    assert result.returncode == 1
    assert "error: " in result.stderr
    assert "'no-such-task'" in result.stderr
    assert result.stdout == ""


def test_trigger_bad_json_is_a_usage_error(project: Path) -> None:
    result = run_cli(project, "trigger", "echo", '{"a" 1}')
    assert result.returncode == 2
    assert "PAYLOAD_JSON is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(project: Path) -> None:
    bad_status = run_cli(project, "runs", "list", "--status", "NOPE")
    assert bad_status.returncode == 2
    assert "unknown status 'NOPE'" in bad_status.stderr
    bad_delay = run_cli(project, "trigger", "echo", "--delay", "soon")
    assert bad_delay.returncode == 2
    assert "--delay" in bad_delay.stderr
    assert run_cli(project).returncode == 2


def test_runs_show_unknown_run(project: Path) -> None:
    result = run_cli(project, "runs", "show", "run_missing")
    assert result.returncode == 1
    assert "error: no run with id 'run_missing'" in result.stderr


def test_runs_list_empty(project: Path) -> None:
    result = run_cli(project, "runs", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- with a worker ---------------------------------------------------------------------


@pytest.mark.slow
def test_trigger_wait_prints_output(served: Path) -> None:
    result = run_cli(served, "trigger", "echo", '{"n": 1}', "--wait", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    run_id, output = triggered(result)
    assert output == {"echo": {"n": 1}}
    assert "COMPLETED" in result.stderr
    assert show_json(served, run_id)["status"] == "COMPLETED"


@pytest.mark.slow
def test_trigger_wait_json(served: Path) -> None:
    result = run_cli(served, "trigger", "echo", "[1, 2]", "--wait", "--json", "--tag", "j")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "COMPLETED"
    assert data["output"] == {"echo": [1, 2]}
    assert data["tags"] == ["j"]
    assert [a["status"] for a in data["attempts"]] == ["COMPLETED"]


@pytest.mark.slow
def test_failing_task_exits_1_with_its_error(served: Path) -> None:
    result = run_cli(served, "trigger", "explode", '{"why": "now"}', "--wait")
    assert result.returncode == 1
    run_id, _ = triggered(result)
    assert "FAILED" in result.stderr
    assert "RuntimeError: kaboom now" in result.stderr
    assert "2 attempts" in result.stderr
    assert show_json(served, run_id)["attempt_count"] == 2


@pytest.mark.slow
def test_runs_list_and_status_filter(served: Path) -> None:
    ok_id, _ = triggered(run_cli(served, "trigger", "echo", '"x"', "--wait", "--tag", "listed"))
    failed = run_cli(served, "trigger", "explode", '{"why": "list"}', "--wait")
    failed_id, _ = triggered(failed)

    listing = run_cli(served, "runs", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "TASK",
        "STATUS",
        "ATTEMPTS",
        "CREATED",
        "DURATION",
        "TAGS",
    ]
    ids = [line.split()[0] for line in lines[1:]]
    assert ids.index(failed_id) < ids.index(ok_id)  # newest first
    ok_line = lines[1 + ids.index(ok_id)]
    assert ok_line.split()[1:4] == ["echo", "COMPLETED", "1"]
    assert ok_line.endswith("listed")
    assert "\x1b[" not in listing.stdout

    only_failed = run_cli(served, "runs", "list", "--status", "FAILED")
    assert only_failed.returncode == 0, only_failed.stderr
    assert failed_id in only_failed.stdout
    assert ok_id not in only_failed.stdout
    assert all(" FAILED " in line for line in only_failed.stdout.splitlines()[1:])

    as_json = run_cli(served, "runs", "list", "--task", "echo", "--tag", "listed", "--json")
    assert [run["id"] for run in json.loads(as_json.stdout)] == [ok_id]


@pytest.mark.slow
def test_runs_list_in_colour(served: Path) -> None:
    run_id, _ = triggered(run_cli(served, "trigger", "echo", "1", "--wait"))
    colour_env = cli_env(FORCE_COLOR="1")
    del colour_env["NO_COLOR"]
    coloured = run_cli(served, "runs", "list", "--limit", "5", env=colour_env)
    assert coloured.returncode == 0, coloured.stderr
    assert run_id in coloured.stdout
    assert "\x1b[32mCOMPLETED" in coloured.stdout  # green status
    plain = run_cli(served, "--no-colour", "runs", "list", "--limit", "5", env=colour_env)
    assert "\x1b[" not in plain.stdout


@pytest.mark.slow
def test_runs_show_details_attempts_and_logs(served: Path) -> None:
    run_id, _ = triggered(run_cli(served, "trigger", "echo", '{"shown": true}', "--wait"))
    shown = run_cli(served, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert re.search(rf"^id: +{run_id}$", text, re.MULTILINE)
    assert re.search(r"^status: +COMPLETED$", text, re.MULTILINE)
    assert re.search(r"^task: +echo$", text, re.MULTILINE)
    assert '"shown": true' in text
    assert "Attempts" in text
    assert re.search(r"^#\s+STATUS\s+STARTED\s+DURATION\s+ERROR$", text, re.MULTILINE)
    assert re.search(r"^1\s+COMPLETED\s", text, re.MULTILINE)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3}\s+INFO\s+echo line\s+attempt=1$", text, re.M)

    quiet = run_cli(served, "runs", "show", run_id, "--no-logs")
    assert "echo line" not in quiet.stdout
    data = show_json(served, run_id)
    assert [line["message"] for line in data["logs"]] == ["echo line"]


@pytest.mark.slow
def test_runs_show_failed_run_has_error_and_stack(served: Path) -> None:
    run_id, _ = triggered(run_cli(served, "trigger", "explode", '{"why": "shown"}', "--wait"))
    text = run_cli(served, "runs", "show", run_id).stdout
    assert re.search(r"^error: +RuntimeError: kaboom shown$", text, re.MULTILINE)
    assert "Traceback" in text
    assert re.search(r"^2\s+FAILED\s.*RuntimeError: kaboom shown$", text, re.MULTILINE)


@pytest.mark.slow
def test_cancel_a_delayed_run(served: Path) -> None:
    result = run_cli(served, "trigger", "echo", "{}", "--delay", "1h")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert show_json(served, run_id)["status"] == "DELAYED"

    cancelled = run_cli(served, "runs", "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"{run_id}: DELAYED -> CANCELED"
    assert show_json(served, run_id)["status"] == "CANCELED"
    again = run_cli(served, "runs", "cancel", run_id)
    assert "already ended CANCELED" in again.stdout


@pytest.mark.slow
def test_wait_timeout_leaves_the_run_alone(served: Path) -> None:
    result = run_cli(served, "trigger", "echo", "{}", "--delay", "1h", "--wait", "--timeout", "0.3")
    assert result.returncode == 1
    run_id = result.stdout.strip()
    assert f"error: run {run_id} of task 'echo' is still DELAYED after 0.3 s" in result.stderr
    assert show_json(served, run_id)["status"] == "DELAYED"


@pytest.mark.slow
def test_replay_wait(served: Path) -> None:
    original, _ = triggered(run_cli(served, "trigger", "echo", '{"again": 1}', "--wait"))
    replay = run_cli(served, "runs", "replay", original, "--wait")
    assert replay.returncode == 0, replay.stderr
    new_id, output = triggered(replay)
    assert new_id != original
    assert output == {"echo": {"again": 1}}
    assert show_json(served, new_id)["replayed_from"] == original


@pytest.mark.slow
def test_scaffolded_examples_run(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "init").returncode == 0
    with background(tmp_path, "worker", "--executors", "1") as (_, output):
        output.wait_for(lambda lines: any(READY.search(line) for line in lines), "worker ready")
        hello = run_cli(tmp_path, "trigger", "hello-world", '{"message": "hi"}', "--wait")
        assert hello.returncode == 0, hello.stderr
        assert triggered(hello)[1]["echo"] == "hi"
        words = run_cli(tmp_path, "trigger", "count-words", '{"text": "a b c"}', "--wait")
        assert words.returncode == 0, words.stderr
        assert triggered(words)[1] == {"words": 3, "characters": 5}


@pytest.mark.slow
def test_dev_runs_tasks_and_reloads_on_change(tmp_path: Path) -> None:
    project = make_project(tmp_path, VERSIONED_TASK % "one", module="versioned.py")
    with background(project, "dev") as (dev, output):
        output.wait_for(lambda lines: READY.search("\n".join(lines)) is not None, "worker ready")
        banner = output.text
        assert "There is no dashboard yet" in banner
        assert "taskloom runs list" in banner
        assert "taskloom runs show RUN_ID" in banner
        assert "database: db/taskloom.db" in banner  # relative to the working directory

        first = run_cli(project, "trigger", "version", "--wait", "--timeout", "30")
        assert first.returncode == 0, f"{first.stderr}\n--- dev:\n{output.text}"
        assert triggered(first)[1] == {"version": "one"}

        (project / "trigger" / "versioned.py").write_text(VERSIONED_TASK % "number two")
        output.wait_for(lambda lines: sum(bool(READY.search(x)) for x in lines) >= 2, "reload")
        assert "versioned.py; restarting the worker" in output.text

        # The old worker stopped before the new one said it was ready: no stale code runs.
        second = run_cli(project, "trigger", "version", "--wait", "--timeout", "30")
        assert second.returncode == 0, f"{second.stderr}\n--- dev:\n{output.text}"
        assert triggered(second)[1] == {"version": "number two"}
        assert dev.poll() is None
    assert "taskloom dev stopped" in output.text
