"""Conversions between the Python types (``types.py``) and the wire messages."""
from __future__ import annotations

import datetime as _dt
from types import MappingProxyType
from typing import Any, Dict, Optional

from ._proto import varwatch_pb2 as pb
from .types import (
    BatchUpdate,
    Choice,
    Constraints,
    Event,
    EventKind,
    Module,
    SessionInfo,
    Tensor,
    VarDef,
    Variable,
    VarType,
)

_TYPES = {
    VarType.UNKNOWN: pb.VAR_TYPE_UNSPECIFIED,
    VarType.FLOAT: pb.VAR_TYPE_FLOAT,
    VarType.INTEGER: pb.VAR_TYPE_INTEGER,
    VarType.STRING: pb.VAR_TYPE_STRING,
    VarType.BOOLEAN: pb.VAR_TYPE_BOOLEAN,
    VarType.CHOICE: pb.VAR_TYPE_CHOICE,
    VarType.MODULE: pb.VAR_TYPE_MODULE,
    VarType.EMBEDDING: pb.VAR_TYPE_EMBEDDING,
    VarType.TENSOR: pb.VAR_TYPE_TENSOR,
}
_TYPES_BACK = {v: k for k, v in _TYPES.items()}

KINDS = {
    pb.EVENT_KIND_INITIAL: EventKind.INITIAL,
    pb.EVENT_KIND_CHANGED: EventKind.CHANGED,
    pb.EVENT_KIND_DELETED: EventKind.DELETED,
    pb.EVENT_KIND_LAGGED: EventKind.LAGGED,
    pb.EVENT_KIND_SESSION_CLOSED: EventKind.SESSION_CLOSED,
}


def var_type_to(t: Any) -> int:
    try:
        return _TYPES[VarType(t)]
    except ValueError:
        raise ValueError(f"unknown variable type {t!r}; one of {[v.value for v in VarType]}") from None


def var_type_from(t: int) -> VarType:
    return _TYPES_BACK.get(t, VarType.UNKNOWN)


def _is_numpy(x: Any) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "ndim")


def value_to(x: Any) -> pb.Value:
    """A Python value as a typed wire value (see ``types.py`` for the
    mapping). The server converts between compatible types (an int for a
    float variable, a str for a choice)."""
    if isinstance(x, pb.Value):
        return x
    if isinstance(x, bool):
        return pb.Value(boolean_value=x)
    if _is_numpy(x):
        if x.ndim == 1:
            return pb.Value(embedding_value=pb.FloatVector(values=x.astype("float32").tolist()))
        return pb.Value(tensor_value=pb.Tensor(shape=list(x.shape), data=x.reshape(-1).tolist()))
    if type(x).__module__ == "numpy":  # a numpy scalar
        x = x.item()
        return value_to(x)
    if isinstance(x, int):
        return pb.Value(integer_value=x)
    if isinstance(x, float):
        return pb.Value(float_value=x)
    if isinstance(x, Choice):
        return pb.Value(choice_value=str(x))
    if isinstance(x, Module):
        return pb.Value(module_value=str(x))
    if isinstance(x, str):
        return pb.Value(string_value=x)
    if isinstance(x, Tensor):
        return pb.Value(tensor_value=pb.Tensor(shape=list(x.shape), data=list(x.data)))
    if isinstance(x, (list, tuple)):
        return pb.Value(embedding_value=pb.FloatVector(values=[float(v) for v in x]))
    raise TypeError(
        f"cannot send a {type(x).__name__} as a varwatch value "
        "(float, int, str, bool, Choice, Module, a list of floats, Tensor or a numpy array)"
    )


