"""The client side of the watch stream, as a state machine with no I/O.

Both clients (blocking, with a thread; asyncio, with tasks) drive one
:class:`Core` per connection: they feed it what the server sends and what the
user does, and send what it returns. It implements the protocol described in
``proto/varwatch/v1/varwatch.proto`` exactly as the Rust client does
(``src/transport/mux.rs`` and ``upstream.rs``):

* Every watch of a client is on one stream, with an id the client chooses;
  identical subscriptions share one watch on the wire (an *upstream*), and
  each user-facing watch (a *downstream*) has its own bounded queue.
* Events come in groups (one revision); a group cut by a full message
  (``group_incomplete``) is held until its end arrives. A group is applied
  to the upstream's state (the latest event of each variable) and handed
  whole to every downstream with room; one without room starts *lagging*
  and, once its user has drained it, catches up from the upstream's state by
  its overflow policy (``Lagged`` markers then current states, or coalesced
  states, or the markers and the end).
* Apply is idempotent: anything at or below a version the upstream has is
  dropped. After a reconnect every upstream is created again with the
  versions it has (a resume by id) and its session incarnation.

Nothing here blocks or touches the network; the caller serialises access
(a lock, or one event loop).
"""
from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Deque, Dict, List, Optional, Tuple

from . import _convert
from ._proto import varwatch_pb2 as pb
from .errors import VarwatchError, from_code_name
from .types import Event, EventKind

__all__ = ["Config", "Subscription", "Overflow", "Down", "Core", "ENDED"]


class _Ended:
    def __repr__(self) -> str:
        return "ENDED"


ENDED = _Ended()
"""What :meth:`Core.recv` returns once a watch is over and drained."""


@dataclass
class Config:
    """Settings of a client's watches (see :class:`varwatch.Client`)."""

    buffer: int = 1024
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    max_failures: Optional[int] = None


@dataclass(frozen=True)
class Subscription:
    """What a watch follows and how (the server-side part)."""

    session: str
    variables: Optional[Tuple[str, ...]]  # None: the whole session
    capacity: int = 0
    coalesce: bool = False
    throttle_ms: Optional[int] = None

    def key(self) -> tuple:
        variables = None if self.variables is None else tuple(sorted(set(self.variables)))
        return (self.session, variables, self.capacity, self.coalesce, self.throttle_ms)


class Overflow(Enum):
    """What a watch does when its queue has no room for a group."""

    RESYNC = "resync"
    COALESCE = "coalesce"
    CLOSE = "close"


class Down:
    """A user's watch: its queue and what it has seen. Created by the
    client; ``notify`` is called (under the caller's serialisation) when
    there is something new to receive."""

    def __init__(self, capacity: int, overflow: Overflow, include_initial: bool, notify: Callable[[], None]):
        self.capacity = max(1, capacity)
        self.overflow = overflow
        self.include_initial = include_initial
        self.notify = notify
        self.queue: Deque[Event] = deque()
        self.seen: Dict[str, int] = {}
        self.lagging = False
        self.done = False
        self.taken = 0  # one past the revision of the last event taken
        self.overflows = 0
        # Set once the watch is attached (or failed to be).
        self.upstream: Optional[int] = None
        self.key: Optional[int] = None
        # The upstream it follows, kept after the upstream ends (so that a
        # lagging watch still catches up and gets the end).
        self.up: Optional["_Upstream"] = None
        self.error: Optional[VarwatchError] = None
        self.released = False
        # Set by a receiver about to wait: only then is `notify` worth
        # calling (the common fan-out case has nobody waiting).
        self.waiting = False

    def wake(self) -> None:
        if self.waiting:
            self.waiting = False
            self.notify()

    def push(self, e: Event) -> None:
        if e.kind is EventKind.DELETED:
            self.seen.pop(e.id, None)
        elif e.kind not in (EventKind.SESSION_CLOSED, EventKind.DISCONNECTED):
            self.seen[e.id] = e.version
        self.queue.append(e)


def _as_state(e: Event, kind: EventKind, revision: int, skipped: int = 0, lag=None) -> Event:
    return Event(
        kind=kind,
        name=e.name,
        id=e.id,
        version=lag[1] if lag else e.version,
        revision=revision,
        value=e.value,
        old_value=e.old_value,
        source=e.source,
        metadata=e.metadata,
        timestamp=e.timestamp,
        lag=lag,
        skipped=skipped,
    )


def _disconnected() -> Event:
    return Event(kind=EventKind.DISCONNECTED, name="", id="", version=0, revision=0)


