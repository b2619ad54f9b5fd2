import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VarType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VAR_TYPE_UNSPECIFIED: _ClassVar[VarType]
    VAR_TYPE_FLOAT: _ClassVar[VarType]
    VAR_TYPE_INTEGER: _ClassVar[VarType]
    VAR_TYPE_STRING: _ClassVar[VarType]
    VAR_TYPE_BOOLEAN: _ClassVar[VarType]
    VAR_TYPE_CHOICE: _ClassVar[VarType]
    VAR_TYPE_MODULE: _ClassVar[VarType]
    VAR_TYPE_EMBEDDING: _ClassVar[VarType]
    VAR_TYPE_TENSOR: _ClassVar[VarType]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_INITIAL: _ClassVar[EventKind]
    EVENT_KIND_CHANGED: _ClassVar[EventKind]
    EVENT_KIND_DELETED: _ClassVar[EventKind]
    EVENT_KIND_LAGGED: _ClassVar[EventKind]
    EVENT_KIND_SESSION_CLOSED: _ClassVar[EventKind]
VAR_TYPE_UNSPECIFIED: VarType
VAR_TYPE_FLOAT: VarType
VAR_TYPE_INTEGER: VarType
VAR_TYPE_STRING: VarType
VAR_TYPE_BOOLEAN: VarType
VAR_TYPE_CHOICE: VarType
VAR_TYPE_MODULE: VarType
VAR_TYPE_EMBEDDING: VarType
VAR_TYPE_TENSOR: VarType
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_INITIAL: EventKind
EVENT_KIND_CHANGED: EventKind
EVENT_KIND_DELETED: EventKind
EVENT_KIND_LAGGED: EventKind
EVENT_KIND_SESSION_CLOSED: EventKind

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Value(_message.Message):
    __slots__ = ("float_value", "integer_value", "string_value", "boolean_value", "choice_value", "module_value", "embedding_value", "tensor_value")
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    INTEGER_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_VALUE_FIELD_NUMBER: _ClassVar[int]
    CHOICE_VALUE_FIELD_NUMBER: _ClassVar[int]
    MODULE_VALUE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_VALUE_FIELD_NUMBER: _ClassVar[int]
    TENSOR_VALUE_FIELD_NUMBER: _ClassVar[int]
    float_value: float
    integer_value: int
    string_value: str
    boolean_value: bool
    choice_value: str
    module_value: str
    embedding_value: FloatVector
    tensor_value: Tensor
    def __init__(self, float_value: _Optional[float] = ..., integer_value: _Optional[int] = ..., string_value: _Optional[str] = ..., boolean_value: _Optional[bool] = ..., choice_value: _Optional[str] = ..., module_value: _Optional[str] = ..., embedding_value: _Optional[_Union[FloatVector, _Mapping]] = ..., tensor_value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class FloatVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[_Iterable[float]] = ...) -> None: ...

