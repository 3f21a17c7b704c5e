"""Snapshots deleted moments after their creation leak nothing (#1388's shape, found by chaos).

Our snapshot-controller and snapshotter, the playground driver answering CreateSnapshot and
CreateVolumeGroupSnapshot slowly (so a creation is in flight when the deletion comes).
VolumeSnapshots and VolumeGroupSnapshots are created and deleted after delays from 0 to 800 ms,
and a content is posted after its snapshot is already gone (what the late POST of a stalled,
replaced leader does). Within a bounded poll: no snapshot, content or group object is left,
the driver holds no snapshot and no group snapshot, the claims carry no
``pvc-as-source-protection`` and both roles still run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from tests.e2e.snapshots_support import (
    PVC_FINALIZER,
    VGSCLASSES,
    VGSCS,
    VSC_FINALIZER,
    VSCLASSES,
    VSCS,
    SnapshotBed,
    claim_finalizers,
    groups_path,
    snapshot_class,
    snapshots_path,
    start_bed,
    stop_bed,
    terminating,
    volume_snapshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

DELAYS = [0.0, 0.02, 0.06, 0.1, 0.2, 0.4, 0.8]
SLOW = 1.5


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bed(control_plane: ControlPlane) -> AsyncIterator[SnapshotBed]:
    bed = await start_bed(control_plane, "snapquick")
    await bed.start_controller("python")
    await bed.start_snapshotter("python")
    bed.driver.faults(
        [
            {"method": "CreateSnapshot", "delay": SLOW},
            {"method": "CreateVolumeGroupSnapshot", "delay": SLOW},
        ]
    )
    try:
        yield bed
    finally:
        bed.driver.faults([])
        for proc in (bed.controller, bed.snapshotter):
            if proc is not None:
                print(f"----- {proc.name} -----\n{proc.log_tail(60)}")
        await stop_bed(bed)


async def create_then_delete(api: RawApi, path: str, body: dict[str, Any], delay: float) -> None:
    await api.create(path, body)
    await asyncio.sleep(delay)
    await api.delete(f"{path}/{body['metadata']['name']}")


async def left_behind(bed: SnapshotBed, namespace: str) -> dict[str, Any]:
    """What is still there of the test (empty when everything is gone)."""
    left: dict[str, Any] = {}
    snaps = [s["metadata"]["name"] for s in (await bed.api.get(snapshots_path(namespace)))["items"]]
    groups = [g["metadata"]["name"] for g in (await bed.api.get(groups_path(namespace)))["items"]]
    contents = [c["metadata"]["name"] for c in await bed.contents()]
    group_contents = [
        c["metadata"]["name"]
        for c in (await bed.api.get(VGSCS))["items"]
        if c["spec"]["driver"] == bed.driver.name
    ]
    for what, found in (
        ("snapshots", snaps),
        ("groups", groups),
        ("contents", contents),
        ("group contents", group_contents),
        ("driver snapshots", sorted(bed.backend())),
        ("driver groups", sorted(bed.backend_groups())),
    ):
        if found:
            left[what] = found
    for claim in ("quick-0", "quick-1"):
        if PVC_FINALIZER in await claim_finalizers(bed.api, namespace, claim):
            left[f"claim {claim}"] = PVC_FINALIZER
    return left


async def test_deleted_right_after_creation_leaks_nothing(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = await snapshot_class(api, bed.driver.name)
    group_cls = f"vgsclass-{namespace}"
    await api.create(
        VGSCLASSES,
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {"name": group_cls},
            "driver": bed.driver.name,
            "deletionPolicy": "Delete",
        },
    )
    try:
        for claim in ("quick-0", "quick-1"):
            await bed.claim(namespace, claim, {"app": "quick"})
        handle = await bed.volume_handle(namespace, "quick-0")
        snaps = snapshots_path(namespace)
        groups = groups_path(namespace)
        work = []
        for i, delay in enumerate(DELAYS):
            body = volume_snapshot(f"q-{i}", claim=f"quick-{i % 2}", cls=cls)
            work.append(create_then_delete(api, snaps, body, delay))
        for i, delay in enumerate(DELAYS[::2]):
            body = {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": f"qg-{i}"},
                "spec": {
                    "volumeGroupSnapshotClassName": group_cls,
                    "source": {"selector": {"matchLabels": {"app": "quick"}}},
                },
            }
            work.append(create_then_delete(api, groups, body, delay))
        await asyncio.gather(*work)
        # A content whose POST reached the API server after its snapshot was gone: the sidecar
        # cuts it, the controller deletes it, the sidecar deletes the backend snapshot.
        late = uuid.uuid4()
        await api.create(
            VSCS,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": f"snapcontent-{late}", "finalizers": [VSC_FINALIZER]},
                "spec": {
                    "driver": bed.driver.name,
                    "deletionPolicy": "Delete",
                    "source": {"volumeHandle": handle},
                    "volumeSnapshotClassName": cls,
                    "volumeSnapshotRef": {
                        "apiVersion": "snapshot.storage.k8s.io/v1",
                        "kind": "VolumeSnapshot",
                        "name": "q-late",
                        "namespace": namespace,
                        "uid": str(late),
                    },
                },
            },
        )

        async def nothing_left() -> bool:
            return not await left_behind(bed, namespace)

        try:
            await poll_until(nothing_left, 120, "every snapshot, content and driver snapshot gone")
        except TimeoutError:
            raise AssertionError(f"left behind: {await left_behind(bed, namespace)}") from None
        assert not await terminating(api, [snaps, VSCS, groups, VGSCS])
        assert bed.controller is not None and bed.controller.running
        assert bed.snapshotter is not None and bed.snapshotter.running
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")
        await api.delete(f"{VGSCLASSES}/{group_cls}")
