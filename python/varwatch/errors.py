"""The exceptions a varwatch call raises, mapped from gRPC status codes.

Every exception is a :class:`VarwatchError` carrying the server's message
(``str(e)``) and its status code name (``e.code``). Catch the subclass for
the case you handle::

    try:
        client.update("lab", "t", 150.0)
    except varwatch.InvalidArgument as e:
        print("refused:", e)
"""
from __future__ import annotations

import re
from typing import Optional

import grpc

__all__ = [
    "VarwatchError",
    "NotFound",
    "AlreadyExists",
    "InvalidArgument",
    "VersionConflict",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "DeadlineExceeded",
    "Cancelled",
]


class VarwatchError(Exception):
    """Any error of a varwatch call: ``str(e)`` is the server's message,
    ``e.code`` the gRPC status code name (``"NOT_FOUND"``, ...)."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class NotFound(VarwatchError):
    """The session or a variable does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(VarwatchError):
    """A session or variable of that name exists already."""

    code = "ALREADY_EXISTS"


class InvalidArgument(VarwatchError):
    """The value, constraint, name or request is invalid; the message says which."""

    code = "INVALID_ARGUMENT"


class VersionConflict(VarwatchError):
    """The variable is not at the version the update expected.

    ``expected`` and ``current`` are the two versions (``None`` if the
    message did not carry them, as for some batch items).
    """

    code = "FAILED_PRECONDITION"

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message, code)
        m = re.search(r"expected version (\d+), current version is (\d+)", message)
        self.expected: Optional[int] = int(m.group(1)) if m else None
        self.current: Optional[int] = int(m.group(2)) if m else None


class ResourceExhausted(VarwatchError):
    """A server limit (value size, batch items, watches, connections)."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(VarwatchError):
    """The server requires a bearer token, or refused the one given."""

    code = "UNAUTHENTICATED"


class Unavailable(VarwatchError):
    """The server cannot be reached now (or is shutting down): retry later."""

    code = "UNAVAILABLE"


class DeadlineExceeded(VarwatchError):
    """The call did not complete within its deadline."""

    code = "DEADLINE_EXCEEDED"


class Cancelled(VarwatchError):
    """The call was cancelled (the client was closed)."""

    code = "CANCELLED"


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: VersionConflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}

_BY_NAME = {code.name: cls for code, cls in _BY_CODE.items()}


def from_rpc_error(e: grpc.RpcError) -> VarwatchError:
    """The exception for a failed call (``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    cls = _BY_CODE.get(code, VarwatchError)
    return cls(details, code.name if code is not None else "UNKNOWN")


def from_code_name(name: str, message: str) -> VarwatchError:
    """The exception for a status code given by name (a batch item's, a
    watch's end)."""
    return _BY_NAME.get(name, VarwatchError)(message, name)
