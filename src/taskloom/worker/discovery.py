"""Find and import task modules: `init.py` of each task directory first, then the rest."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

from ..config import Config
from ..errors import TaskloomError

SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", ".git", ".venv", "venv"})


class TaskImportError(TaskloomError):
    """A task module failed to import; carries the module name and its traceback."""

    def __init__(self, module: str, path: Path, details: str) -> None:
        self.module = module
        self.path = path
        self.details = details
        super().__init__(f"task module {module} ({path}) failed to import:\n{details}")


def _is_task_module(path: Path) -> bool:
    name = path.name
    if name.startswith(("test_", ".")) or name.endswith(("_test.py", ".test.py")):
        return False
    return name != "__init__.py" and not any(part in SKIPPED_DIRS for part in path.parts)


def module_name(root: Path, path: Path) -> str:
    """The dotted module name of a file under the project root."""
    relative = path.relative_to(root).with_suffix("")
    return ".".join(relative.parts)


def task_modules(config: Config) -> list[tuple[str, Path]]:
    """(module name, path) of every task module, `init.py` files first."""
    root = config.project_root.resolve()
    inits: list[tuple[str, Path]] = []
    modules: list[tuple[str, Path]] = []
    for directory in config.dirs:
        base = (root / directory).resolve()
        if not base.is_dir():
            continue
        init = base / "init.py"
        if init.is_file():
            inits.append((module_name(root, init), init))
        for path in sorted(base.rglob("*.py")):
            if path == init or not _is_task_module(path.relative_to(root)):
                continue
            modules.append((module_name(root, path), path))
    return inits + modules


def import_tasks(config: Config) -> list[str]:
    """Import every task module; TaskImportError names the first that fails."""
    root = str(config.project_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    imported = []
    for name, path in task_modules(config):
        try:
            importlib.import_module(name)
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            raise TaskImportError(name, path, traceback.format_exc()) from error
        imported.append(name)
    return imported