def _session_closed() -> Event:
    return Event(kind=EventKind.SESSION_CLOSED, name="", id="", version=0, revision=0)


class _Upstream:
    """One watch on the wire and the downstreams that share it."""

    def __init__(self, sub: Subscription, backoff: float):
        self.sub = sub
        self.state: Dict[str, Event] = {}
        self.revision = 0
        self.end: Optional[Tuple[Optional[Event]]] = None
        self.downs: Dict[int, Down] = {}
        self.next_down = 0
        self.waiting: List[Down] = []
        self.phase = "creating"  # creating | live | retry
        self.retry_at = 0.0
        self.synced_once = False
        self.incarnation: Optional[int] = None
        self.held: List[Event] = []
        self.acked = 0
        self.backoff = backoff
        self.refusals = 0
        self.reconnects = 0
        # Some entry of `state` is a deletion (so `_prune` has work).
        self.tombstones = False

    # ----- state ---------------------------------------------------------

    def is_news(self, e: Event) -> bool:
        if e.kind in (EventKind.SESSION_CLOSED, EventKind.DISCONNECTED):
            return True
        s = self.state.get(e.id)
        return s is None or e.version > s.version

    def apply_group(self, group: List[Event]) -> None:
        if not group:
            return
        closing = None
        states = []
        state = self.state
        for e in group:
            kind = e.kind
            if kind is EventKind.SESSION_CLOSED:
                closing = e
                continue
            states.append(e)
            if kind is EventKind.LAGGED:
                continue  # the state that follows a marker is what counts
            if kind is EventKind.DELETED:
                self.tombstones = True
            state[e.id] = e
        if group[0].revision > self.revision:
            self.revision = group[0].revision
        n = len(states)
        plain = all(e.kind is EventKind.CHANGED or e.kind is EventKind.INITIAL for e in states)
        for d in self.downs.values():
            if d.lagging or d.done:
                continue
            queue = d.queue
            if not queue or len(queue) + n <= d.capacity:
                if plain:
                    seen = d.seen
                    for e in states:
                        seen[e.id] = e.version
                        queue.append(e)
                else:
                    for e in states:
                        d.push(e)
            else:
                d.lagging = True
                d.overflows += 1
            if d.waiting:
                d.wake()
        if self.tombstones:
            self._prune()
        if closing is not None:
            self.finish(closing)

    def _prune(self) -> None:
        """Drops deleted variables that no downstream still has."""
        gone = [
            i
            for i, e in self.state.items()
            if e.kind is EventKind.DELETED and not any(i in d.seen for d in self.downs.values())
        ]
        for i in gone:
            del self.state[i]
        self.tombstones = any(e.kind is EventKind.DELETED for e in self.state.values())

    def finish(self, last: Optional[Event]) -> None:
        if self.end is not None:
            return
        for d in self.downs.values():
            if not d.lagging and not d.done:
                if last is not None:
                    d.queue.append(last)
                d.done = True
            d.wake()
        self.end = (last,)

    def attach(self, d: Down) -> int:
        live = sorted((e for e in self.state.values() if e.kind is not EventKind.DELETED), key=lambda e: e.id)
        for e in live:
            if d.include_initial:
                d.push(_as_state(e, EventKind.INITIAL, self.revision))
            else:
                d.seen[e.id] = e.version
        if self.end is not None:
            if self.end[0] is not None:
                d.queue.append(self.end[0])
            d.done = True
        key = self.next_down
        self.next_down += 1
        self.downs[key] = d
        d.up = self
        return key

    def taken(self) -> int:
        return min((d.taken for d in self.downs.values()), default=0)

    def recv(self, d: Down):
        if not d.queue and d.lagging:
            self._catch_up(d)
            d.lagging = False
            if self.end is not None:
                if self.end[0] is not None:
                    d.queue.append(self.end[0])
                d.done = True
        if d.queue:
            e = d.queue.popleft()
            d.taken = max(d.taken, e.revision + 1)
            return e
        return ENDED if d.done else None

    def _catch_up(self, d: Down) -> None:
        group: List[Event] = []
        for i in sorted(self.state):
            e = self.state[i]
            deleted = e.kind is EventKind.DELETED
            if i in d.seen:
                first = d.seen[i] + 1
            elif deleted:
                continue  # met and gone while it lagged
            else:
                first = 0
            if e.version < first:
                continue
            kind = EventKind.DELETED if deleted else (EventKind.CHANGED if i in d.seen else EventKind.INITIAL)
            if d.overflow is Overflow.COALESCE:
                group.append(_as_state(e, kind, self.revision, skipped=e.version - first))
            elif d.overflow is Overflow.RESYNC:
                if e.version > first:
                    group.append(_as_state(e, EventKind.LAGGED, self.revision, lag=(first, e.version - 1)))
                group.append(_as_state(e, kind, self.revision))
            else:  # CLOSE: the skipped versions (the state too), a deletion as itself
                last = e.version - 1 if deleted else e.version
                if last >= first:
                    group.append(_as_state(e, EventKind.LAGGED, self.revision, lag=(first, last)))
                if deleted:
                    group.append(_as_state(e, EventKind.DELETED, self.revision))
        for e in group:
            d.push(e)
        if d.overflow is Overflow.CLOSE:
            d.done = True

    def resume_versions(self) -> Dict[str, int]:
        return {i: e.version for i, e in self.state.items() if e.kind is not EventKind.DELETED}

    def create(self, watch_id: int) -> pb.WatchRequest:
        """The create message: the user's subscription, or once synced a
        resume by id from the versions held, in the same incarnation."""
        sub = self.sub
        c = pb.WatchCreate(
            watch_id=watch_id,
            session=sub.session,
            include_initial=True,  # the upstream's state needs every variable
            capacity=sub.capacity,
            coalesce=sub.coalesce,
        )
        if sub.throttle_ms:
            c.throttle_ms = sub.throttle_ms
        if self.synced_once:
            resume = self.resume_versions()
            if sub.variables is None:
                c.whole_session = True
            else:
                # By id, never by name: a name may now be another variable's.
                c.variables.extend(sorted(resume))
            c.resume_versions.update(resume)
            if self.incarnation is not None:
                c.session_incarnation = self.incarnation
        elif sub.variables is None:
            c.whole_session = True
        else:
            c.variables.extend(sub.variables)
        return pb.WatchRequest(create=c)


