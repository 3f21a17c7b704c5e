"""The reactor for snapshotter table tests: initial objects -> one sync -> objects, events, calls.

Like the Go sidecar's framework test: the API server is the in-memory :class:`FakeKube`
(resourceVersions, conflicts, JSON and merge patches, finalizers, the status subresource), the
driver is a scripted :class:`FakeCSI` that answers each method from a list of replies or
errors and records every request, and one sync is the real
:func:`~csi_sidecars.controller.perform.run_sync` of the pure decision with the real
:class:`~csi_sidecars.controller.perform.Performer`, deciding from the stored object (there is
no informer here, so what the decision sees is always current).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import SECRETS, JsonDict, Resource
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.snapshotter import content, group
from csi_sidecars.snapshotter.view import Config, View

DRIVER = "hostpath.csi.k8s.io"
NAMESPACE = "default"
NOW = 1_777_000_000.0  # 2026-04-24T03:06:40Z
NOW_TEXT = "2026-04-24T03:06:40Z"
NOW_NS = int(NOW * 1e9)
SIZE = 1024 * 1024 * 1024


def rpc_error(code: grpc.StatusCode, details: str = "mock error") -> grpc.aio.AioRpcError:
    """A gRPC error as the aio client raises it."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def snapshot_msg(
    snapshot_id: str,
    *,
    ready: bool = True,
    size: int = SIZE,
    source: str = "",
    created: float | None = NOW - 5,
    group_id: str = "",
) -> Any:
    """A ``csi.v1.Snapshot``."""
    snap = csi_pb2.Snapshot(
        snapshot_id=snapshot_id,
        ready_to_use=ready,
        size_bytes=size,
        source_volume_id=source,
        group_snapshot_id=group_id,
    )
    if created is not None:
        snap.creation_time.FromNanoseconds(int(created * 1e9))
    return snap


def created(snapshot_id: str, **kwargs: Any) -> Any:
    """A ``CreateSnapshotResponse``."""
    return csi_pb2.CreateSnapshotResponse(snapshot=snapshot_msg(snapshot_id, **kwargs))


def listed(*snaps: Any) -> Any:
    """A ``ListSnapshotsResponse``."""
    resp = csi_pb2.ListSnapshotsResponse()
    for snap in snaps:
        resp.entries.add().snapshot.CopyFrom(snap)
    return resp


@dataclass
class Call:
    """One request the fake driver received."""

    method: str
    request: Any


@dataclass
class FakeCSI:
    """Scripted driver: ``replies[method]`` is a list of replies or exceptions, used in order
    (the last one repeats). A method without a script fails with UNIMPLEMENTED."""

    replies: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or method in ("replies", "calls"):
            raise AttributeError(method)

        async def rpc(request: Any, timeout: float | None = None) -> Any:
            self.calls.append(Call(method, copy.deepcopy(request)))
            script = self.replies.get(method)
            if not script:
                raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, f"{method} not scripted")
            answer = script.pop(0) if len(script) > 1 else script[0]
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return answer(request)
            return answer

        return rpc

    def methods(self) -> list[str]:
        """The methods called, in order."""
        return [c.method for c in self.calls]


class FakeConn:
    """What the performer needs of a connection: the stubs (all served by one FakeCSI)."""

    def __init__(self, csi: FakeCSI) -> None:
        self.controller = csi
        self.group_controller = csi
        self.identity = csi


@dataclass
class Recorder:
    """Collects events as ``"<Type> <Reason>: <message>"``."""

    events: list[str] = field(default_factory=list)

    def event(
        self, target: JsonDict, etype: str, reason: str, message: str, resource: Any = None
    ) -> None:
        self.events.append(f"{etype} {reason}: {message}")

    def reasons(self) -> list[str]:
        return [e.split(":", 1)[0] for e in self.events]


