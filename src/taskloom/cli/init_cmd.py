"""`taskloom init [DIR]`: scaffold a task directory with examples, and the config file."""

from __future__ import annotations

import argparse
import shlex
import tomllib
from importlib import resources
from pathlib import Path

from ..config import CONFIG_FILE
from . import common

# (template in taskloom/scaffold, destination relative to the project directory)
FILES = (
    ("example.py.tmpl", Path("trigger") / "example.py"),
    ("taskloom.toml.tmpl", Path(CONFIG_FILE)),
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `init`."""
    parser = commands.add_parser(
        "init",
        help="create trigger/example.py and taskloom.toml (never overwrites)",
    )
    parser.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        help="the project directory (default: --project, else the current directory)",
    )
    parser.set_defaults(handler=run_init, needs_config=False)


def template(name: str) -> str:
    """The text of a scaffold template shipped in `taskloom/scaffold`."""
    return resources.files("taskloom").joinpath("scaffold", name).read_text(encoding="utf-8")


def _pyproject_has_config(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    tool = data.get("tool")
    return isinstance(tool, dict) and "taskloom" in tool


def run_init(args: argparse.Namespace) -> int:
    """Handle `taskloom init`."""
    target = Path(args.directory or args.project or ".")
    target.mkdir(parents=True, exist_ok=True)
    for name, relative in FILES:
        destination = target / relative
        if relative.name == CONFIG_FILE and _pyproject_has_config(target):
            common.out(f"kept     pyproject.toml [tool.taskloom] (so no {CONFIG_FILE} is created)")
            continue
        if destination.exists():
            common.out(f"kept     {relative} (it already exists)")
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(template(name), encoding="utf-8")
        common.out(f"created  {relative}")
    steps = []
    if target.resolve() != Path.cwd().resolve():
        steps.append(f"cd {shlex.quote(str(target))}")
    steps += [
        "taskloom dev                     # run a worker; it reloads when you edit trigger/",
        """taskloom trigger hello-world '{"message": "hi"}' --wait   # in another terminal""",
    ]
    common.out("")
    common.out("Next steps:")
    for step in steps:
        common.out(f"  {step}")
    common.out("")
    common.out(common.dim("Add .taskloom/ (the local database) to your .gitignore."))
    return common.EXIT_OK
