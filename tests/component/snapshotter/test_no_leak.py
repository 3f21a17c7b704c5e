"""Deleting while CreateSnapshot is in flight or failing never leaks a backend snapshot.

external-snapshotter #1388 / #1434: with a slow or failing driver, a VolumeSnapshot deleted
meanwhile either leaks its backend snapshot or its content never goes away.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.playground.driver.faults import AFTER
from csi_sidecars.playground.driver.server import run_driver
from csi_sidecars.snapshotter import names
from tests.component.snapshotter.harness import (
    DRIVER,
    create_content,
    dynamic_content,
    poll,
    running,
    snapshot_class,
)

VSC = api.VOLUME_SNAPSHOT_CONTENTS


async def test_deleted_while_create_snapshot_is_in_flight(tmp_path: Path) -> None:
    async with running(tmp_path, resync_period=900.0) as env:
        vol = await env.volume("vol-1")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        env.drv.faults.delay("CreateSnapshot", 1.0, times=1)
        await create_content(env.kube, dynamic_content("c1", vol))
        await env.drv.wait_for_calls("CreateSnapshot", 1, finished=False)
        await env.delete_content("c1")
        await poll(lambda: env.content("c1") is None, timeout=5, what="content gone")
        assert env.snapshots() == {}
        assert len(env.drv.calls_of("DeleteSnapshot")) == 1


async def test_deleted_while_create_snapshot_times_out(tmp_path: Path) -> None:
    # The driver creates the snapshot but the replies are lost (DeadlineExceeded) 3 times.
    async with running(tmp_path, resync_period=900.0) as env:
        vol = await env.volume("vol-2")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        env.drv.faults.add(
            "CreateSnapshot", code=grpc.StatusCode.DEADLINE_EXCEEDED, when=AFTER, times=3
        )
        await create_content(env.kube, dynamic_content("c2", vol))
        await env.drv.wait_for_calls("CreateSnapshot", 1)
        assert len(env.snapshots()) == 1  # it exists on the backend, unknown to Kubernetes
        await env.delete_content("c2")
        await poll(lambda: env.content("c2") is None, timeout=10, what="content gone")
        assert env.snapshots() == {}


async def test_quota_error_lets_a_deleted_content_go(tmp_path: Path) -> None:
    # Go retries ResourceExhausted forever and keeps the content (#1434).
    async with running(tmp_path, resync_period=900.0) as env:
        vol = await env.volume("vol-3")
        await env.kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        env.drv.faults.add("CreateSnapshot", code=grpc.StatusCode.RESOURCE_EXHAUSTED)
        await create_content(env.kube, dynamic_content("c3", vol))
        await env.drv.wait_for_calls("CreateSnapshot", 1)
        await env.delete_content("c3")
        await poll(lambda: env.content("c3") is None, timeout=10, what="content gone")
        assert env.snapshots() == {}


async def test_restart_after_lost_reply_with_class_deleted(tmp_path: Path) -> None:
    # Process 1: CreateSnapshot created the snapshot but the reply was lost. Then it stops, the
    # class and the VolumeSnapshot are deleted. Process 2 must still find and delete it (Go
    # cannot rebuild the request without the class and keeps the content forever).
    kube = FakeKube()
    async with run_driver(tmp_path, driver_name=DRIVER) as drv:
        async with running(tmp_path, kube=kube, drv=drv, resync_period=900.0) as env:
            vol = await env.volume("vol-4")
            await kube.create(
                api.VOLUME_SNAPSHOT_CLASSES, snapshot_class(parameters={"tier": "gold"})
            )
            drv.faults.add("CreateSnapshot", code=grpc.StatusCode.DEADLINE_EXCEEDED, when=AFTER)
            await create_content(kube, dynamic_content("c4", vol))
            await drv.wait_for_calls("CreateSnapshot", 1)
            got = await poll(
                lambda: (kube.peek(VSC, "c4") or {}).get("status", {}).get("error"),
                what="transient error",
            )
            assert got["message"].endswith("(transient error)")
        assert len(env.snapshots()) == 1
        content = kube.peek(VSC, "c4")
        assert content is not None
        assert names.ANN_CREATE_REQUEST in content["metadata"]["annotations"]
        drv.faults.clear()
        await kube.delete(api.VOLUME_SNAPSHOT_CLASSES, "gold")
        await kube.patch(
            VSC, "c4", {"metadata": {"annotations": {api.ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}}}
        )
        await kube.delete(VSC, "c4")
        async with running(tmp_path, kube=kube, drv=drv, resync_period=900.0) as env2:
            await poll(lambda: env2.content("c4") is None, timeout=10, what="content gone")
            assert env2.snapshots() == {}
            requests = drv.calls_of("CreateSnapshot")
            assert dict(requests[-1].parameters) == {"tier": "gold"}