class Constraints(_message.Message):
    __slots__ = ("min", "max", "min_length", "max_length", "allowed_values", "choices", "allowed_modules", "dimensions", "shape", "has_shape")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_MODULES_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    HAS_SHAPE_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    min_length: int
    max_length: int
    allowed_values: _containers.RepeatedScalarFieldContainer[str]
    choices: _containers.RepeatedScalarFieldContainer[str]
    allowed_modules: _containers.RepeatedScalarFieldContainer[str]
    dimensions: int
    shape: _containers.RepeatedScalarFieldContainer[int]
    has_shape: bool
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., allowed_values: _Optional[_Iterable[str]] = ..., choices: _Optional[_Iterable[str]] = ..., allowed_modules: _Optional[_Iterable[str]] = ..., dimensions: _Optional[int] = ..., shape: _Optional[_Iterable[int]] = ..., has_shape: _Optional[bool] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("session", "ttl_ms", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session: str
    ttl_ms: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session: _Optional[str] = ..., ttl_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: str
    def __init__(self, session: _Optional[str] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session", "metadata", "created_at", "last_accessed", "ttl_ms", "revision", "variables", "watchers")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESSED_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    WATCHERS_FIELD_NUMBER: _ClassVar[int]
    session: str
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    last_accessed: _timestamp_pb2.Timestamp
    ttl_ms: int
    revision: int
    variables: int
    watchers: int
    def __init__(self, session: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_accessed: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl_ms: _Optional[int] = ..., revision: _Optional[int] = ..., variables: _Optional[int] = ..., watchers: _Optional[int] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sessions: _Optional[_Iterable[str]] = ...) -> None: ...

class Variable(_message.Message):
    __slots__ = ("id", "name", "type", "value", "constraints", "metadata", "version", "revision", "created_at", "updated_at", "source", "change_metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ChangeMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: VarType
    value: Value
    constraints: Constraints
    metadata: _containers.ScalarMap[str, str]
    version: int
    revision: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    source: str
    change_metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[VarType, str]] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., change_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterVariableRequest(_message.Message):
    __slots__ = ("session", "name", "type", "value", "constraints", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session: str
    name: str
    type: VarType
    value: Value
    constraints: Constraints
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[VarType, str]] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterVariableResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class VariableDefinition(_message.Message):
    __slots__ = ("name", "type", "value", "constraints", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: VarType
    value: Value
    constraints: Constraints
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[VarType, str]] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ImportVariablesRequest(_message.Message):
    __slots__ = ("session", "variables")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    session: str
    variables: _containers.RepeatedCompositeFieldContainer[VariableDefinition]
    def __init__(self, session: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[VariableDefinition, _Mapping]]] = ...) -> None: ...

