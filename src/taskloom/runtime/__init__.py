"""What runs inside an attempt, shared by the public sdk and the worker: the task registry,
`Context`, hooks and the lifecycle, wait sequencing, the event sink, logging capture."""
