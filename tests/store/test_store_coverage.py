"""The store suite keeps up with the interface: every `Store` method is exercised here."""

from __future__ import annotations

import inspect
from pathlib import Path

from taskloom.store.base import Store


def test_every_store_method_is_called_by_the_suite() -> None:
    methods = sorted(
        name
        for name, member in inspect.getmembers(Store)
        if getattr(member, "__isabstractmethod__", False)
    )
    here = Path(__file__).parent
    suite = "\n".join(
        path.read_text(encoding="utf-8")
        for path in [*here.glob("test_store_*.py"), here / "storekit.py"]
        if path.name != Path(__file__).name
    )
    untested = [name for name in methods if f".{name}(" not in suite]
    assert methods, "the Store interface has no abstract methods?"
    assert untested == [], f"Store methods no test in tests/store calls: {untested}"
