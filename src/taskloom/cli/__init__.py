"""The `taskloom` command line: `taskloom init|dev|worker|migrate|trigger|runs`.

One module per command group; `app` holds the parser and the dispatch. The console
script and `python -m taskloom` both call `main`.
"""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
