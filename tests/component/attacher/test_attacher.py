"""The whole attacher (main, controller, executor) on the kube fake and the playground driver."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi_sidecars.attacher import names
from csi_sidecars.attacher.command import run_attacher
from csi_sidecars.attacher.flags import FEATURE_GATES, AttacherFlags
from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import (
    CSI_NODES,
    EVENTS,
    PERSISTENT_VOLUMES,
    PODS,
    VOLUME_ATTACHMENTS,
    ApiError,
    JsonDict,
)
from csi_sidecars.playground.driver.server import Driver, run_driver
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import parse_gates
from csi_sidecars.runtime.options import CsiOptions, RetryOptions

DRIVER = "attach.csi.test"
FINALIZER = "external-attacher/attach-csi-test"
NODE = "node-1"


async def poll(cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert loop.time() < deadline, f"timed out waiting for {what or cond}"
        await asyncio.sleep(0.02)


def csinode(node: str = NODE, node_id: str = NODE) -> JsonDict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {"name": node},
        "spec": {"drivers": [{"name": DRIVER, "nodeID": node_id, "topologyKeys": None}]},
    }


def pv_obj(name: str, handle: str, claim: str = "claim1") -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "csi": {"driver": DRIVER, "volumeHandle": handle, "fsType": "ext4"},
            "volumeMode": "Filesystem",
            "claimRef": {"namespace": "ns1", "name": claim},
        },
    }


def va_obj(name: str, pv: str, node: str = NODE, attacher: str = DRIVER) -> JsonDict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": name},
        "spec": {"attacher": attacher, "nodeName": node, "source": {"persistentVolumeName": pv}},
    }


async def create_volume(conn: Connection, name: str) -> str:
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(
            mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
        ),
    )
    resp = await conn.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[cap]), timeout=5
    )
    return str(resp.volume.volume_id)


@dataclass
class Env:
    kube: FakeKube
    drv: Driver
    conn: Connection
    task: asyncio.Task[int]
    stop: asyncio.Event

    def va(self, name: str) -> JsonDict | None:
        return self.kube.peek(VOLUME_ATTACHMENTS, name)

    def pv(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUMES, name)

    def attached_nodes(self, handle: str) -> dict[str, bool]:
        return dict(self.drv.state.data.volumes[handle].attached)

    async def volume(self, name: str = "pv1", va: str = "va1") -> str:
        handle = await create_volume(self.conn, name)
        await self.kube.create(PERSISTENT_VOLUMES, pv_obj(name, handle))
        await self.kube.create(VOLUME_ATTACHMENTS, va_obj(va, name))
        return handle

    def event_reasons(self, kind: str = "VolumeAttachment") -> list[str]:
        return [
            e["reason"] for e in self.kube.objects(EVENTS) if e["involvedObject"]["kind"] == kind
        ]


@contextlib.asynccontextmanager
async def attacher(
    tmp_path: Path, *, kube: FakeKube | None = None, **overrides: Any
) -> AsyncIterator[Env]:
    driver_opts = overrides.pop("driver", {})
    kube = kube or FakeKube()
    if kube.peek(CSI_NODES, NODE) is None:
        await kube.create(CSI_NODES, csinode())
    flags = AttacherFlags(
        retry=RetryOptions(overrides.pop("retry_interval_start", 0.05), 0.3),
        csi=CsiOptions(timeout=5.0),
        worker_threads=3,
    )
    for key, value in overrides.items():
        setattr(flags, key, value)
    async with run_driver(tmp_path, driver_name=DRIVER, enable_attach=True, **driver_opts) as drv:
        conn = await connect(drv.endpoint)
        stop = asyncio.Event()
        task = asyncio.create_task(run_attacher(flags, stop, port=kube, conn=conn))
        env = Env(kube, drv, conn, task, stop)
        try:
            yield env
        finally:
            stop.set()
            code = await asyncio.wait_for(task, 20)
            await conn.close()
        assert code == 0


async def test_attach_then_detach_and_pv_finalizer(tmp_path: Path) -> None:
    async with attacher(tmp_path) as env:
        env.drv.faults.add("ControllerPublishVolume", reply={"publishContext": {"dev": "/dev/x"}})
        handle = await env.volume()
        va = await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached") and v)
        assert va["status"]["attachmentMetadata"] == {"dev": "/dev/x"}
        assert va["metadata"]["finalizers"] == [FINALIZER]
        assert va["metadata"]["annotations"] == {
            names.NODE_ID_ANNOTATION: NODE,
            names.VOLUME_HANDLE_ANNOTATION: handle,
        }
        pv = env.pv("pv1")
        assert pv is not None and pv["metadata"]["finalizers"] == [FINALIZER]
        assert env.attached_nodes(handle) == {NODE: False}
        req = env.drv.calls_of("ControllerPublishVolume")[0]
        assert req.volume_capability.mount.fs_type == "ext4"
        assert req.volume_capability.access_mode.mode == 7  # RWO + SINGLE_NODE_MULTI_WRITER
        assert len(env.drv.calls_of("ControllerPublishVolume")) == 1
        await poll(lambda: "SuccessfulAttachVolume" in env.event_reasons(), what="event")

        await env.kube.delete(VOLUME_ATTACHMENTS, "va1")
        await poll(lambda: env.va("va1") is None, what="VA gone")
        assert env.attached_nodes(handle) == {}
        assert len(env.drv.calls_of("ControllerUnpublishVolume")) == 1
        # Removing the last finalizer deleted the VA: no status write after it.
        status_writes = [
            act for act in env.kube.actions_of("patch", VOLUME_ATTACHMENTS) if act.subresource
        ]
        assert len(status_writes) == 1
        # The PV keeps its finalizer until it is deleted, then loses it.
        pv = env.pv("pv1")
        assert pv is not None and pv["metadata"]["finalizers"] == [FINALIZER]
        await env.kube.delete(PERSISTENT_VOLUMES, "pv1")
        await poll(lambda: env.pv("pv1") is None, what="PV gone")
        await poll(lambda: "SuccessfulDetachVolume" in env.event_reasons(), what="event")


async def test_publish_errors_then_success_with_events_on_the_pod(tmp_path: Path) -> None:
    kube = FakeKube()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "ns1"},
        "spec": {
            "nodeName": NODE,
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "claim1"}}],
        },
    }
    await kube.create(PODS, pod, "ns1")
    async with attacher(tmp_path, kube=kube) as env:
        rule = env.drv.faults.add(
            "ControllerPublishVolume", code=grpc.StatusCode.INTERNAL, message="disk busy"
        )
        await env.volume()
        va = await poll(
            lambda: (v := env.va("va1")) and v.get("status", {}).get("attachError") and v
        )
        error = va["status"]["attachError"]
        assert error["message"] == "rpc error: code = Internal desc = disk busy"
        assert error["errorCode"] == 13
        assert not va["status"].get("attached")
        await poll(lambda: "FailedAttachVolume" in env.event_reasons("Pod"), what="pod event")
        env.drv.faults.remove(rule)
        va = await poll(lambda: (v := env.va("va1")) and v["status"].get("attached") and v)
        assert "attachError" not in va["status"]
        assert "FailedAttachVolume" in env.event_reasons()


async def test_detach_error_carries_the_code(tmp_path: Path) -> None:
    async with attacher(tmp_path) as env:
        await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached"))
        rule = env.drv.faults.add(
            "ControllerUnpublishVolume", code=grpc.StatusCode.FAILED_PRECONDITION
        )
        await env.kube.delete(VOLUME_ATTACHMENTS, "va1")
        va = await poll(lambda: (v := env.va("va1")) and v["status"].get("detachError") and v)
        assert va["status"]["detachError"]["errorCode"] == 9
        assert va["metadata"]["finalizers"] == [FINALIZER]
        env.drv.faults.remove(rule)
        await poll(lambda: env.va("va1") is None, what="VA gone")


async def test_detach_with_another_finalizer_left_marks_detached(tmp_path: Path) -> None:
    async with attacher(tmp_path) as env:
        await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached"))
        fins = [FINALIZER, "other.io/keep"]
        await env.kube.patch(VOLUME_ATTACHMENTS, "va1", {"metadata": {"finalizers": fins}})
        await env.kube.delete(VOLUME_ATTACHMENTS, "va1")
        va = await poll(lambda: (v := env.va("va1")) and v["status"].get("attached") is False and v)
        assert va["metadata"]["finalizers"] == ["other.io/keep"]


async def test_detach_when_the_pv_is_gone(tmp_path: Path) -> None:
    async with attacher(tmp_path) as env:
        handle = await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached"))
        # Someone strips the PV's finalizer and deletes it (issue #235).
        await env.kube.patch(PERSISTENT_VOLUMES, "pv1", {"metadata": {"finalizers": None}})
        await env.kube.delete(PERSISTENT_VOLUMES, "pv1")
        await poll(lambda: env.pv("pv1") is None)
        await env.kube.delete(VOLUME_ATTACHMENTS, "va1")
        await poll(lambda: env.va("va1") is None, what="VA gone")
        assert env.attached_nodes(handle) == {}
        req = env.drv.calls_of("ControllerUnpublishVolume")[-1]
        assert (req.volume_id, req.node_id) == (handle, NODE)


async def test_trivial_handler(tmp_path: Path) -> None:
    opts = {"remove_capabilities": ["controller:PUBLISH_UNPUBLISH_VOLUME"]}
    async with attacher(tmp_path, driver=opts) as env:
        await env.kube.create(PERSISTENT_VOLUMES, pv_obj("pv1", "vol-x"))
        await env.kube.create(VOLUME_ATTACHMENTS, va_obj("va1", "pv1"))
        await env.kube.create(VOLUME_ATTACHMENTS, va_obj("other", "pv1", attacher="x.csi"))
        va = await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached") and v)
        assert "finalizers" not in va["metadata"]
        assert "ControllerPublishVolume" not in env.drv.methods()
        pv = env.pv("pv1")
        assert pv is not None and "finalizers" not in pv["metadata"]
        other = env.va("other")
        assert other is not None and not other.get("status", {}).get("attached")


async def test_reconciler_reattaches_a_volume_detached_behind_our_back(tmp_path: Path) -> None:
    async with attacher(tmp_path, reconcile_sync=0.2) as env:
        handle = await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached"))
        calls = len(env.drv.calls_of("ControllerPublishVolume"))
        await env.conn.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=handle, node_id=NODE), timeout=5
        )
        assert env.attached_nodes(handle) == {}
        await poll(lambda: env.attached_nodes(handle) == {NODE: False}, what="re-attached")
        assert len(env.drv.calls_of("ControllerPublishVolume")) > calls


async def test_missing_csinode_driver_entry_then_registered(tmp_path: Path) -> None:
    kube = FakeKube()
    empty = csinode()
    empty["spec"]["drivers"] = []
    await kube.create(CSI_NODES, empty)
    async with attacher(tmp_path, kube=kube, retry_interval_start=30.0) as env:
        await env.volume()
        va = await poll(
            lambda: (v := env.va("va1")) and v.get("status", {}).get("attachError") and v
        )
        assert (
            va["status"]["attachError"]["message"]
            == f"CSINode {NODE} does not contain driver {DRIVER}"
        )
        # The driver registers: the VA is retried at once, not after its 30 s back-off.
        await kube.patch(CSI_NODES, NODE, {"spec": {"drivers": csinode()["spec"]["drivers"]}})
        await poll(lambda: (v := env.va("va1")) and v["status"].get("attached"), what="attached")


async def test_stale_cache_conflict_is_re_read(tmp_path: Path) -> None:
    kube = FakeKube()
    async with attacher(tmp_path, kube=kube) as env:
        handle = await create_volume(env.conn, "pv1")
        await kube.create(PERSISTENT_VOLUMES, pv_obj("pv1", handle))
        # Another controller's finalizer lands between our read and our write.
        rule = env.drv.faults.add("ControllerPublishVolume", delay=0.0)
        original = kube.patch
        raced = False

        async def racing_patch(resource: Any, name: str, patch: Any, *a: Any, **kw: Any) -> Any:
            nonlocal raced
            if resource == VOLUME_ATTACHMENTS and kw.get("patch_type") == "json" and not raced:
                raced = True
                await original(resource, name, {"metadata": {"finalizers": ["other/x"]}})
            return await original(resource, name, patch, *a, **kw)

        kube.patch = racing_patch  # type: ignore[method-assign]
        await kube.create(VOLUME_ATTACHMENTS, va_obj("va1", "pv1"))
        va = await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached") and v)
        assert raced
        assert va["metadata"]["finalizers"] == ["other/x", FINALIZER]
        env.drv.faults.remove(rule)


async def test_api_failure_on_pv_finalizer_sets_attach_error(tmp_path: Path) -> None:
    kube = FakeKube()
    kube.inject("patch", ApiError(500, "InternalError", "etcd down"), resource=PERSISTENT_VOLUMES)
    async with attacher(tmp_path, kube=kube) as env:
        await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached"))
        errors = [
            act.body["status"]["attachError"]["message"]
            for act in kube.actions_of("patch", VOLUME_ATTACHMENTS)
            if act.subresource == "status" and (act.body["status"].get("attachError") or {})
        ]
        assert errors == ["could not add PersistentVolume finalizer: etcd down"]


async def test_pv_and_va_finalizers_are_added_in_one_plan(tmp_path: Path) -> None:
    kube = FakeKube()
    async with attacher(tmp_path, kube=kube) as env:
        await env.volume()
        va = await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attached") and v)
        assert va["metadata"]["finalizers"] == [FINALIZER]
        pv = env.pv("pv1")
        assert pv is not None and pv["metadata"]["finalizers"] == [FINALIZER]
        assert len(env.drv.calls_of("ControllerPublishVolume")) == 1
    # Back to back, PV first (Go's order), nothing read or written in between, no second
    # publish; then the one status write.
    plurals = (PERSISTENT_VOLUMES.plural, VOLUME_ATTACHMENTS.plural)
    calls = [
        (act.verb, act.resource, act.subresource)
        for act in kube.actions
        if act.resource in plurals and act.verb not in ("list", "watch")
    ]
    first = calls.index(("patch", "persistentvolumes", None))
    assert calls[first:] == [
        ("patch", "persistentvolumes", None),
        ("patch", "volumeattachments", None),
        ("patch", "volumeattachments", "status"),
    ]


@pytest.mark.parametrize("gates", [("Unknown=true",)])
async def test_unknown_feature_gate_fails(gates: tuple[str, ...]) -> None:
    from csi_sidecars.attacher.flags import validate

    with pytest.raises(ConfigError):
        validate(AttacherFlags(gates=parse_gates(gates, FEATURE_GATES, defer_unknown=True)))


class DenyingKube(FakeKube):
    """Answers access reviews with "denied" for the listed (verb, resource) pairs."""

    def __init__(self, denied: set[tuple[str, str]]) -> None:
        super().__init__()
        self.denied = denied

    async def create(self, resource: Any, body: JsonDict, *args: Any, **kwargs: Any) -> JsonDict:
        if resource.plural == "selfsubjectaccessreviews":
            attrs = body["spec"]["resourceAttributes"]
            allowed = (attrs["verb"], attrs["resource"]) not in self.denied
            return {**body, "status": {"allowed": allowed}}
        return await super().create(resource, body, *args, **kwargs)


@pytest.mark.parametrize(
    ("denied", "va_events", "pod_lists"),
    [({("create", "events")}, False, False), ({("list", "pods")}, True, False)],
)
async def test_go_rbac_only_means_fewer_events_not_failures(
    tmp_path: Path, denied: set[tuple[str, str]], va_events: bool, pod_lists: bool
) -> None:
    kube = DenyingKube(denied)
    async with attacher(tmp_path, kube=kube) as env:
        rule = env.drv.faults.add("ControllerPublishVolume", code=grpc.StatusCode.INTERNAL)
        await env.volume()
        await poll(lambda: (v := env.va("va1")) and v.get("status", {}).get("attachError"))
        env.drv.faults.remove(rule)
        await poll(lambda: (v := env.va("va1")) and v["status"].get("attached"))
    # Leaving the block flushed the event queue.
    assert bool(env.event_reasons()) is va_events
    assert bool(kube.actions_of("list", PODS)) is pod_lists
