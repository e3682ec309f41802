"""Tests for taskloom.config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.config import (
    Config,
    configure,
    find_project_root,
    get_config,
    load_config,
    reset_config,
)
from taskloom.errors import InvalidOptionError
from taskloom.retry import Retry

NO_ENV: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TASKLOOM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    reset_config()
    yield
    reset_config()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FULL_TOML = """
dirs = ["tasks", "more"]
database_url = "sqlite:///data/jobs.db"
max_duration = 3600
machine = "large-1x"
ttl = "1h"
environment = "production"
payload_limit_bytes = 1000
output_limit_bytes = 2000

[retries]
enabled_in_dev = false
default = { max_attempts = 5, factor = 1.8, min_timeout_ms = 500, max_timeout_ms = 9000, \
randomize = false }

[worker]
concurrency = 7
executors = 2
lease_seconds = "45s"
shutdown_grace_seconds = 10
cancel_grace_seconds = 0
poll_interval_seconds = 0.25

[database]
synchronous = "normal"
busy_timeout_ms = 100
"""


def test_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path, NO_ENV)
    assert config == Config(project_root=tmp_path.resolve())
    assert config.dirs == ("trigger",)
    assert config.database_url == "sqlite:///.taskloom/taskloom.db"
    assert config.database_path == tmp_path.resolve() / ".taskloom" / "taskloom.db"
    assert config.max_duration is None
    assert config.machine == "small-1x"
    assert config.ttl is None
    assert config.retries_enabled_in_dev is True
    assert config.retries_default == Retry()
    assert config.environment == "DEVELOPMENT"
    assert config.is_development
    assert config.payload_limit_bytes == 3 * 1024 * 1024
    assert config.output_limit_bytes == 10 * 1024 * 1024
    assert config.sqlite_synchronous == "FULL"
    assert config.busy_timeout_ms == 5000
    assert config.worker_concurrency == 100
    assert config.executors is None
    assert (config.lease_seconds, config.shutdown_grace_seconds) == (30.0, 30.0)
    assert (config.cancel_grace_seconds, config.poll_interval_seconds) == (30.0, 1.0)


def test_every_file_key(tmp_path: Path) -> None:
    write(tmp_path / "taskloom.toml", FULL_TOML)
    config = load_config(tmp_path, NO_ENV)
    assert config.project_root == tmp_path.resolve()
    assert config.dirs == ("tasks", "more")
    assert config.database_path == tmp_path.resolve() / "data" / "jobs.db"
    assert config.max_duration == 3600
    assert config.machine == "large-1x"
    assert config.ttl == 3600.0
    assert config.environment == "PRODUCTION"
    assert not config.is_development
    assert (config.payload_limit_bytes, config.output_limit_bytes) == (1000, 2000)
    assert config.retries_enabled_in_dev is False
    assert config.retries_default == Retry(
        max_attempts=5, factor=1.8, min_timeout_ms=500, max_timeout_ms=9000, randomize=False
    )
    assert (config.worker_concurrency, config.executors) == (7, 2)
    assert config.lease_seconds == 45.0
    assert config.shutdown_grace_seconds == 10.0
    assert config.cancel_grace_seconds == 0.0
    assert config.poll_interval_seconds == 0.25
    assert (config.sqlite_synchronous, config.busy_timeout_ms) == ("NORMAL", 100)


def test_pyproject_table(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.taskloom]\nmachine = "micro"\n\n'
        "[tool.taskloom.worker]\nconcurrency = 3\n",
    )
    config = load_config(tmp_path, NO_ENV)
    assert (config.machine, config.worker_concurrency) == ("micro", 3)


def test_taskloom_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.taskloom]\nmachine = "micro"\nttl = 60\n')
    write(tmp_path / "taskloom.toml", 'machine = "large-2x"\n')
    config = load_config(tmp_path, NO_ENV)
    assert config.machine == "large-2x"
    assert config.ttl is None  # the pyproject table is not read at all


def test_root_discovery_walks_up(tmp_path: Path) -> None:
    write(tmp_path / "taskloom.toml", 'machine = "medium-1x"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path.resolve()
    config = load_config(deep, NO_ENV)
    assert config.project_root == tmp_path.resolve()
    assert config.machine == "medium-1x"


def test_root_discovery_skips_pyproject_without_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.taskloom]\n")
    inner = tmp_path / "pkg"
    write(inner / "pyproject.toml", '[project]\nname = "inner"\n')
    assert find_project_root(inner) == tmp_path.resolve()


def test_root_defaults_to_start_dir(tmp_path: Path) -> None:
    start = tmp_path / "nothing-here"
    start.mkdir()
    # tmp_path's ancestors hold no taskloom config on a sane machine.
    assert find_project_root(start) == start.resolve()
    assert find_project_root() == tmp_path.resolve()  # cwd, set by the fixture


def test_env_overrides_file(tmp_path: Path) -> None:
    write(tmp_path / "taskloom.toml", FULL_TOML)
    env = {
        "TASKLOOM_DATABASE_URL": "postgresql://u:p@db:5432/jobs",
        "TASKLOOM_DIRS": "jobs, other ,",
        "TASKLOOM_ENVIRONMENT": "staging",
        "TASKLOOM_CONCURRENCY": "12",
        "TASKLOOM_SYNCHRONOUS": "EXTRA",
        "TASKLOOM_MACHINE": "small-2x",
        "TASKLOOM_MAX_DURATION": "1h",
        "TASKLOOM_TTL": "0",
        "TASKLOOM_UNRELATED": "ignored",
    }
    config = load_config(tmp_path, env)
    assert config.database_url == "postgresql://u:p@db:5432/jobs"
    assert config.database_path is None
    assert config.dirs == ("jobs", "other")
    assert config.environment == "STAGING"
    assert config.worker_concurrency == 12
    assert config.sqlite_synchronous == "EXTRA"
    assert config.machine == "small-2x"
    assert config.max_duration == 3600
    assert config.ttl == 0
    assert config.executors == 2  # untouched file value


def test_empty_env_values_are_ignored(tmp_path: Path) -> None:
    config = load_config(tmp_path, {"TASKLOOM_MACHINE": "", "TASKLOOM_TTL": "  "})
    assert (config.machine, config.ttl) == ("small-1x", None)


def test_env_project_root(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "taskloom.toml", 'machine = "large-1x"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = load_config(elsewhere, {"TASKLOOM_PROJECT_ROOT": str(project)})
    assert config.project_root == project.resolve()
    assert config.machine == "large-1x"
    relative = load_config(tmp_path, {"TASKLOOM_PROJECT_ROOT": "project"})
    assert relative.project_root == project.resolve()


def test_env_project_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="TASKLOOM_PROJECT_ROOT"):
        load_config(tmp_path, {"TASKLOOM_PROJECT_ROOT": str(tmp_path / "missing")})


def test_overrides_win_over_env(tmp_path: Path) -> None:
    config = load_config(
        tmp_path,
        {"TASKLOOM_MACHINE": "micro", "TASKLOOM_CONCURRENCY": "5"},
        overrides={"machine": "large-2x", "retries_default": {"max_attempts": 9}},
    )
    assert config.machine == "large-2x"
    assert config.worker_concurrency == 5
    assert config.retries_default == Retry(max_attempts=9)


def test_database_path_forms(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    relative = Config(project_root=root, database_url="sqlite:///db/x.db")
    assert relative.database_path == root / "db" / "x.db"
    absolute = Config(project_root=root, database_url="sqlite:////var/data/x.db")
    assert absolute.database_path == Path("/var/data/x.db")
    assert Config(project_root=root, database_url="postgres://h/db").database_path is None


@pytest.mark.parametrize(
    "url",
    ["mysql://h/db", "sqlite://x.db", "sqlite:///", "sqlite:///dir/", "postgresql://", "", 5],
)
def test_bad_database_urls(tmp_path: Path, url: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        load_config(tmp_path, NO_ENV, overrides={"database_url": url})
    message = str(caught.value)
    assert "configure(database_url=...)" in message
    assert repr(url) in message
    assert "postgresql://" in message


def test_in_memory_sqlite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="in-memory"):
        load_config(tmp_path, {"TASKLOOM_DATABASE_URL": "sqlite:///:memory:"})


@pytest.mark.parametrize(
    ("toml", "key", "fragment"),
    [
        ("max_duration = 4\n", "max_duration", ">= 5"),
        ("max_duration = 7.5\n", "max_duration", "whole number"),
        ('machine = "huge"\n', "machine", "micro, small-1x"),
        ('ttl = "soon"\n', "ttl", "'1h30m'"),
        ('environment = "qa"\n', "environment", "DEVELOPMENT, STAGING, PRODUCTION, PREVIEW"),
        ("payload_limit_bytes = 0\n", "payload_limit_bytes", "an integer >= 1"),
        ("dirs = []\n", "dirs", "non-empty"),
        ("dirs = [1]\n", "dirs", "directory names"),
        ('[retries]\nenabled_in_dev = "yes"\n', "retries.enabled_in_dev", "true or false"),
        ("[retries]\ndefault = { max_attempts = 0 }\n", "retries.default", "from 1 to 250, got 0"),
        ("[retries]\ndefault = { maxAttempts = 2 }\n", "retries.default", "'maxAttempts'"),
        ("[worker]\nconcurrency = 0\n", "worker.concurrency", "an integer >= 1"),
        ("[worker]\nconcurrency = true\n", "worker.concurrency", "an integer >= 1"),
        ("[worker]\nexecutors = 0\n", "worker.executors", "an integer >= 1"),
        ("[worker]\nlease_seconds = 0\n", "worker.lease_seconds", "a duration > 0"),
        ("[worker]\ncancel_grace_seconds = -1\n", "worker.cancel_grace_seconds", "'1h30m'"),
        ("[worker]\npoll_interval_seconds = 0\n", "worker.poll_interval_seconds", "> 0"),
        ('[database]\nsynchronous = "OFF"\n', "database.synchronous", "FULL, NORMAL, EXTRA"),
        ("[database]\nbusy_timeout_ms = -1\n", "database.busy_timeout_ms", ">= 0"),
    ],
)
def test_bad_file_values_name_file_key_and_value(
    tmp_path: Path, toml: str, key: str, fragment: str
) -> None:
    path = write(tmp_path / "taskloom.toml", toml)
    with pytest.raises(InvalidOptionError) as caught:
        load_config(tmp_path, NO_ENV)
    message = str(caught.value)
    assert str(path) in message
    assert f"key '{key}'" in message
    assert fragment in message


def test_dirs_string_is_comma_separated(tmp_path: Path) -> None:
    write(tmp_path / "taskloom.toml", 'dirs = "jobs,trigger"\n')
    assert load_config(tmp_path, NO_ENV).dirs == ("jobs", "trigger")


def test_bad_pyproject_value_names_full_key(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.taskloom.worker]\nconcurrency = -3\n")
    with pytest.raises(InvalidOptionError) as caught:
        load_config(tmp_path, NO_ENV)
    assert f"{path}, key 'tool.taskloom.worker.concurrency'" in str(caught.value)
    assert "got -3" in str(caught.value)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("colour = 1\n", "colour"),
        ("[worker]\nthreads = 4\n", "worker.threads"),
        ("[retries]\nenabled = true\n", "retries.enabled"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("retries = 3\n", "retries"),
    ],
)
def test_unknown_file_keys_are_rejected(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path / "taskloom.toml", toml)
    with pytest.raises(InvalidOptionError) as caught:
        load_config(tmp_path, NO_ENV)
    assert str(path) in str(caught.value)
    assert f"'{key}'" in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "taskloom.toml", "machine = \n")
    with pytest.raises(InvalidOptionError, match="not valid TOML") as caught:
        load_config(tmp_path, NO_ENV)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("TASKLOOM_CONCURRENCY", "lots", "an integer >= 1, got 'lots'"),
        ("TASKLOOM_CONCURRENCY", "0", "an integer >= 1, got 0"),
        ("TASKLOOM_MAX_DURATION", "2s", ">= 5"),
        ("TASKLOOM_TTL", "-5m", "'-5m'"),
        ("TASKLOOM_MACHINE", "big", "'big'"),
        ("TASKLOOM_SYNCHRONOUS", "OFF", "'OFF'"),
        ("TASKLOOM_ENVIRONMENT", "qa", "'qa'"),
        ("TASKLOOM_DATABASE_URL", "redis://x", "'redis://x'"),
        ("TASKLOOM_DIRS", ",,", "non-empty"),
    ],
)
def test_bad_env_values_name_the_variable(
    tmp_path: Path, var: str, value: str, fragment: str
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        load_config(tmp_path, {var: value})
    assert f"environment variable {var}" in str(caught.value)
    assert fragment in str(caught.value)


def test_config_validates_when_built_directly(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match=r"Config\.worker_concurrency"):
        Config(project_root=tmp_path, worker_concurrency=0)
    config = Config(project_root=str(tmp_path), ttl="10m", environment="prod")  # type: ignore[arg-type]
    assert config.project_root == tmp_path
    assert config.ttl == 600.0
    assert config.environment == "PRODUCTION"


def test_configure_get_and_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "taskloom.toml", 'machine = "medium-2x"\n')
    monkeypatch.setenv("TASKLOOM_CONCURRENCY", "4")
    first = get_config()
    assert first.project_root == tmp_path.resolve()
    assert (first.machine, first.worker_concurrency) == ("medium-2x", 4)
    assert get_config() is first  # cached

    configured = configure(database_url="sqlite:///other.db", worker_concurrency=9)
    assert get_config() is configured
    assert configured.database_path == tmp_path.resolve() / "other.db"
    assert configured.worker_concurrency == 9
    assert configured.machine == "medium-2x"

    again = configure(machine="micro")  # overrides accumulate
    assert (again.machine, again.worker_concurrency) == ("micro", 9)
    assert again.database_url == "sqlite:///other.db"

    reset_config()
    fresh = get_config()
    assert (fresh.machine, fresh.worker_concurrency) == ("medium-2x", 4)


def test_configure_rejects_unknown_and_invalid_without_changing_anything() -> None:
    before = configure(machine="micro")
    with pytest.raises(InvalidOptionError) as caught:
        configure(databse_url="sqlite:///x.db")
    assert "databse_url" in str(caught.value)
    assert "database_url" in str(caught.value)
    with pytest.raises(InvalidOptionError, match=r"configure\(max_duration=\.\.\.\).*got 1"):
        configure(max_duration=1, machine="large-1x")
    assert get_config() == before


def test_configure_project_root(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "taskloom.toml", 'machine = "large-2x"\n')
    config = configure(project_root=project)
    assert config.project_root == project.resolve()
    assert config.machine == "large-2x"
    with pytest.raises(InvalidOptionError, match=r"configure\(project_root=\.\.\.\)"):
        configure(project_root=tmp_path / "missing")


def test_ttl_zero_and_max_duration_none() -> None:
    config = configure(ttl=0, max_duration=None)
    assert config.ttl == 0
    assert config.max_duration is None
    assert configure(ttl=None).ttl is None