def value_from(v: pb.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "embedding_value":
        return tuple(v.embedding_value.values)
    if kind == "tensor_value":
        return Tensor(v.tensor_value.shape, v.tensor_value.data)
    if kind == "choice_value":
        return Choice(v.choice_value)
    if kind == "module_value":
        return Module(v.module_value)
    return getattr(v, kind)


def constraints_to(c: Optional[Constraints]) -> pb.Constraints:
    out = pb.Constraints()
    if c is None:
        return out
    if c.min is not None:
        out.min = float(c.min)
    if c.max is not None:
        out.max = float(c.max)
    if c.min_length is not None:
        out.min_length = int(c.min_length)
    if c.max_length is not None:
        out.max_length = int(c.max_length)
    if c.allowed_values is not None:
        out.allowed_values.extend(c.allowed_values)
    if c.choices is not None:
        out.choices.extend(c.choices)
    if c.allowed_modules is not None:
        out.allowed_modules.extend(c.allowed_modules)
    if c.dimensions is not None:
        out.dimensions = int(c.dimensions)
    if c.shape is not None:
        out.shape.extend(int(n) for n in c.shape)
        out.has_shape = True
    return out


def constraints_from(c: pb.Constraints) -> Constraints:
    return Constraints(
        min=c.min if c.HasField("min") else None,
        max=c.max if c.HasField("max") else None,
        min_length=c.min_length if c.HasField("min_length") else None,
        max_length=c.max_length if c.HasField("max_length") else None,
        allowed_values=list(c.allowed_values) or None,
        choices=list(c.choices) or None,
        allowed_modules=list(c.allowed_modules) or None,
        dimensions=c.dimensions if c.HasField("dimensions") else None,
        shape=list(c.shape) if c.has_shape else None,
    )


def time_from(ts: Any) -> Optional[_dt.datetime]:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return _dt.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=_dt.timezone.utc)


def session_from(s: pb.SessionInfo) -> SessionInfo:
    return SessionInfo(
        id=s.session,
        metadata=dict(s.metadata),
        created_at=time_from(s.created_at) if s.HasField("created_at") else None,
        last_accessed=time_from(s.last_accessed) if s.HasField("last_accessed") else None,
        ttl=_dt.timedelta(milliseconds=s.ttl_ms) if s.HasField("ttl_ms") else None,
        revision=s.revision,
        variables=s.variables,
        watchers=s.watchers,
    )


def variable_from(v: pb.Variable) -> Variable:
    return Variable(
        id=v.id,
        name=v.name,
        type=var_type_from(v.type),
        value=value_from(v.value),
        version=v.version,
        revision=v.revision,
        constraints=constraints_from(v.constraints),
        metadata=dict(v.metadata),
        created_at=time_from(v.created_at) if v.HasField("created_at") else None,
        updated_at=time_from(v.updated_at) if v.HasField("updated_at") else None,
        source=v.source if v.HasField("source") else None,
        change_metadata=dict(v.change_metadata),
    )


def definition_to(d: VarDef) -> pb.VariableDefinition:
    return pb.VariableDefinition(
        name=d.name,
        type=var_type_to(d.type),
        value=value_to(d.value),
        constraints=constraints_to(d.constraints),
        metadata=dict(d.metadata or {}),
    )


def definition_of(v: Variable) -> VarDef:
    return VarDef(v.name, v.type, v.value, v.constraints, dict(v.metadata))


def batch_item(u: Any) -> pb.BatchItem:
    if isinstance(u, BatchUpdate):
        item = pb.BatchItem(variable=u.variable, value=value_to(u.value))
        if u.expected_version is not None:
            item.expected_version = u.expected_version
        return item
    if isinstance(u, tuple) and len(u) in (2, 3):
        return batch_item(BatchUpdate(*u))
    raise TypeError(f"a batch item is a BatchUpdate or a (variable, value) tuple, not {u!r}")


def event_from(e: pb.WatchEvent) -> Optional[Event]:
    """``None`` for an event of a kind this client does not know."""
    kind = KINDS.get(e.kind)
    if kind is None:
        return None
    return Event(
        kind=kind,
        name=e.variable_name,
        id=e.variable_id,
        version=e.version,
        revision=e.revision,
        value=value_from(e.value) if e.HasField("value") else None,
        old_value=value_from(e.old_value) if e.HasField("old_value") else None,
        source=e.source if e.HasField("source") else None,
        metadata=MappingProxyType(dict(e.metadata)),
        timestamp=time_from(e.timestamp) if e.HasField("timestamp") else None,
        lag=(e.lag_first, e.lag_last) if kind is EventKind.LAGGED else None,
        skipped=e.skipped,
    )


def metadata(m: Optional[Dict[str, str]]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in (m or {}).items()}
