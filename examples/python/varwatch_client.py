"""A small Python client for a varwatch gRPC server.

Generate the stubs first (run_tests.sh does it):

    python -m grpc_tools.protoc -I ../../proto --python_out=gen --pyi_out=gen \
        --grpc_python_out=gen ../../proto/varwatch/v1/varwatch.proto

Then, with a server running (cargo run --release --example grpc_server --features grpc):

    python varwatch_client.py 127.0.0.1:50551
"""

import asyncio
import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from varwatch.v1 import varwatch_pb2 as pb  # noqa: E402
from varwatch.v1 import varwatch_pb2_grpc as rpc  # noqa: E402

TYPES = {
    "float": pb.VAR_TYPE_FLOAT,
    "integer": pb.VAR_TYPE_INTEGER,
    "string": pb.VAR_TYPE_STRING,
    "boolean": pb.VAR_TYPE_BOOLEAN,
    "choice": pb.VAR_TYPE_CHOICE,
    "module": pb.VAR_TYPE_MODULE,
    "embedding": pb.VAR_TYPE_EMBEDDING,
    "tensor": pb.VAR_TYPE_TENSOR,
}

KINDS = {
    pb.EVENT_KIND_INITIAL: "initial",
    pb.EVENT_KIND_CHANGED: "changed",
    pb.EVENT_KIND_DELETED: "deleted",
    pb.EVENT_KIND_LAGGED: "lagged",
    pb.EVENT_KIND_SESSION_CLOSED: "session_closed",
}



# An event carries its value and its old value: with the server's default
# 4 MiB value limit a message can be over grpcio's default 4 MiB receive
# limit. No limit here (the server bounds what it sends).
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]

def to_value(var_type: str, x: Any) -> pb.Value:
    """A Python value as a typed wire value. Tensors are (shape, data)."""
    if var_type == "float":
        return pb.Value(float_value=float(x))
    if var_type == "integer":
        return pb.Value(integer_value=int(x))
    if var_type == "string":
        return pb.Value(string_value=str(x))
    if var_type == "boolean":
        return pb.Value(boolean_value=bool(x))
    if var_type == "choice":
        return pb.Value(choice_value=str(x))
    if var_type == "module":
        return pb.Value(module_value=str(x))
    if var_type == "embedding":
        return pb.Value(embedding_value=pb.FloatVector(values=list(x)))
    if var_type == "tensor":
        shape, data = x
        return pb.Value(tensor_value=pb.Tensor(shape=list(shape), data=list(data)))
    raise ValueError(f"unknown type {var_type!r}")


