"""The Python shapes of varwatch's values, variables, sessions and events.

Values travel typed. In Python they are:

=============  ==========================================================
variable type  Python value
=============  ==========================================================
``float``      ``float`` (an ``int`` is accepted and converted)
``integer``    ``int`` (a whole ``float`` is accepted)
``string``     ``str``
``boolean``    ``bool``
``choice``     :class:`Choice` (a ``str``; a plain ``str`` is accepted)
``module``     :class:`Module` (a ``str``; a plain ``str`` is accepted)
``embedding``  ``tuple[float, ...]`` (a list or other sequence of numbers,
               or a 1-D numpy array, is accepted)
``tensor``     :class:`Tensor` (``shape`` and row-major ``data``; an N-D
               numpy array is accepted)
=============  ==========================================================
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
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


class VarType(str, Enum):
    """A variable's type."""

    FLOAT = "float"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    MODULE = "module"
    EMBEDDING = "embedding"
    TENSOR = "tensor"
    UNKNOWN = "unknown"
    """A type this client does not know (a newer server's)."""

    def __str__(self) -> str:
        return self.value


class Choice(str):
    """A value of a ``choice`` variable (one of its ``choices``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Choice({str.__repr__(self)})"


class Module(str):
    """A value of a ``module`` variable (a module name)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Module({str.__repr__(self)})"


@dataclass(frozen=True)
class Tensor:
    """A tensor value: its ``shape`` and its ``data`` in row-major order
    (``len(data)`` is the product of ``shape``; floats travel as 32-bit)."""

    shape: Tuple[int, ...]
    data: Tuple[float, ...]

    def __init__(self, shape: Sequence[int], data: Sequence[float]):
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "data", tuple(float(x) for x in data))

    @classmethod
    def from_numpy(cls, array: Any) -> "Tensor":
        """A tensor from a numpy array (any number of dimensions)."""
        return cls(array.shape, array.reshape(-1).tolist())

    def numpy(self) -> Any:
        """The tensor as a float32 numpy array of its shape (needs numpy)."""
        import numpy as np

        return np.asarray(self.data, dtype=np.float32).reshape(self.shape)


Value = Union[float, int, str, bool, Choice, Module, Tuple[float, ...], Tensor]


@dataclass
class Constraints:
    """What a variable's values must satisfy; ``None`` means "not set".
    Which apply depends on the type: ``min``/``max`` for numbers,
    ``min_length``/``max_length``/``allowed_values`` for strings,
    ``choices`` for a choice (required), ``allowed_modules`` for a module,
    ``dimensions`` for an embedding, ``shape`` for a tensor."""

    min: Optional[float] = None
    max: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    allowed_values: Optional[List[str]] = None
    choices: Optional[List[str]] = None
    allowed_modules: Optional[List[str]] = None
    dimensions: Optional[int] = None
    shape: Optional[List[int]] = None


@dataclass
class VarDef:
    """A variable's definition: what :meth:`Client.register` and
    :meth:`Client.import_variables` take and :meth:`Client.export` returns."""

    name: str
    type: VarType
    value: Any
    constraints: Constraints = field(default_factory=Constraints)
    metadata: Dict[str, str] = field(default_factory=dict)


@dataclass
class Variable:
    """One variable at one version."""

    id: str
    name: str
    type: VarType
    value: Any
    version: int
    revision: int
    constraints: Constraints
    metadata: Dict[str, str]
    created_at: Optional[_dt.datetime]
    updated_at: Optional[_dt.datetime]
    source: Optional[str]
    change_metadata: Dict[str, str]


@dataclass
class SessionInfo:
    """A session's facts."""

    id: str
    metadata: Dict[str, str]
    created_at: Optional[_dt.datetime]
    last_accessed: Optional[_dt.datetime]
    ttl: Optional[_dt.timedelta]
    revision: int
    variables: int
    watchers: int


@dataclass
class GetMany:
    """Several variables read as one consistent cut: every variable in
    ``found`` (keyed by the identifier as given, in request order) is in its
    state at ``revision``."""

    found: Dict[str, Variable]
    missing: List[str]
    revision: int


@dataclass
class BatchUpdate:
    """One item of a batch update (a ``(variable, value)`` tuple is
    accepted wherever this is)."""

    variable: str
    value: Any
    expected_version: Optional[int] = None


class EventKind(str, Enum):
    """What an event says happened."""

    INITIAL = "initial"
    """The variable's state when the watch started (or when it appeared, for
    a whole-session watch)."""
    CHANGED = "changed"
    """The variable changed to a new version."""
    DELETED = "deleted"
    """The variable was deleted; nothing more about it follows."""
    LAGGED = "lagged"
    """The watch did not receive versions ``lag[0]..=lag[1]``; the current
    state follows (unless the watch closes on overflow)."""
    SESSION_CLOSED = "session_closed"
    """The session was deleted, expired, or the server lost it. The watch's
    last event."""
    DISCONNECTED = "disconnected"
    """The watch gave up reconnecting (its retry limit), or its client was
    closed. Its last event."""

    def __str__(self) -> str:
        return self.value


from ._native import Event as Event  # noqa: E402  (defined in Rust: see _native.pyi)
