"""The reactor-style harness: initial objects -> one sync -> expected objects and events.

Like the Go controller's ``framework_test.go``: the initial objects go into an in-memory API
server (:class:`~csi_sidecars.kube.fake.FakeKube`: resourceVersions, conflicts, JSON patches,
finalizer semantics, injected errors), the caches are filled from it (and refilled before every
decision, as informers catch up), one key is synced through the real decision and the real
:class:`~csi_sidecars.controller.perform.Performer`, and the resulting objects and events are
compared with the expected ones (resourceVersions, creation stamps and generated uids ignored;
a deletionTimestamp compares as ``"set"``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    ApiError,
    JsonDict,
    Resource,
)
from csi_sidecars.kube.snapshots import (
    VOLUME_GROUP_SNAPSHOT_CLASSES,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.snapshotcontroller.plans import Decide, Settings
from csi_sidecars.snapshotcontroller.view import View, new_store
from tests.unit.snapshotcontroller.fixtures import NOW

KINDS: dict[str, Resource] = {
    "VolumeSnapshot": VOLUME_SNAPSHOTS,
    "VolumeSnapshotContent": VOLUME_SNAPSHOT_CONTENTS,
    "VolumeSnapshotClass": VOLUME_SNAPSHOT_CLASSES,
    "PersistentVolumeClaim": PERSISTENT_VOLUME_CLAIMS,
    "PersistentVolume": PERSISTENT_VOLUMES,
    "Node": NODES,
    "VolumeGroupSnapshot": VOLUME_GROUP_SNAPSHOTS,
    "VolumeGroupSnapshotContent": VOLUME_GROUP_SNAPSHOT_CONTENTS,
    "VolumeGroupSnapshotClass": VOLUME_GROUP_SNAPSHOT_CLASSES,
}

Decision = Callable[[JsonDict | None, Decide], a.Plan]


class Events(EventRecorder):
    """Keeps (type, reason, message) of every event instead of writing it."""

    def __init__(self) -> None:
        super().__init__(FakeKube(), "snapshot-controller")
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: JsonDict, etype: str, reason: str, message: str, **_: Any) -> None:
        self.seen.append((etype, reason, message))


@dataclass
class Injection:
    """Fail the next ``times`` ``verb`` calls on a kind (and name) with ``status``."""

    verb: str
    kind: str
    status: int = 500
    name: str | None = None
    times: int = 1
    reason: str = "InternalError"
    message: str = "injected failure"


@dataclass
class World:
    """The API server, caches and executor of one test."""

    kube: FakeKube
    performer: Performer
    events: Events
    settings: Settings
    stores: dict[str, Any] = field(default_factory=dict)
    #: (kind, name) of objects the informers have not seen yet (a watch that lags)
    unseen: set[tuple[str, str]] = field(default_factory=set)
    #: what the caches hold instead of the API server's object (a watch that lags), by
    #: (kind, name); also objects the API server no longer has
    stale: dict[tuple[str, str], JsonDict] = field(default_factory=dict)

    def refresh(self) -> View:
        """Refill every cache from the API server (the informers caught up), except the
        ``unseen`` objects, and with the ``stale`` copies."""
        for kind, res in KINDS.items():
            store = new_store(res)
            for obj in self.kube.objects(res):
                key = (kind, obj["metadata"]["name"])
                if key not in self.unseen and key not in self.stale:
                    store.upsert(obj)
            for (stale_kind, _), obj in self.stale.items():
                if stale_kind == kind:
                    store.upsert(copy.deepcopy(obj))
            self.stores[res.plural] = store
        return View(self.stores, self.performer.written)

    def decide(self) -> Decide:
        return Decide(self.refresh(), self.settings, NOW)

    def get(self, kind: str, name: str, ns: str | None = None) -> JsonDict | None:
        return self.kube.peek(KINDS[kind], name, ns)


async def world(
    initial: list[JsonDict],
    *,
    settings: Settings | None = None,
    errors: list[Injection] | None = None,
    unseen: list[tuple[str, str]] | None = None,
) -> World:
    """An API server holding ``initial`` (objects with a ``deletionTimestamp`` are deleted);
    the caches lack the ``unseen`` ones (kind, name)."""
    kube = FakeKube()
    for obj in initial:
        res = KINDS[obj["kind"]]
        body = copy.deepcopy(obj)
        deleting = body["metadata"].pop("deletionTimestamp", None)
        created = await kube.create(res, body, body["metadata"].get("namespace"))
        if deleting:
            await kube.delete(
                res, created["metadata"]["name"], created["metadata"].get("namespace")
            )
    kube.actions.clear()
    for inj in errors or []:
        kube.inject(
            inj.verb,
            ApiError(inj.status, inj.reason, inj.message),
            resource=KINDS[inj.kind],
            name=inj.name,
            times=inj.times,
        )
    events = Events()
    performer = Performer(kube, None, events, timeout=1.0, role="snapshot-controller")
    return World(
        kube, performer, events, settings or Settings(groups=True), unseen=set(unseen or [])
    )


async def sync(w: World, decision: Decision, kind: str, key: str) -> Result:
    """One sync of ``key`` (``ns/name`` or ``name``) of ``kind`` through ``decision``."""
    ns, _, name = key.rpartition("/")

    def decide() -> a.Plan:
        d = w.decide()
        obj = d.view.get(KINDS[kind], name, ns or None)
        return decision(obj, d)

    return await run_sync(decide, w.performer, key)


_DROP = ("resourceVersion", "creationTimestamp", "generation", "managedFields")


def normalize(obj: JsonDict, keep_uid: bool = True) -> JsonDict:
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    for k in _DROP:
        meta.pop(k, None)
    if meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = "set"
    if not keep_uid:
        meta.pop("uid", None)
    for ref_field in ("volumeSnapshotRef", "volumeGroupSnapshotRef"):
        ref = (out.get("spec") or {}).get(ref_field)
        if isinstance(ref, dict):
            ref.pop("resourceVersion", None)
    return out


def objects(w: World, kind: str) -> list[JsonDict]:
    return w.kube.objects(KINDS[kind])


def assert_objects(w: World, kind: str, expected: list[JsonDict]) -> None:
    """The API server holds exactly ``expected`` objects of ``kind`` (normalised)."""
    got = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects(w, kind)}
    want = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in expected}
    assert sorted(got, key=str) == sorted(want, key=str), f"{kind} names differ"
    for k, exp in want.items():
        keep_uid = "uid" in exp["metadata"]
        assert normalize(got[k], keep_uid) == normalize(exp, keep_uid), f"{kind} {k} differs"


def reasons(w: World) -> list[str]:
    """Events as ``"Type Reason"``."""
    return [f"{t} {r}" for t, r, _ in w.events.seen]
