"""Integration tests: real worker processes on a real SQLite file (all marked slow)."""
