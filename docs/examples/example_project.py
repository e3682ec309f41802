"""Puts the example project on the path, for the `*_example.py` scripts beside this file.

The project is `project/`: its `taskloom.toml` and its `trigger/` package of task modules.
A worker imports those modules as `trigger.<name>`; a script that imports them too (to
call `.trigger()` on the task objects) must find `trigger` the same way. In your own
project you run scripts from the project root, and need none of this.
"""

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent / "project"

# The project root, unless the caller chose one (the docs tests point at a temporary database
# with TASKLOOM_DATABASE_URL and set this too).
os.environ.setdefault("TASKLOOM_PROJECT_ROOT", str(PROJECT))
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))
