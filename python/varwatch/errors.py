"""The exceptions a varwatch call raises.

Every exception is a :class:`VarwatchError`: ``str(e)`` is the error's
message, ``e.code`` its status code name (``"NOT_FOUND"``, ...), ``e.kind``
the library's name for it (``"VersionConflict"``, ``"VariablesNotFound"``,
...), and its fields are typed attributes (``e.session``, ``e.variable``,
``e.expected``, ``e.current``, ...; ``None`` where they do not apply). They
come from the error itself — over the network, from the status's detail —
never from the message's text, and they are the same as the Rust library's
``Error`` fields. Catch the subclass for the case you handle::

    try:
        client.update("lab", "t", 150.0, expected_version=3)
    except varwatch.VersionConflict as e:
        print("the variable is at", e.current)
    except varwatch.InvalidArgument as e:
        print("refused:", e.reason)
"""
from __future__ import annotations

from typing import List, Optional, Tuple

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
    "OutcomeUnknown",
    "Cancelled",
]


class VarwatchError(Exception):
    """Any error of a varwatch call (see the module's documentation for its
    attributes)."""

    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        code: Optional[str] = None,
        *,
        kind: Optional[str] = None,
        session: Optional[str] = None,
        variable: Optional[str] = None,
        variables: Optional[List[str]] = None,
        name: Optional[str] = None,
        what: Optional[str] = None,
        reason: Optional[str] = None,
        expected: Optional[int] = None,
        current: Optional[int] = None,
        failures: Optional[List[Tuple[str, "VarwatchError"]]] = None,
        limit: Optional[int] = None,
        actual: Optional[int] = None,
        pattern: Optional[str] = None,
        operation: Optional[str] = None,
        address: Optional[str] = None,
        path: Optional[str] = None,
    ):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.kind: Optional[str] = kind
        """The library's name of the error (``"VersionConflict"``, ...)."""
        self.session: Optional[str] = session
        """The session the error is about."""
        self.variable: Optional[str] = variable
        """The variable (the identifier as given, or the name)."""
        self.variables: Optional[List[str]] = variables
        """Every unknown identifier of a request (``VariablesNotFound``)."""
        self.name: Optional[str] = name
        """A rejected session id or variable name (``InvalidName``)."""
        self.what: Optional[str] = what
        """What was measured or named (``"session id"``, ``"items in one batch"``)."""
        self.reason: Optional[str] = reason
        """Why the input was refused (the value and the rule it broke)."""
        self.expected: Optional[int] = expected
        """The version an update expected (``VersionConflict``)."""
        self.current: Optional[int] = current
        """The variable's current version (``VersionConflict``)."""
        self.failures: Optional[List[Tuple[str, VarwatchError]]] = failures
        """A rejected atomic batch or import: every failing item with its own error."""
        self.limit: Optional[int] = limit
        """A limit that was reached."""
        self.actual: Optional[int] = actual
        """What the request had, over ``limit``."""
        self.pattern: Optional[str] = pattern
        """A refused list pattern."""
        self.operation: Optional[str] = operation
        """The write whose outcome is unknown (``OutcomeUnknown``)."""
        self.address: Optional[str] = address
        """The address that could not be reached (``Unavailable``)."""
        self.path: Optional[str] = path
        """A durable store's directory whose files cannot be used (``Unavailable``)."""

    @property
    def message(self) -> str:
        """The error's message (``str(e)``)."""
        return str(self)


class NotFound(VarwatchError):
    """The session or a variable does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(VarwatchError):
    """A session or variable of that name exists already."""

    code = "ALREADY_EXISTS"


class InvalidArgument(VarwatchError):
    """The value, constraint, name or request is invalid; ``reason`` says why."""

    code = "INVALID_ARGUMENT"


class VersionConflict(VarwatchError):
    """The variable is not at the version the update expected: ``expected``
    and ``current`` are the two versions."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(VarwatchError):
    """A limit (value size, batch items, watches, connections, sessions):
    ``what``, ``limit`` and ``actual`` say which."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(VarwatchError):
    """The server requires a bearer token, or refused the one given."""

    code = "UNAUTHENTICATED"


class Unavailable(VarwatchError):
    """The server cannot be reached now (or is shutting down): retry later.
    ``address`` is the address that failed, ``reason`` the cause."""

    code = "UNAVAILABLE"


class DeadlineExceeded(VarwatchError):
    """The call did not complete within its deadline."""

    code = "DEADLINE_EXCEEDED"


class OutcomeUnknown(VarwatchError):
    """A write was sent but no answer came back (the connection failed, or
    the deadline passed, after it left): it may or may not have been applied.
    Read the state to learn which, or retry with ``expected_version``, which
    cannot apply twice. ``operation`` says which write."""

    code = "UNKNOWN"


class Cancelled(VarwatchError):
    """The call was cancelled."""

    code = "CANCELLED"
