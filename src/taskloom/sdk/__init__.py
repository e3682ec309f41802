"""What task code and callers import: task, wait, logger, metadata and friends."""
