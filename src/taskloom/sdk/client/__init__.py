"""The sdk's client: the seam between the public calls made outside a run and where they
are served (the local engine today, a taskloom server's HTTP API in remote mode)."""

from .current import client_for as client_for
from .current import configure as configure
from .current import current_client as current_client
from .current import reset as reset
from .current import use_client as use_client
from .local_client import LocalClient as LocalClient
from .protocol import BatchItem as BatchItem
from .protocol import Cancellation as Cancellation
from .protocol import Client as Client
from .protocol import MetadataOperation as MetadataOperation
from .protocol import RunQuery as RunQuery
from .protocol import TokenDetails as TokenDetails
from .protocol import TokenOptions as TokenOptions
from .protocol import TriggeredBatch as TriggeredBatch
from .protocol import TriggeredRun as TriggeredRun

__all__ = [
    "BatchItem",
    "Cancellation",
    "Client",
    "LocalClient",
    "MetadataOperation",
    "RunQuery",
    "TokenDetails",
    "TokenOptions",
    "TriggeredBatch",
    "TriggeredRun",
    "client_for",
    "configure",
    "current_client",
    "reset",
    "use_client",
]