def _complete_groups(held: List[Event], events: List[Event], incomplete: bool) -> List[Event]:
    """The complete groups among ``held`` and ``events``; the rest (the last
    group, when the update said ``incomplete``) stays in ``held``."""
    if not events:
        return []
    allev = held + events
    held.clear()
    if incomplete:
        label = allev[-1].revision
        keep = len(allev)
        while keep > 0 and allev[keep - 1].revision == label:
            keep -= 1
        held.extend(allev[keep:])
        allev = allev[:keep]
    return allev


def _groups(events: List[Event]):
    start = 0
    for i in range(1, len(events) + 1):
        if i == len(events) or events[i].revision != events[start].revision:
            yield events[start:i]
            start = i


def jittered(delay: float) -> float:
    """``delay`` scaled by a random factor in [0.5, 1.5)."""
    return delay * (0.5 + random.random())


class Core:
    """The watch stream's state for one connection; see the module docs."""

    def __init__(self, config: Config):
        self.config = config
        self.upstreams: Dict[int, _Upstream] = {}
        self.by_key: Dict[tuple, int] = {}
        self.next_id = 1
        self.connected = False
        self.heard_any = False
        self.healthy = False
        self.last_heard = time.monotonic()
        self.sequence = 0
        self.failures = 0
        self.backoff = config.backoff_initial
        self.heartbeats = 0

    # ----- the user's side -------------------------------------------------

    def watch(self, sub: Subscription, d: Down) -> List[pb.WatchRequest]:
        """Adds a watch. It is attached at once to an identical synced
        upstream (``d.upstream`` set); otherwise it waits for the first
        ``sync_complete``. Returns what to send."""
        key = sub.key()
        uid = self.by_key.get(key)
        u = self.upstreams.get(uid) if uid is not None else None
        if u is not None and u.end is None:
            if u.synced_once:
                d.key = u.attach(d)
                d.upstream = uid
                d.notify()
            else:
                u.waiting.append(d)
            return []
        uid = self.next_id
        self.next_id += 1
        u = _Upstream(sub, self.config.backoff_initial)
        u.waiting.append(d)
        self.upstreams[uid] = u
        self.by_key[key] = uid
        return [u.create(uid)] if self.connected else []

    def release(self, uid: Optional[int], key: Optional[int], d: Optional[Down] = None) -> List[pb.WatchRequest]:
        """A watch was closed (or collected): it ends at once (a receiver
        waiting on it is woken). Returns the cancel to send when it was the
        last of its upstream."""
        if d is not None:
            d.released = True
            d.queue.clear()
            d.notify()
        u = self.upstreams.get(uid) if uid is not None else None
        if u is None and d is not None:
            # Still waiting for its first snapshot?
            for i, w in list(self.upstreams.items()):
                if d in w.waiting:
                    uid, u = i, w
                    break
        if u is None:
            return []
        if key is not None:
            u.downs.pop(key, None)
        if d is not None and d in u.waiting:
            u.waiting.remove(d)
        if u.tombstones:
            u._prune()
        if u.downs or u.waiting:
            return []
        self._remove(uid)
        return [pb.WatchRequest(cancel=pb.WatchCancel(watch_id=uid))] if self.connected else []

    def abandon(self, d: Down) -> List[pb.WatchRequest]:
        """A watch gave up waiting for its first snapshot (its deadline, a
        cancelled task, an interrupt), or was attached meanwhile."""
        return self.release(d.upstream, d.key, d)

    def recv(self, d: Down):
        """The watch's next event, ``None`` if there is none now, or
        :data:`ENDED` (also once the watch has been released)."""
        if d.released:
            return ENDED
        if d.up is None:
            return ENDED if d.error is not None else None
        return d.up.recv(d)

    def ended(self, d: Down) -> bool:
        """Whether the watch is over and drained (or released, or failed)."""
        if d.released or d.error is not None:
            return True
        return d.done and not d.queue and not d.lagging

    def close_all(self, error: VarwatchError) -> None:
        """The client is closing: every watch ends with ``DISCONNECTED``
        (and one still opening fails with ``error``)."""
        for uid in list(self.upstreams):
            self._end(uid, _disconnected(), error)

    def is_idle(self) -> bool:
        return not self.upstreams

    def reconnects(self, d: Down) -> int:
        u = self.upstreams.get(d.upstream) if d.upstream is not None else None
        return u.reconnects if u is not None else 0

    # ----- the stream's side -----------------------------------------------

    def on_connect(self) -> List[pb.WatchRequest]:
        """A new stream: every upstream is created on it (resuming those
        that have synced)."""
        self.connected = True
        self.heard_any = False
        self.healthy = False
        self.last_heard = time.monotonic()
        out = []
        for uid, u in self.upstreams.items():
            u.held.clear()
            if u.synced_once:
                u.reconnects += 1
            u.phase = "creating"
            u.acked = 0
            out.append(u.create(uid))
        return out

    @staticmethod
    def decode(resp: pb.WatchResponse) -> tuple:
        """The wire message as the core applies it, converted once (and
        outside any lock): (heartbeat?, [(watch ids, events, incomplete,
        sync, end)])."""
        updates = []
        for upd in resp.updates:
            events = [e for e in (_convert.event_from(x) for x in upd.events) if e is not None]
            updates.append(
                (
                    list(upd.watch_ids),
                    events,
                    upd.group_incomplete,
                    upd.sync_complete if upd.HasField("sync_complete") else None,
                    upd.end if upd.HasField("end") else None,
                )
            )
        return resp.HasField("heartbeat"), updates

    def on_response(self, resp: pb.WatchResponse) -> List[pb.WatchRequest]:
        return self.apply(self.decode(resp))

    def apply(self, decoded: tuple) -> List[pb.WatchRequest]:
        """Applies a decoded message; returns what to send."""
        heartbeat, updates = decoded
        self.last_heard = time.monotonic()
        self.heard_any = True
        if heartbeat:
            self.heartbeats += 1
        out: List[pb.WatchRequest] = []
        for ids, events, incomplete, sync, end in updates:
            # A shared update is the same for each of its watches.
            for uid in ids:
                out.extend(self._update(uid, events, incomplete, sync, end))
        return out

    def _update(self, uid: int, events: List[Event], incomplete: bool, sync, end) -> List[pb.WatchRequest]:
        u = self.upstreams.get(uid)
        if u is None:
            return []  # a late update of a cancelled watch
        if u.held or incomplete:
            groups = _groups(_complete_groups(u.held, events, incomplete))
        elif not events:
            groups = ()
        elif events[0].revision == events[-1].revision:
            groups = (events,)  # the common case: one group, whole
        else:
            groups = _groups(events)
        is_news = u.is_news
        for group in groups:
            news = [e for e in group if is_news(e)]
            u.apply_group(news)
            if u.sub.variables is not None and any(e.kind is EventKind.DELETED for e in news):
                # It follows fewer variables than its subscription names: a
                # new identical watch must not join it (it would miss a
                # variable registered again under a name, or not be told
                # that a name is unknown).
                if self.by_key.get(u.sub.key()) == uid:
                    del self.by_key[u.sub.key()]
        if sync is not None:
            u.synced_once = True
            u.refusals = 0
            u.incarnation = sync.session_incarnation
            u.phase = "live"
            u.backoff = self.config.backoff_initial
            self.healthy = True
            for d in u.waiting:
                d.key = u.attach(d)
                d.upstream = uid
                d.notify()
            u.waiting.clear()
        if u.end is not None:
            # Its last event came (SESSION_CLOSED): nothing more follows.
            self._end(uid, None, None)
            return [pb.WatchRequest(cancel=pb.WatchCancel(watch_id=uid))]
        if end is not None:
            self._ended(uid, end)
        return []

    def _ended(self, uid: int, end: pb.WatchEnd) -> None:
        u = self.upstreams.get(uid)
        if u is None:
            return
        if end.code in ("OK", "CANCELLED"):
            self._end(uid, None, None)
            return
        err = from_code_name(end.code, end.message)
        if not u.synced_once:
            self._end(uid, None, err)
        elif end.code == "NOT_FOUND":
            self._end(uid, _session_closed(), None)  # the session is gone
        elif end.code in ("INVALID_ARGUMENT", "UNAUTHENTICATED"):
            self._end(uid, _disconnected(), None)  # asking again will not help
        else:
            # A passing refusal: this upstream alone tries again later, up
            # to the retry limit.
            u.refusals += 1
            if self.config.max_failures is not None and u.refusals > self.config.max_failures:
                self._end(uid, _disconnected(), None)
                return
            u.phase = "retry"
            u.retry_at = time.monotonic() + jittered(u.backoff)
            u.backoff = min(u.backoff * 2, self.config.backoff_max)
            u.held.clear()

    def _end(self, uid: int, last: Optional[Event], error: Optional[VarwatchError]) -> None:
        u = self.upstreams.get(uid)
        if u is None:
            return
        for d in u.waiting:
            d.error = error or from_code_name("UNAVAILABLE", "the watch ended before its first snapshot")
            d.notify()
        u.waiting.clear()
        u.finish(last)
        # Downstreams keep draining through `recv` (their queues stay).
        self._remove(uid)

    def _remove(self, uid: int) -> None:
        u = self.upstreams.pop(uid, None)
        if u is not None and self.by_key.get(u.sub.key()) == uid:
            del self.by_key[u.sub.key()]

    def retry_due(self) -> List[pb.WatchRequest]:
        if not self.connected:
            return []
        now = time.monotonic()
        out = []
        for uid, u in self.upstreams.items():
            if u.phase == "retry" and u.retry_at <= now:
                u.phase = "creating"
                out.append(u.create(uid))
        return out

    def next_retry(self) -> Optional[float]:
        times = [u.retry_at for u in self.upstreams.values() if u.phase == "retry"]
        return min(times) if times else None

    def heartbeat(self) -> List[pb.WatchRequest]:
        """A heartbeat, with the acknowledgements that moved."""
        self.sequence += 1
        out = [pb.WatchRequest(heartbeat=pb.Heartbeat(sequence=self.sequence))]
        for uid, u in self.upstreams.items():
            taken = u.taken()
            if taken > u.acked and u.phase == "live":
                u.acked = taken
                out.append(pb.WatchRequest(ack=pb.WatchAck(watch_id=uid, revision=taken - 1)))
        return out

    def silent(self) -> bool:
        return time.monotonic() - self.last_heard > self.config.heartbeat_timeout

    def on_broken(self, error: Optional[VarwatchError]) -> Optional[float]:
        """The stream ended or failed. Returns the delay before the next
        connection, or ``None`` when there is nothing left to watch."""
        self.connected = False
        if not self.heard_any and error is not None:
            # Refused before anything came: watches that never synced learn why.
            for uid in [i for i, u in self.upstreams.items() if not u.synced_once]:
                self._end(uid, None, error)
        if self.healthy:
            self.failures = 0
            self.backoff = self.config.backoff_initial
        self.healthy = False
        for uid in [i for i, u in self.upstreams.items() if not (u.synced_once or u.waiting)]:
            self._remove(uid)
        if not self.upstreams:
            return None
        self.failures += 1
        if self.config.max_failures is not None and self.failures > self.config.max_failures:
            for uid in list(self.upstreams):
                self._end(uid, _disconnected(), error)
            self.failures = 0
            return None
        delay = jittered(self.backoff)
        self.backoff = min(self.backoff * 2, self.config.backoff_max)
        return delay
