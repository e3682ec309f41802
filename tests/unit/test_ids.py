"""Tests for taskloom.ids."""

from __future__ import annotations

import doctest
import os
import re
import threading
import time
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskloom import ids
from taskloom.errors import InvalidOptionError
from taskloom.ids import ULID_LENGTH, id_timestamp_ms, new_id

ID_PATTERN = re.compile(r"[a-z]+_[0-7][0-9A-HJKMNP-TV-Z]{25}")


def test_format() -> None:
    run_id = new_id("run")
    assert ID_PATTERN.fullmatch(run_id), run_id
    assert len(run_id) == len("run_") + ULID_LENGTH


def test_many_ids_are_unique_and_sorted() -> None:
    made = [new_id("run") for _ in range(50_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)


def test_prefixes_share_one_sequence() -> None:
    made = [new_id(prefix) for prefix in ("run", "batch", "run", "waitpoint") * 100]
    ulids = [item.rpartition("_")[2] for item in made]
    assert ulids == sorted(ulids)
    assert len(set(ulids)) == len(ulids)


def test_timestamp_round_trip() -> None:
    before = time.time_ns() // 1_000_000
    run_id = new_id("run")
    after = time.time_ns() // 1_000_000
    assert before <= id_timestamp_ms(run_id) <= after


def test_same_millisecond_increments_random_part(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = (time.time_ns() // 1_000_000 + 10_000) * 1_000_000
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    first, second = new_id("run"), new_id("run")
    assert id_timestamp_ms(first) == id_timestamp_ms(second) == frozen // 1_000_000
    assert _ulid_int(second) == _ulid_int(first) + 1


def test_clock_stepping_back_keeps_ids_increasing(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = (time.time_ns() // 1_000_000 + 20_000) * 1_000_000
    monkeypatch.setattr(time, "time_ns", lambda: ahead)
    first = new_id("run")
    monkeypatch.setattr(time, "time_ns", lambda: ahead - 5_000 * 1_000_000)
    second = new_id("run")
    assert second > first
    assert id_timestamp_ms(second) == ahead // 1_000_000


def test_random_overflow_moves_to_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    at = (time.time_ns() // 1_000_000 + 30_000) * 1_000_000
    monkeypatch.setattr(time, "time_ns", lambda: at)
    monkeypatch.setattr(os, "urandom", lambda n: b"\xff" * n)
    first = new_id("run")
    second = new_id("run")
    assert second > first
    assert id_timestamp_ms(second) == at // 1_000_000 + 1


def test_threads_never_collide() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(new_id("run") for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [item for out in results for item in out]
    assert len(set(everything)) == len(everything)
    assert all(out == sorted(out) for out in results)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_repeat_parent_ids() -> None:
    new_id("run")
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a multi-threaded process; this child only writes.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        os.write(write_end, new_id("run").encode())
        os._exit(0)
    os.close(write_end)
    parent_id = new_id("run")
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    os.waitpid(pid, 0)
    assert ID_PATTERN.fullmatch(child_id)
    assert child_id != parent_id
    # Same millisecond or not, the child's random part is fresh, not parent's + 1.
    assert abs(_ulid_int(child_id) - _ulid_int(parent_id)) > 1_000


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_id_timestamp_decodes_any_ulid(ms: int, rand: int) -> None:
    value = (ms << 80) | rand
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ulid = "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))
    assert id_timestamp_ms(f"x_{ulid}") == ms
    assert id_timestamp_ms(f"x_{ulid.lower()}") == ms


@pytest.mark.parametrize(
    "bad", ["", "run_", "run_123", "run_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "run_" + "U" * 26, None]
)
def test_id_timestamp_rejects_malformed(bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="taskloom id"):
        id_timestamp_ms(bad)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    assert doctest.testmod(ids).failed == 0


def _ulid_int(item: str) -> int:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for char in item.rpartition("_")[2]:
        value = value * 32 + alphabet.index(char)
    return value
