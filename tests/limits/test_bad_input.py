"""Bad queue, machine and time options fail clearly, where they are given, and store nothing.

Definition time: `queue()` and `task()` raise before anything is registered. Trigger
time: `trigger()` raises before any run is written (the runs table is counted). Every
message names what was wrong: the task or queue, the value, and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskloom import queue, task, tasks
from taskloom.config import Config
from taskloom.errors import InvalidOptionError
from taskloom.runtime import registry
from taskloom.testing import TaskloomProject


def stored_runs(project: TaskloomProject) -> int:
    if not project.database_path.exists():
        return 0
    tables = project.query("SELECT name FROM sqlite_master WHERE name = 'runs'")
    return project.query("SELECT COUNT(*) FROM runs")[0][0] if tables else 0


def noop(payload: Any) -> None:
    return None


# -- definition time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"concurrency_limit": -1},
            r"concurrency_limit of queue 'q-bad' must be an integer "
            r"from 0 to 100000 \(or None for no limit\), got -1",
        ),
        ({"concurrency_limit": 2.5}, r"concurrency_limit of queue 'q-bad' .* got 2.5"),
        ({"concurrency_limit": "5"}, r"concurrency_limit of queue 'q-bad' .* got '5'"),
        ({"concurrency_limit": True}, r"concurrency_limit of queue 'q-bad' .* got True"),
        ({"concurrency_limit": 100_001}, r"from 0 to 100000 .* got 100001"),
        ({"total_concurrency_limit": -3}, r"total_concurrency_limit of queue 'q-bad' .* got -3"),
    ],
)
def test_a_bad_queue_limit_is_refused_at_declaration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        queue(name="q-bad", **kwargs)


def test_a_queue_needs_a_name_and_one_set_of_limits() -> None:
    for bad in ("", "   ", "tab\there", None):
        with pytest.raises(InvalidOptionError, match="a queue needs a non-empty name"):
            queue(name=bad)
    queue(name="q-twice", concurrency_limit=1)
    queue(name="q-twice", concurrency_limit=1)  # the same declaration again is fine
    with pytest.raises(InvalidOptionError, match="queue 'q-twice' is declared twice"):
        queue(name="q-twice", concurrency_limit=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": {"concurrency_limit": -1}}, r"concurrency_limit of queue 'task/t-bad' .* -1"),
        ({"queue": {"limit": 2}}, r"queue of task 't-bad' has unknown key\(s\) \['limit'\]"),
        ({"queue": "emails"}, r"queue of task 't-bad' must be queue\(...\) or a dict"),
        (
            {"machine": "huge"},
            r"machine of task 't-bad': unknown machine preset 'huge'; "
            r"valid presets are micro, small-1x, small-2x, medium-1x, medium-2x, large-1x, "
            r"large-2x",
        ),
        ({"machine": "smal-1x"}, r"unknown machine preset 'smal-1x' \(did you mean 'small-1x'"),
        ({"max_duration": 4}, r"max_duration of task 't-bad' must be at least 5 seconds, got 4"),
        ({"max_duration": "4s"}, r"max_duration of task 't-bad' must be at least 5 .* '4s'"),
        ({"max_duration": "long"}, r"max_duration of task 't-bad': expected"),
        ({"ttl": "forever"}, r"ttl of task 't-bad': expected .* got 'forever'"),
        ({"ttl": -10}, r"ttl of task 't-bad': expected .* got -10"),
        ({"retry": {"out_of_memory": {"machine": "giant"}}}, r"giant"),
    ],
)
def test_a_bad_task_option_is_refused_at_definition(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        task(id="t-bad", run=noop, **options)
    assert registry.get("t-bad") is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_duration", 4, r"expected a whole number of seconds >= 5"),
        ("machine", "huge", r"unknown machine preset 'huge'"),
        ("ttl", "soon", r"Config.ttl: expected"),
        ("environment_concurrency_limit", -1, r"expected an integer >= 0, got -1"),
    ],
)
def test_a_bad_config_value_is_refused(tmp_path: Path, key: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        Config(project_root=tmp_path, **{key: value})


# -- trigger time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"queue": "nope"},
            r"unknown queue 'nope' for a run of task 't-trig': declare it with "
            r"queue\(name='nope', ...\) in a task module \(known queues: ",
        ),
        ({"queue": 5}, r"queue of a run of task 't-trig' must be a queue name, got 5"),
        ({"queue": ""}, r"queue of a run of task 't-trig' must be a queue name, got ''"),
        (
            {"machine": "huge"},
            r"machine of a run of task 't-trig': unknown machine preset "
            r"'huge'",
        ),
        (
            {"max_duration": 4},
            r"max_duration of a run of task 't-trig' must be at least 5 "
            r"seconds, got 4",
        ),
        ({"max_duration": "0.05m"}, r"must be at least 5 seconds, got '0.05m'"),
        ({"max_duration": "abc"}, r"max_duration of a run of task 't-trig': expected"),
        ({"ttl": "abc"}, r"ttl of a run of task 't-trig': expected .* got 'abc'"),
        ({"delay": "1 hour"}, r"delay of a run of task 't-trig': expected"),
        ({"concurrency_key": ""}, r"concurrency_key of a run of task 't-trig' must be 1 to 512"),
        ({"concurrency_key": "k" * 513}, r"must be 1 to 512 printable characters"),
        ({"concurrency_key": True}, r"concurrency_key of a run of task 't-trig' must be a str"),
        ({"priority": -2}, r"priority of a run of task 't-trig' must be 0 or more seconds"),
    ],
)
def test_a_bad_trigger_option_stores_nothing(
    project: TaskloomProject, options: dict[str, Any], message: str
) -> None:
    queue(name="q-known", concurrency_limit=2)
    defined = task(id="t-trig", run=noop)
    with pytest.raises(InvalidOptionError, match=message):
        defined.trigger({"n": 1}, **options)
    with pytest.raises(InvalidOptionError, match=message):
        tasks.trigger("t-trig", {"n": 1}, **options)
    assert stored_runs(project) == 0
    # the same options with good values are accepted
    defined.trigger({"n": 1}, queue="q-known", machine="micro", max_duration=5, ttl="1m")
    assert stored_runs(project) == 1


def test_an_unknown_queue_lists_the_known_ones(project: TaskloomProject) -> None:
    from taskloom.engine.records import QueueDeclaration
    from workerfixtures import local_engine

    engine = local_engine()
    engine.ensure_schema()
    engine.workers.announce([], [QueueDeclaration("emails", "custom", 5, None)])
    defined = task(id="t-known", run=noop)
    defined.trigger(None, queue="emails")  # declared by a worker: accepted
    with pytest.raises(InvalidOptionError, match=r"\(known queues: emails\)"):
        defined.trigger(None, queue="email")
    assert stored_runs(project) == 1


@pytest.mark.parametrize(("text", "expected"), [("7", 7), (" 0 ", 0)])
def test_the_environment_cap_can_come_from_its_environment_variable(
    tmp_path: Path, text: str, expected: int
) -> None:
    from taskloom.config import load_config

    config = load_config(tmp_path, {"TASKLOOM_ENVIRONMENT_CONCURRENCY_LIMIT": text})
    assert config.environment_concurrency_limit == expected
    with pytest.raises(InvalidOptionError, match="TASKLOOM_ENVIRONMENT_CONCURRENCY_LIMIT: exp"):
        load_config(tmp_path, {"TASKLOOM_ENVIRONMENT_CONCURRENCY_LIMIT": "-1"})
