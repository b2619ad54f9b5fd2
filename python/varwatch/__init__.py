"""varwatch for Python: a client of a varwatch server.

Sessions of typed, versioned variables, and watches that receive every
change — in order, with no gap and no duplicate; through a disconnection, an
exact ``LAGGED`` marker for what was missed and the latest state::

    import varwatch

    with varwatch.Client("127.0.0.1:50551") as client:
        client.get_or_create_session("lab")
        client.register("lab", "temperature", "float", 20.0, min=0.0, max=100.0)
        with client.watch("lab", ["temperature"]) as watch:
            client.update("lab", "temperature", 21.5)
            for event in watch:
                print(event.kind, event.name, event.value)
                if event.value == 21.5:
                    break

:class:`Client` is blocking; :class:`AsyncClient` is the same API for
asyncio (``async for event in client.watch(...)``). A :class:`WatchSet`
(:class:`AsyncWatchSet`) receives many watches in one thread (task).
Every call takes ``timeout=`` (seconds). Errors are
:class:`VarwatchError` subclasses with typed fields. The package binds the
Rust client of the varwatch repository (``varwatch._native``): one
implementation of the protocol for both languages.
"""
from .aio import AsyncClient, AsyncWatch, AsyncWatchSet
from .client import Client, Watch, WatchSet
from .errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    OutcomeUnknown,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    VarwatchError,
    VersionConflict,
)
from .types import (
    BatchUpdate,
    Choice,
    Constraints,
    Event,
    EventKind,
    GetMany,
    Module,
    SessionInfo,
    Tensor,
    VarDef,
    Variable,
    VarType,
)

from ._native import __version__

__all__ = [
    "Client",
    "Watch",
    "WatchSet",
    "AsyncClient",
    "AsyncWatch",
    "AsyncWatchSet",
    "VarwatchError",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "VersionConflict",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "DeadlineExceeded",
    "OutcomeUnknown",
    "Cancelled",
    "VarType",
    "Choice",
    "Module",
    "Tensor",
    "Constraints",
    "VarDef",
    "Variable",
    "SessionInfo",
    "GetMany",
    "BatchUpdate",
    "EventKind",
    "Event",
]