def from_value(v: pb.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    x = getattr(v, kind)
    if kind == "embedding_value":
        return list(x.values)
    if kind == "tensor_value":
        return (list(x.shape), list(x.data))
    return x


@dataclass
class Event:
    kind: str
    name: str
    id: str
    version: int
    revision: int
    value: Any = None
    old_value: Any = None
    source: Optional[str] = None
    lagged: Optional[tuple] = None


def event_of(e: pb.WatchEvent) -> Event:
    return Event(
        kind=KINDS.get(e.kind, "unknown"),
        name=e.variable_name,
        id=e.variable_id,
        version=e.version,
        revision=e.revision,
        value=from_value(e.value) if e.HasField("value") else None,
        old_value=from_value(e.old_value) if e.HasField("old_value") else None,
        source=e.source if e.HasField("source") else None,
        lagged=(e.lag_first, e.lag_last) if e.kind == pb.EVENT_KIND_LAGGED else None,
    )


class Client:
    """Blocking client: store operations and watches as iterators."""

    def __init__(self, addr: str, token: Optional[str] = None):
        self.channel = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self.stub = rpc.VarWatchStub(self.channel)
        # Sent with every call when the server requires a bearer token.
        self.md = [("authorization", f"Bearer {token}")] if token else None

    def close(self) -> None:
        self.channel.close()

    def create_session(self, session: str) -> pb.SessionInfo:
        return self.stub.CreateSession(pb.CreateSessionRequest(session=session), metadata=self.md)

    def register(self, session: str, name: str, var_type: str, value: Any, **constraints) -> str:
        c = pb.Constraints(**constraints) if constraints else None
        req = pb.RegisterVariableRequest(
            session=session, name=name, type=TYPES[var_type], value=to_value(var_type, value), constraints=c
        )
        return self.stub.RegisterVariable(req, metadata=self.md).id

    def get(self, session: str, variable: str) -> pb.Variable:
        return self.stub.GetVariable(pb.VariableRequest(session=session, variable=variable), metadata=self.md)

    def value(self, session: str, variable: str) -> Any:
        return from_value(self.get(session, variable).value)

    def update(self, session: str, variable: str, var_type: str, value: Any, *, expected_version=None, source=None) -> int:
        req = pb.UpdateVariableRequest(
            session=session,
            variable=variable,
            value=to_value(var_type, value),
            expected_version=expected_version,
            source=source,
        )
        return self.stub.UpdateVariable(req, metadata=self.md).version

    def watch(self, session: str, variables: Optional[List[str]] = None, include_initial: bool = True,
              heartbeat_s: float = 5.0) -> "Watch":
        return Watch(self.stub, session, variables, include_initial, heartbeat_s, self.md)


class Watch:
    """A remote watch as a blocking iterator of Events, on a watch stream of
    its own (watch id 1). `synced` becomes True once the initial states have
    all arrived."""

    def __init__(self, stub, session, variables, include_initial, heartbeat_s, metadata=None):
        self._outbox: "queue.Queue[Optional[pb.WatchRequest]]" = queue.Queue()
        create = pb.WatchCreate(
            watch_id=1,
            session=session,
            variables=variables or [],
            whole_session=not variables,
            include_initial=include_initial,
        )
        self._outbox.put(pb.WatchRequest(create=create))
        self._heartbeat_s = heartbeat_s
        self._call = stub.Watch(self._requests(), metadata=metadata)
        self._pending: List[Event] = []
        self.synced = False

    def _requests(self) -> Iterator[pb.WatchRequest]:
        seq = 0
        while True:
            try:
                msg = self._outbox.get(timeout=self._heartbeat_s)
            except queue.Empty:
                seq += 1
                msg = pb.WatchRequest(heartbeat=pb.Heartbeat(sequence=seq))
            if msg is None:
                return
            yield msg

    def __iter__(self):
        return self

    def _read(self) -> None:
        resp = next(self._call)  # raises StopIteration at the end
        for u in resp.updates:
            if u.HasField("end") and u.end.code != "OK":
                raise RuntimeError(f"watch ended: {u.end.code}: {u.end.message}")
            self._pending.extend(event_of(e) for e in u.events)
            if u.HasField("sync_complete"):
                self.synced = True

    def __next__(self) -> Event:
        while not self._pending:
            self._read()
        return self._pending.pop(0)

    def wait_synced(self) -> List[Event]:
        """Receives until the snapshot is complete; returns its events."""
        events = []
        while not self.synced or self._pending:
            if self._pending:
                events.append(self._pending.pop(0))
                continue
            self._read()
        return events

    def close(self) -> None:
        self._outbox.put(None)
        self._call.cancel()


async def watch_async(addr: str, session: str, variables: List[str], count: int,
                      token: Optional[str] = None) -> List[Event]:
    """Receives `count` events of a watch with asyncio (grpc.aio)."""
    md = [("authorization", f"Bearer {token}")] if token else None
    async with grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS) as channel:
        call = rpc.VarWatchStub(channel).Watch(metadata=md)
        await call.write(pb.WatchRequest(create=pb.WatchCreate(
            watch_id=1, session=session, variables=variables, include_initial=True)))
        events: List[Event] = []
        async for resp in call:
            for u in resp.updates:
                events.extend(event_of(e) for e in u.events)
            if len(events) >= count:
                break
        call.cancel()
        return events[:count]


def main(addr: str) -> None:
    token = os.environ.get("VARWATCH_TOKEN")
    client = Client(addr, token)
    session = f"py-demo-{os.getpid()}"
    client.create_session(session)
    client.register(session, "temperature", "float", 20.0, min=0.0, max=100.0)
    watch = client.watch(session, ["temperature"])
    for event in watch.wait_synced():
        print(f"{event.kind:8} {event.name} v{event.version} = {event.value}")

    def writer():
        for t in (21.0, 22.5, 24.0):
            client.update(session, "temperature", "float", t, source="python")

    threading.Thread(target=writer).start()
    for event in watch:
        print(f"{event.kind:8} {event.name} v{event.version} = {event.value} (from {event.source})")
        if event.value == 24.0:
            break
    watch.close()
    try:
        client.update(session, "temperature", "float", 150.0)
    except grpc.RpcError as e:
        print(f"refused: {e.code().name}: {e.details()}")
    print("async:", [e.value for e in asyncio.run(watch_async(addr, session, ["temperature"], 1, token))])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50551")
