"""The snapshotter end to end on the kube fake and the playground driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.snapshotter import names
from csi_sidecars.snapshotter.command import run_snapshotter
from tests.component.snapshotter.harness import (
    DRIVER,
    NAMESPACE,
    create_content,
    dynamic_content,
    make_flags,
    poll,
    running,
    snapshot_class,
)

VSC = api.VOLUME_SNAPSHOT_CONTENTS


async def test_dynamic_snapshot_then_delete(tmp_path: Path) -> None:
    async with running(tmp_path, extra_create_metadata=True) as env:
        vol = await env.volume("vol-a")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        body = dynamic_content("snapcontent-a", vol, uid="11111111-2222-3333-4444-555555555555")
        await create_content(env.kube, body)
        got = await poll(lambda: env.ready("snapcontent-a"), what="ready")
        snap = env.snapshots()["snapshot-11111111-2222-3333-4444-555555555555"]
        assert snap.source_volume_id == vol
        assert snap.parameters == {
            "tier": "fast",
            api.PREFIXED_VOLUME_SNAPSHOT_NAME_KEY: "snap-snapcontent-a",
            api.PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: NAMESPACE,
            api.PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY: "snapcontent-a",
        }
        assert got["status"]["snapshotHandle"] == snap.snapshot_id
        assert got["status"]["restoreSize"] == 1 << 20
        assert isinstance(got["status"]["creationTime"], int)
        await poll(lambda: not (env.content("snapcontent-a") or {})["metadata"].get("annotations"))

        await env.delete_content("snapcontent-a")
        await poll(lambda: env.content("snapcontent-a") is None, what="content gone")
        assert env.snapshots() == {}
        # The driver name and capabilities were read once, at start-up.
        assert env.drv.methods().count("GetPluginInfo") == 1
        assert env.drv.methods().count("ControllerGetCapabilities") == 1


async def test_readiness_is_polled_without_informer_events(tmp_path: Path) -> None:
    async with running(
        tmp_path, driver={"snapshot_ready_delay": 1.0}, resync_period=900.0, retry_start=0.25
    ) as env:
        vol = await env.volume("vol-b")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        await create_content(env.kube, dynamic_content("c-b", vol))
        await poll(
            lambda: (env.content("c-b") or {}).get("status", {}).get("snapshotHandle") or None,
            what="handle",
        )
        first = env.content("c-b")
        assert first is not None and first["status"]["readyToUse"] is False
        await poll(lambda: env.ready("c-b"), timeout=10, what="ready after the delay")
        # Polled every --retry-interval-start (the snapshot is young), not in a tight loop.
        assert 3 <= len(env.drv.calls_of("CreateSnapshot")) <= 7


async def test_pre_provisioned_content(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        vol = await env.volume("vol-c")
        made = await env.conn.controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(name="backup-1", source_volume_id=vol), timeout=5
        )
        handle = made.snapshot.snapshot_id
        static = {
            "metadata": {"name": "static-1"},
            "spec": {
                "driver": DRIVER,
                "deletionPolicy": "Delete",
                "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"name": "restore-me", "namespace": NAMESPACE},
            },
        }
        await create_content(env.kube, static)
        got = await poll(lambda: env.ready("static-1"), what="ready")
        assert got["status"]["snapshotHandle"] == handle
        assert [r.snapshot_id for r in env.drv.calls_of("ListSnapshots")] == [handle]
        assert len(env.drv.calls_of("CreateSnapshot")) == 1  # only the test's own
        # Unbound and deleted: the backend snapshot goes with it (policy Delete).
        await env.kube.patch(VSC, "static-1", {"metadata": {"finalizers": [api.VSC_FINALIZER]}})
        await env.kube.delete(VSC, "static-1")
        await poll(lambda: env.content("static-1") is None, what="gone")
        assert env.snapshots() == {}


async def test_conflicts_never_show_as_errors(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        vol = await env.volume("vol-d")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        conflict = ApiError(
            409,
            "Conflict",
            'Operation cannot be fulfilled on volumesnapshotcontents "c-d": the object has been '
            "modified; please apply your changes to the latest version and try again",
        )
        env.kube.inject("patch", conflict, resource=VSC, times=3)
        await create_content(env.kube, dynamic_content("c-d", vol))
        await poll(lambda: env.ready("c-d"), what="ready")
        status_writes = [
            act.body for act in env.kube.actions_of("patch", VSC) if act.subresource == "status"
        ]
        assert all((body["status"].get("error") is None) for body in status_writes)
        assert [e for e in env.events() if e["type"] == "Warning"] == []


async def test_failure_event_names_the_driver(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        env.drv.faults.add(
            "CreateSnapshot", code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="quota", times=1
        )
        vol = await env.volume("vol-e")
        await create_content(env.kube, dynamic_content("c-e", vol))
        event = await poll(
            lambda: next(
                (e for e in env.events() if e["reason"] == names.SNAPSHOT_CREATION_FAILED), None
            )
        )
        assert event["source"]["component"] == f"csi-snapshotter {DRIVER}"
        assert event["message"].endswith('desc = quota" (final error)')
        assert event["involvedObject"]["kind"] == "VolumeSnapshotContent"
        await poll(lambda: env.ready("c-e"), what="ready after the error")


async def test_metrics_count_csi_operations(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        vol = await env.volume("vol-f")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        await create_content(env.kube, dynamic_content("c-f", vol))
        await poll(lambda: env.ready("c-f"))
        count = env.metrics.registry.get_sample_value(
            "csi_sidecar_operations_seconds_count",
            {
                "driver_name": DRIVER,
                "method_name": "/csi.v1.Controller/CreateSnapshot",
                "grpc_status_code": "OK",
            },
        )
        assert count is not None and count >= 1


async def test_driver_without_snapshots_exits_1(tmp_path: Path) -> None:
    from csi_sidecars.csi.connection import connect
    from csi_sidecars.playground.driver.server import run_driver

    async with run_driver(
        tmp_path, driver_name=DRIVER, remove_capabilities=["CREATE_DELETE_SNAPSHOT"]
    ) as drv:
        conn = await connect(drv.endpoint)
        try:
            code = await asyncio.wait_for(
                run_snapshotter(make_flags(), asyncio.Event(), port=FakeKube(), conn=conn), 10
            )
        finally:
            await conn.close()
    assert code == 1


async def test_node_deployment_handles_only_its_contents(tmp_path: Path) -> None:
    async with running(tmp_path, node_deployment=True, node="node-1") as env:
        vol = await env.volume("vol-g")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        for name, node in (("other", "node-2"), ("mine", "node-1")):
            body = dynamic_content(name, vol)
            body["metadata"]["labels"] = {api.VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL: node}
            await create_content(env.kube, body)
        await poll(lambda: env.ready("mine"), what="ready")
        other = env.content("other")
        assert other is not None and "status" not in other
        assert len(env.drv.calls_of("CreateSnapshot")) == 1
