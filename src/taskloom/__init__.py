"""taskloom: durable background tasks for Python, with Trigger.dev's task model."""

from .errors import AbortTaskRunError as AbortTaskRunError
from .errors import CompleteTaskWithOutput as CompleteTaskWithOutput
from .errors import OutOfMemoryError as OutOfMemoryError
from .errors import RunFailedError as RunFailedError
from .errors import SubtaskUnwrapError as SubtaskUnwrapError
from .errors import TaskloomError as TaskloomError
from .errors import WaitpointTimeoutError as WaitpointTimeoutError
from .retry import Retry as Retry
from .sdk.client import configure as configure
from .sdk.context import Context as Context
from .sdk.handles import RunHandle as RunHandle
from .sdk.locals import locals as locals
from .sdk.logger import logger as logger
from .sdk.queues import Queue as Queue
from .sdk.queues import queue as queue
from .sdk.queues_api import queues as queues
from .sdk.runs import runs as runs
from .sdk.task import Task as Task
from .sdk.task import schema_task as schema_task
from .sdk.task import task as task
from .sdk.tasks_api import tasks as tasks
from .types import QueueDetails as QueueDetails
from .types import Run as Run
from .types import RunStatus as RunStatus

__version__ = "0.1.0"

__all__ = [
    "AbortTaskRunError",
    "CompleteTaskWithOutput",
    "Context",
    "OutOfMemoryError",
    "Queue",
    "QueueDetails",
    "Retry",
    "Run",
    "RunFailedError",
    "RunHandle",
    "RunStatus",
    "SubtaskUnwrapError",
    "Task",
    "TaskloomError",
    "WaitpointTimeoutError",
    "configure",
    "locals",
    "logger",
    "queue",
    "queues",
    "runs",
    "schema_task",
    "task",
    "tasks",
]
