"""The store suite keeps up with the store: every statement of the session (and every
method of the `Store` interface) is exercised by it, directly or through the engine's
transactions that `StoreOps` runs."""

from __future__ import annotations

import inspect
from pathlib import Path

from taskloom.engine import cancelling, inserting, maintenance, metadata, ticking, waitpoints
from taskloom.store.base import Store
from taskloom.store.sql.session import Session


def test_every_session_method_is_called_by_the_suite() -> None:
    methods = sorted(
        name
        for name, member in inspect.getmembers(Session, inspect.isfunction)
        if not name.startswith("_")
        and member.__module__.startswith("taskloom.store.sql.")
        # helpers, and the dialect hooks the claim and run_list call
        and name not in {"sql", "run", "run_many", "scalar", "column"}
        and name not in {"claim_pairs_after", "list_tag_filter"}
    )
    here = Path(__file__).parent
    used = [
        *here.glob("test_store_*.py"),
        here / "storekit.py",
        here.parent / "storeops.py",
        *(
            Path(inspect.getfile(module))
            for module in (cancelling, inserting, maintenance, metadata, ticking, waitpoints)
        ),
    ]
    suite = "\n".join(path.read_text(encoding="utf-8") for path in used)
    untested = [name for name in methods if f".{name}(" not in suite]
    assert len(methods) > 40, f"the session has only {methods}?"
    assert untested == [], f"session methods neither the suite nor StoreOps calls: {untested}"


def test_every_store_method_is_called_by_the_suite() -> None:
    methods = sorted(
        name
        for name, member in inspect.getmembers(Store)
        if getattr(member, "__isabstractmethod__", False)
    )
    suite = (Path(__file__).parent.parent / "storeops.py").read_text(encoding="utf-8")
    suite += "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("*.py"))
    untested = [name for name in methods if f".{name}(" not in suite]
    assert untested == [], f"Store methods no test in tests/store calls: {untested}"
