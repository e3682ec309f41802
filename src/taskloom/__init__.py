"""taskloom: durable background tasks for Python, with Trigger.dev's task model."""

from .errors import AbortTaskRunError as AbortTaskRunError
from .errors import CompleteTaskWithOutput as CompleteTaskWithOutput
from .errors import InvalidOptionError as InvalidOptionError
from .errors import OutOfMemoryError as OutOfMemoryError
from .errors import PayloadError as PayloadError
from .errors import RunFailedError as RunFailedError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import StoreBusyError as StoreBusyError
from .errors import SubtaskUnwrapError as SubtaskUnwrapError
from .errors import TaskloomError as TaskloomError
from .errors import UnknownTaskError as UnknownTaskError
from .errors import WaitpointTimeoutError as WaitpointTimeoutError
from .retry import Retry as Retry
from .runtime.context import Context as Context
from .runtime.locals import locals as locals
from .runtime.logger import logger as logger
from .runtime.queues import Queue as Queue
from .runtime.queues import queue as queue
from .sdk.batch import batch as batch
from .sdk.client import configure as configure
from .sdk.handles import RunHandle as RunHandle
from .sdk.idempotency_keys import IdempotencyKey as IdempotencyKey
from .sdk.idempotency_keys import idempotency_keys as idempotency_keys
from .sdk.metadata import metadata as metadata
from .sdk.metadata import tags as tags
from .sdk.polling import RunTimeoutError as RunTimeoutError
from .sdk.queues import queues as queues
from .sdk.results import BatchHandle as BatchHandle
from .sdk.results import BatchResult as BatchResult
from .sdk.results import TaskRunResult as TaskRunResult
from .sdk.results import Token as Token
from .sdk.results import TokenDetails as TokenDetails
from .sdk.results import WaitTokenResult as WaitTokenResult
from .sdk.runs import runs as runs
from .sdk.task import Task as Task
from .sdk.task import schema_task as schema_task
from .sdk.task import task as task
from .sdk.task import tasks as tasks
from .sdk.wait import wait as wait
from .types import QueueDetails as QueueDetails
from .types import Run as Run
from .types import RunEvent as RunEvent
from .types import RunStatus as RunStatus

__version__ = "0.1.0"

__all__ = [
    "AbortTaskRunError",
    "BatchHandle",
    "BatchResult",
    "CompleteTaskWithOutput",
    "Context",
    "IdempotencyKey",
    "InvalidOptionError",
    "OutOfMemoryError",
    "PayloadError",
    "Queue",
    "QueueDetails",
    "Retry",
    "Run",
    "RunEvent",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunStatus",
    "RunTimeoutError",
    "StoreBusyError",
    "SubtaskUnwrapError",
    "Task",
    "TaskRunResult",
    "TaskloomError",
    "Token",
    "TokenDetails",
    "UnknownTaskError",
    "WaitTokenResult",
    "WaitpointTimeoutError",
    "batch",
    "configure",
    "idempotency_keys",
    "locals",
    "logger",
    "metadata",
    "queue",
    "queues",
    "runs",
    "schema_task",
    "tags",
    "task",
    "tasks",
    "wait",
]