class Reactor:
    """One test's world: the fake API server, the scripted driver, the recorder."""

    def __init__(self, config: Config | None = None) -> None:
        self.kube = FakeKube()
        self.csi = FakeCSI()
        self.recorder = Recorder()
        self.config = config or Config(driver=DRIVER, extra_create_metadata=True)
        self.performer = Performer(
            self.kube,
            FakeConn(self.csi),  # type: ignore[arg-type]
            self.recorder,  # type: ignore[arg-type]
            timeout=60.0,
            role="snapshotter",
        )
        self.outcomes: list[a.Outcome] = []

    def view(self) -> View:
        return View(
            self.config,
            snapshot_class=lambda n: self.kube.peek(api.VOLUME_SNAPSHOT_CLASSES, n),
            group_class=lambda n: self.kube.peek(api.VOLUME_GROUP_SNAPSHOT_CLASSES, n),
            now=lambda: NOW,
        )

    async def add(
        self,
        resource: Resource,
        obj: JsonDict,
        *,
        deleting: bool = False,
        with_snapshot: bool = True,
    ) -> None:
        """Store ``obj``; with ``deleting``, delete it (it must hold a finalizer).

        A dynamic content comes with the VolumeSnapshot it is bound to (the sidecar reads it
        before a first CreateSnapshot), unless ``with_snapshot`` is False or it exists.
        """
        if resource is api.VOLUME_SNAPSHOT_CONTENTS and with_snapshot:
            await ensure_bound_snapshot(self.kube, obj)
        await self.kube.create(resource, copy.deepcopy(obj))
        if deleting:
            await self.kube.delete(
                resource, obj["metadata"]["name"], obj["metadata"].get("namespace")
            )

    async def secret(self, name: str = "secret", data: dict[str, str] | None = None) -> None:
        body = {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {
                k: base64.b64encode(v.encode()).decode()
                for k, v in (data or {"foo": "bar"}).items()
            },
        }
        await self.kube.create(SECRETS, body)

    async def sync(self, name: str, *, kind: str = "content") -> Result:
        """One sync of the content (or group content) ``name``."""
        resource = (
            api.VOLUME_SNAPSHOT_CONTENTS
            if kind == "content"
            else (api.VOLUME_GROUP_SNAPSHOT_CONTENTS)
        )
        decide = content.decide if kind == "content" else group.decide
        view = self.view()

        def plan() -> a.Plan:
            obj = self.kube.peek(resource, name)
            if obj is None:
                return (a.Done("gone"),)
            return decide(obj, view)

        return await run_sync(plan, self.performer, name)

    def content(self, name: str) -> JsonDict | None:
        return self.kube.peek(api.VOLUME_SNAPSHOT_CONTENTS, name)

    def group_content(self, name: str) -> JsonDict | None:
        return self.kube.peek(api.VOLUME_GROUP_SNAPSHOT_CONTENTS, name)


# -- object builders ---------------------------------------------------------------------------


async def ensure_bound_snapshot(kube: FakeKube, content: JsonDict) -> None:
    """Store the VolumeSnapshot a dynamic ``content`` is bound to (same uid), if missing."""
    spec = content.get("spec") or {}
    ref = spec.get("volumeSnapshotRef") or {}
    if "volumeHandle" not in (spec.get("source") or {}) or not ref.get("name"):
        return
    ns = ref.get("namespace") or NAMESPACE
    if kube.peek(api.VOLUME_SNAPSHOTS, ref["name"], ns) is not None:
        return
    meta: JsonDict = {"name": ref["name"], "namespace": ns}
    if ref.get("uid"):
        meta["uid"] = ref["uid"]
    body = {"metadata": meta, "spec": {"source": {"persistentVolumeClaimName": "claim"}}}
    await kube.create(api.VOLUME_SNAPSHOTS, body)


def make_class(
    name: str = "gold", parameters: dict[str, str] | None = None, driver: str = DRIVER
) -> JsonDict:
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": name},
        "driver": driver,
        "deletionPolicy": "Delete",
        "parameters": dict(parameters if parameters is not None else {"param1": "value1"}),
    }


def make_content(
    name: str,
    *,
    snap_uid: str = "",
    snap_name: str = "",
    status: JsonDict | None = None,
    snapshot_class: str = "gold",
    snapshot_handle: str = "",
    volume_handle: str = "",
    policy: str = "Delete",
    finalizer: bool = True,
    annotations: dict[str, str] | None = None,
    driver: str = DRIVER,
) -> JsonDict:
    """A VolumeSnapshotContent like Go's ``newContent``: ``snapshot_handle`` makes it
    pre-provisioned, ``volume_handle`` dynamic."""
    meta: JsonDict = {"name": name}
    if finalizer:
        meta["finalizers"] = [api.VSC_FINALIZER]
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    source = (
        {"volumeHandle": volume_handle} if volume_handle else {"snapshotHandle": snapshot_handle}
    )
    spec: JsonDict = {"driver": driver, "deletionPolicy": policy, "source": source}
    if snapshot_class:
        spec["volumeSnapshotClassName"] = snapshot_class
    if snap_name:
        spec["volumeSnapshotRef"] = {
            "kind": "VolumeSnapshot",
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "uid": snap_uid,
            "namespace": NAMESPACE,
            "name": snap_name,
        }
    obj: JsonDict = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": meta,
        "spec": spec,
    }
    if status is not None:
        obj["status"] = dict(status)
    return obj


def being_deleted(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The annotation the snapshot-controller sets before it deletes a content."""
    return {api.ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes", **(extra or {})}


SECRET_ANNOTATIONS = {
    api.ANN_DELETION_SECRET_REF_NAME: "secret",
    api.ANN_DELETION_SECRET_REF_NAMESPACE: NAMESPACE,
}
