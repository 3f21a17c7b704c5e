"""Event recorder: Kubernetes Events on the involved object, aggregated and rate limited.

Like client-go's recorder and correlator:

* an event repeated with the same object, type, reason, message and source bumps ``count`` and
  ``lastTimestamp`` of the existing Event (a merge patch) instead of creating another one;
* more than 10 distinct messages for the same object, type and reason within 10 minutes are
  folded into one Event whose message starts with ``(combined from similar events): ``;
* each involved object gets a token bucket (burst 25, one more every 5 minutes); events beyond
  it are dropped, so a hot loop cannot flood the API server;
* :meth:`EventRecorder.event` never blocks: events go through bounded queues (1000 in all)
  that :meth:`EventRecorder.run` drains with :data:`SENDERS` concurrent senders (an object's
  events always go to the same sender, in order); a full queue drops the event.

All of that state is kept per involved object, for at most :data:`CACHE_SIZE` objects (least
recently used first out), and :meth:`EventRecorder.forget` drops an object's state at once:
controllers call it when the object is deleted, so a finished claim or attachment leaves
nothing behind (client-go keeps it until its caches push it out, ~4096 objects later). An
event about an object already forgotten (it waited in the queue past the deletion) is written
without keeping state.

Messages are written as given: callers must never put secrets in them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

from csi_sidecars.kube.clock import REAL_CLOCK, Clock
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.ratelimit import TokenBucket
from csi_sidecars.kube.resources import EVENTS, ApiError, JsonDict, Resource
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("events")

NORMAL = "Normal"
WARNING = "Warning"

SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
AGGREGATE_MAX = 10
AGGREGATE_WINDOW = 600.0
COMBINED_PREFIX = "(combined from similar events): "
QUEUE_SIZE = 1000
CACHE_SIZE = 4096
#: Events written at once (one API round trip each; a single sender fell behind 100 workers).
SENDERS = 4
#: Objects remembered as deleted, so late events about them keep no state.
GONE_SIZE = 1024


@dataclass(slots=True)
class _Pending:
    ref: JsonDict
    type: str
    reason: str
    message: str
    when: float


@dataclass(slots=True)
class _Seen:
    name: str
    namespace: str
    count: int
    first: str


@dataclass(slots=True)
class _Similar:
    messages: set[str]
    since: float


#: Distinct (type, reason, message) Events remembered per object for aggregation.
SEEN_PER_OBJECT = 64


@dataclass(slots=True)
class _ObjectState:
    """What the recorder remembers about one involved object."""

    bucket: TokenBucket
    similar: dict[tuple[str, str], _Similar]
    seen: OrderedDict[tuple[str, str, str], _Seen]


def _object_key(ref: JsonDict) -> tuple[str, str, str, str]:
    return (ref["kind"], ref.get("namespace", ""), ref["name"], ref.get("uid", ""))


def _stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: JsonDict, resource: Resource | None = None) -> JsonDict:
    """The ``involvedObject`` reference of ``obj`` (kind/apiVersion from ``resource`` if absent)."""
    meta = obj.get("metadata") or {}
    ref: JsonDict = {
        "kind": obj.get("kind") or (resource.kind if resource else ""),
        "apiVersion": obj.get("apiVersion") or (resource.api_version if resource else ""),
        "name": meta.get("name", ""),
    }
    for src, dst in (("namespace", "namespace"), ("uid", "uid")):
        if meta.get(src):
            ref[dst] = meta[src]
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return ref


class EventRecorder:
    """Writes Events for one component (the role)."""

    def __init__(
        self,
        port: KubePort,
        component: str,
        *,
        host: str = "",
        clock: Clock = REAL_CLOCK,
        burst: int = SPAM_BURST,
        qps: float = SPAM_QPS,
    ) -> None:
        """Create a recorder; run :meth:`run` in a task to send events.

        Args:
            port: the Kubernetes port.
            component: ``source.component`` (and ``reportingComponent``).
            host: ``source.host`` (and ``reportingInstance``).
            clock: time source.
            burst: events per object before throttling.
            qps: refill rate per object.
        """
        self.port = port
        self.component = component
        self.host = host
        self._clock = clock
        self._burst = burst
        self._qps = qps
        self._queues: list[asyncio.Queue[_Pending]] = [
            asyncio.Queue(QUEUE_SIZE // SENDERS) for _ in range(SENDERS)
        ]
        self._gone: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self._objects: OrderedDict[tuple[str, str, str, str], _ObjectState] = OrderedDict()
        self.dropped = 0
        self._last_nanos = 0

    def event(
        self,
        obj: JsonDict,
        event_type: str,
        reason: str,
        message: str,
        *,
        resource: Resource | None = None,
    ) -> None:
        """Queue an event about ``obj``; never blocks."""
        ref = object_reference(obj, resource)
        queue = self._queues[hash(_object_key(ref)) % SENDERS]
        try:
            queue.put_nowait(_Pending(ref, event_type, reason, message, self._clock.wall()))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("Event queue full, dropping event", reason=reason, object=ref["name"])

    async def run(self) -> None:
        """Send queued events until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for queue in self._queues:
                tg.create_task(self._send(queue))

    async def _send(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            pending = await queue.get()
            try:
                await self.record(pending.ref, pending.type, pending.reason, pending.message)
            except Exception as exc:
                log.warning("Failed to write event", reason=pending.reason, error=repr(exc))
            finally:
                queue.task_done()

    async def flush(self) -> None:
        """Wait until every queued event has been handled (needs :meth:`run` running)."""
        for queue in self._queues:
            await queue.join()

    def __len__(self) -> int:
        """How many involved objects the recorder holds state for."""
        return len(self._objects)

    def forget(self, obj: JsonDict, resource: Resource | None = None) -> None:
        """Drop what the recorder remembers about ``obj`` (call it when ``obj`` is deleted).

        Events about the object after this start afresh (a new Event, a full token bucket).
        """
        ref = object_reference(obj, resource)
        key = _object_key(ref)
        for gone in (key, (*key[:3], "")) if key[3] else (key,):
            self._objects.pop(gone, None)
            self._gone[gone] = None
            self._gone.move_to_end(gone)
        while len(self._gone) > GONE_SIZE:
            self._gone.popitem(last=False)

    def _state(self, ref: JsonDict) -> _ObjectState:
        key = _object_key(ref)
        state = self._objects.get(key)
        if state is None:
            bucket = TokenBucket(self._qps, self._burst, self._clock)
            state = _ObjectState(bucket, {}, OrderedDict())
            if key in self._gone:
                return state  # deleted already: used for this event only
            self._objects[key] = state
            while len(self._objects) > CACHE_SIZE:
                self._objects.popitem(last=False)
        else:
            self._objects.move_to_end(key)
        return state

    def _aggregate(self, state: _ObjectState, event_type: str, reason: str, message: str) -> str:
        key = (event_type, reason)
        now = self._clock.monotonic()
        similar = state.similar.get(key)
        if similar is None or now - similar.since > AGGREGATE_WINDOW:
            similar = state.similar[key] = _Similar(set(), now)
        similar.messages.add(message)
        if len(similar.messages) > AGGREGATE_MAX:
            return COMBINED_PREFIX + message
        return message

    async def record(self, ref: JsonDict, event_type: str, reason: str, message: str) -> None:
        """Correlate and write one event now."""
        state = self._state(ref)
        if not state.bucket.try_take():
            self.dropped += 1
            if rlog.v(4):
                log.info("Event throttled", reason=reason, object=ref["name"])
            return
        message = self._aggregate(state, event_type, reason, message)
        key = (event_type, reason, message)
        now = _stamp(self._clock.wall())
        seen = state.seen.get(key)
        if seen is not None:
            seen.count += 1
            patch = {"count": seen.count, "lastTimestamp": now, "message": message}
            try:
                await self.port.patch(EVENTS, seen.name, patch, seen.namespace)
                state.seen.move_to_end(key)
                return
            except ApiError as exc:
                if not exc.not_found:
                    raise
                state.seen.pop(key, None)
        namespace = ref.get("namespace") or "default"
        # Unique per recorder even when the clock has not moved.
        self._last_nanos = max(int(self._clock.wall() * 1e9), self._last_nanos + 1)
        name = f"{ref['name']}.{self._last_nanos:x}"
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        created = await self.port.create(EVENTS, body, namespace)
        state.seen[key] = _Seen(created["metadata"]["name"], namespace, 1, now)
        while len(state.seen) > SEEN_PER_OBJECT:
            state.seen.popitem(last=False)
