"""StoreOps: leader election and the task catalog."""

from __future__ import annotations

from storekit import T0, StoreFactory

from storeops import StoreOps
from taskloom.store.records import TaskDefinitionRecord

TTL = 10_000


def test_a_leader_is_exclusive_until_its_term_expires(store: StoreOps) -> None:
    assert store.leader_elect("maintenance", "a", T0, TTL)
    assert not store.leader_elect("maintenance", "b", T0 + 1, TTL)
    assert not store.leader_elect("maintenance", "b", T0 + TTL, TTL)  # the last instant of a's term
    assert store.leader_elect("maintenance", "b", T0 + TTL + 1, TTL)  # a's term is over
    assert not store.leader_elect("maintenance", "a", T0 + TTL + 2, TTL)


def test_the_holder_renews_its_term(store: StoreOps) -> None:
    assert store.leader_elect("maintenance", "a", T0, TTL)
    assert store.leader_elect("maintenance", "a", T0 + 8_000, TTL)  # renewed to T0 + 18 s
    assert not store.leader_elect("maintenance", "b", T0 + 15_000, TTL)
    assert store.leader_elect("maintenance", "b", T0 + 18_001, TTL)


def test_leaderships_are_independent_by_name(store: StoreOps) -> None:
    assert store.leader_elect("maintenance", "a", T0, TTL)
    assert store.leader_elect("scheduler", "b", T0, TTL)
    assert not store.leader_elect("scheduler", "a", T0, TTL)


def test_resign_frees_the_leadership_only_for_its_holder(store: StoreOps) -> None:
    assert store.leader_elect("maintenance", "a", T0, TTL)
    store.leader_resign("maintenance", "b")  # not the holder: no effect
    assert not store.leader_elect("maintenance", "b", T0 + 1, TTL)
    store.leader_resign("maintenance", "a")
    assert store.leader_elect("maintenance", "b", T0 + 2, TTL)
    store.leader_resign("never-held", "a")  # nothing to resign is fine


def test_two_connections_see_one_leader(store_factory: StoreFactory, store: StoreOps) -> None:
    other = store_factory.open()
    results = [
        s.leader_elect("maintenance", name, T0, TTL)
        for s, name in ((store, "a"), (other, "b"), (other, "a"), (store, "b"))
    ]
    assert results == [True, False, True, False]


def test_task_catalog_upsert_get_and_list(store: StoreOps) -> None:
    assert store.task_catalog_get("email") is None
    assert store.task_catalog_list() == []
    email = TaskDefinitionRecord("email", b'{"id":"email"}', "/app/trigger/email.py", T0)
    report = TaskDefinitionRecord("report", b'{"id":"report"}', None, T0)
    store.task_catalog_upsert([report, email])
    store.task_catalog_upsert([])

    assert store.task_catalog_get("email") == email
    assert store.task_catalog_get("report") == report
    assert store.task_catalog_list() == [email, report]  # by id

    newer = TaskDefinitionRecord("email", b'{"id":"email","v":2}', "/app/other.py", T0 + 5)
    store.task_catalog_upsert([newer])
    assert store.task_catalog_get("email") == newer
    assert store.task_catalog_list() == [newer, report]
