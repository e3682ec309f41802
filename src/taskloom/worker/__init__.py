"""The worker: a supervisor process and its warm executor child processes."""