class ImportVariablesResponse(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class VariableRequest(_message.Message):
    __slots__ = ("session", "variable")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    session: str
    variable: str
    def __init__(self, session: _Optional[str] = ..., variable: _Optional[str] = ...) -> None: ...

class GetVariablesRequest(_message.Message):
    __slots__ = ("session", "variables")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    session: str
    variables: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session: _Optional[str] = ..., variables: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVariablesResponse(_message.Message):
    __slots__ = ("found", "missing", "revision")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedCompositeFieldContainer[FoundVariable]
    missing: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, found: _Optional[_Iterable[_Union[FoundVariable, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class FoundVariable(_message.Message):
    __slots__ = ("identifier", "variable")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    variable: Variable
    def __init__(self, identifier: _Optional[str] = ..., variable: _Optional[_Union[Variable, _Mapping]] = ...) -> None: ...

class ListVariablesRequest(_message.Message):
    __slots__ = ("session", "pattern")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    session: str
    pattern: str
    def __init__(self, session: _Optional[str] = ..., pattern: _Optional[str] = ...) -> None: ...

class ListVariablesResponse(_message.Message):
    __slots__ = ("variables",)
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    variables: _containers.RepeatedCompositeFieldContainer[Variable]
    def __init__(self, variables: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ...) -> None: ...

class UpdateVariableRequest(_message.Message):
    __slots__ = ("session", "variable", "value", "expected_version", "source", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session: str
    variable: str
    value: Value
    expected_version: int
    source: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session: _Optional[str] = ..., variable: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., expected_version: _Optional[int] = ..., source: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpdateVariableResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class BatchItem(_message.Message):
    __slots__ = ("variable", "value", "expected_version")
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    variable: str
    value: Value
    expected_version: int
    def __init__(self, variable: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateVariablesRequest(_message.Message):
    __slots__ = ("session", "items", "atomic", "source", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    session: str
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    atomic: bool
    source: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, session: _Optional[str] = ..., items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ..., atomic: _Optional[bool] = ..., source: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("version", "error", "error_code")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    version: int
    error: str
    error_code: str
    def __init__(self, version: _Optional[int] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class UpdateVariablesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("create", "cancel", "heartbeat", "ack")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    create: WatchCreate
    cancel: WatchCancel
    heartbeat: Heartbeat
    ack: WatchAck
    def __init__(self, create: _Optional[_Union[WatchCreate, _Mapping]] = ..., cancel: _Optional[_Union[WatchCancel, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ack: _Optional[_Union[WatchAck, _Mapping]] = ...) -> None: ...

class WatchCreate(_message.Message):
    __slots__ = ("watch_id", "session", "variables", "whole_session", "include_initial", "resume_versions", "session_incarnation", "capacity", "coalesce", "throttle_ms")
    class ResumeVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    WATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    WHOLE_SESSION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_INITIAL_FIELD_NUMBER: _ClassVar[int]
    RESUME_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_INCARNATION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    COALESCE_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_MS_FIELD_NUMBER: _ClassVar[int]
    watch_id: int
    session: str
    variables: _containers.RepeatedScalarFieldContainer[str]
    whole_session: bool
    include_initial: bool
    resume_versions: _containers.ScalarMap[str, int]
    session_incarnation: int
    capacity: int
    coalesce: bool
    throttle_ms: int
    def __init__(self, watch_id: _Optional[int] = ..., session: _Optional[str] = ..., variables: _Optional[_Iterable[str]] = ..., whole_session: _Optional[bool] = ..., include_initial: _Optional[bool] = ..., resume_versions: _Optional[_Mapping[str, int]] = ..., session_incarnation: _Optional[int] = ..., capacity: _Optional[int] = ..., coalesce: _Optional[bool] = ..., throttle_ms: _Optional[int] = ...) -> None: ...

class WatchCancel(_message.Message):
    __slots__ = ("watch_id",)
    WATCH_ID_FIELD_NUMBER: _ClassVar[int]
    watch_id: int
    def __init__(self, watch_id: _Optional[int] = ...) -> None: ...

class WatchAck(_message.Message):
    __slots__ = ("watch_id", "revision")
    WATCH_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    watch_id: int
    revision: int
    def __init__(self, watch_id: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("kind", "variable_id", "variable_name", "version", "revision", "value", "old_value", "source", "metadata", "timestamp", "lag_first", "lag_last", "skipped")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_ID_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OLD_VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAG_FIRST_FIELD_NUMBER: _ClassVar[int]
    LAG_LAST_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    kind: EventKind
    variable_id: str
    variable_name: str
    version: int
    revision: int
    value: Value
    old_value: Value
    source: str
    metadata: _containers.ScalarMap[str, str]
    timestamp: _timestamp_pb2.Timestamp
    lag_first: int
    lag_last: int
    skipped: int
    def __init__(self, kind: _Optional[_Union[EventKind, str]] = ..., variable_id: _Optional[str] = ..., variable_name: _Optional[str] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., old_value: _Optional[_Union[Value, _Mapping]] = ..., source: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lag_first: _Optional[int] = ..., lag_last: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class SyncComplete(_message.Message):
    __slots__ = ("revision", "session_incarnation")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SESSION_INCARNATION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    session_incarnation: int
    def __init__(self, revision: _Optional[int] = ..., session_incarnation: _Optional[int] = ...) -> None: ...

class WatchEnd(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class WatchUpdate(_message.Message):
    __slots__ = ("watch_ids", "events", "group_incomplete", "sync_complete", "end")
    WATCH_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_INCOMPLETE_FIELD_NUMBER: _ClassVar[int]
    SYNC_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    watch_ids: _containers.RepeatedScalarFieldContainer[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    group_incomplete: bool
    sync_complete: SyncComplete
    end: WatchEnd
    def __init__(self, watch_ids: _Optional[_Iterable[int]] = ..., events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., group_incomplete: _Optional[bool] = ..., sync_complete: _Optional[_Union[SyncComplete, _Mapping]] = ..., end: _Optional[_Union[WatchEnd, _Mapping]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("updates", "heartbeat")
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[WatchUpdate]
    heartbeat: Heartbeat
    def __init__(self, updates: _Optional[_Iterable[_Union[WatchUpdate, _Mapping]]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...
