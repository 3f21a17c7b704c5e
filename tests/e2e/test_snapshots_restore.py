"""Restore with every role ours: provisioner, snapshot-controller and snapshotter together.

A claim restored from a dynamic snapshot, a snapshot whose deletion waits for a restore still
in progress, and a claim restored from a member of a group snapshot. The restored volume's
source in the driver is the snapshot's handle, and once the snapshots go, the driver holds no
snapshot while the restored volumes stay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from tests.e2e.provisioner_support import claims_path, events_of, wait_bound, wait_event
from tests.e2e.snapshots_support import (
    DEFAULT_GROUP_CLASS,
    VGSCLASSES,
    VGSCS,
    VSCLASSES,
    VSCS,
    SnapshotBed,
    groups_path,
    snapshot_class,
    snapshots_path,
    start_bed,
    stop_bed,
    terminating,
    volume_snapshot,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

#: The provisioner's finalizer on a VolumeSnapshot it restores from.
RESTORE_FINALIZER = "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bed(control_plane: ControlPlane) -> AsyncIterator[SnapshotBed]:
    bed = await start_bed(control_plane, "snaprest")
    await bed.start_controller("python")
    await bed.start_snapshotter("python")
    try:
        yield bed
    finally:
        bed.driver.faults([])
        for proc in (bed.controller, bed.snapshotter, *bed.others):
            if proc is not None and not proc.running:
                print(f"----- {proc.name} exited {proc.returncode} -----\n{proc.log_tail(80)}")
        await stop_bed(bed)


def restoring(name: str, sc: str, snapshot: str, size: str = "1Mi") -> dict[str, Any]:
    """A claim restored from VolumeSnapshot ``snapshot``."""
    body: dict[str, Any] = objects.pvc(name, sc, size=size)
    body["spec"]["dataSource"] = {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": snapshot,
    }
    return body


def volume_of(bed: SnapshotBed, pvc: dict[str, Any]) -> Any:
    """The driver volume of a Bound claim."""
    return next(v for v in bed.driver.volumes().values() if v.name == pvc["spec"]["volumeName"])


async def released(api: RawApi, namespace: str, snapshot: str) -> None:
    """Wait until the provisioner no longer protects ``snapshot``."""

    async def free() -> bool:
        vs = await api.get(f"{snapshots_path(namespace)}/{snapshot}")
        return RESTORE_FINALIZER not in (vs["metadata"].get("finalizers") or [])

    await poll_until(free, 30, f"the provisioner's protection to leave {snapshot}")


async def drop_claim(bed: SnapshotBed, namespace: str, name: str) -> None:
    """Delete a claim and wait until its volume is gone from the driver."""
    pvc = await bed.api.get(f"{claims_path(namespace)}/{name}")
    await bed.api.delete(f"{claims_path(namespace)}/{name}")
    await bed.api.wait_deleted(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}", 60)

    async def gone() -> bool:
        return pvc["spec"]["volumeName"] not in bed.driver.volume_names()

    await poll_until(gone, 30, f"the volume of {name} deleted")


async def test_restore_from_a_dynamic_snapshot(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = await snapshot_class(api, bed.driver.name)
    try:
        await bed.claim(namespace, "src")
        await api.create(snapshots_path(namespace), volume_snapshot("s", claim="src", cls=cls))
        vs = await wait_ready(api, namespace, "s")
        content = await api.get(f"{VSCS}/{vs['status']['boundVolumeSnapshotContentName']}")
        handle = content["status"]["snapshotHandle"]
        await api.create(claims_path(namespace), restoring("copy", bed.storage_class, "s"))
        pvc = await wait_bound(api, namespace, "copy")
        volume = volume_of(bed, pvc)
        assert volume.source_snapshot_id == handle
        assert volume.capacity_bytes == 1 << 20
        await released(api, namespace, "s")

        await api.delete(f"{snapshots_path(namespace)}/s")
        await api.wait_deleted(f"{snapshots_path(namespace)}/s", 60)
        await api.wait_deleted(f"{VSCS}/{content['metadata']['name']}", 60)
        assert handle not in bed.backend()
        assert volume.volume_id in bed.driver.volumes(), "the restored volume stays"
        await drop_claim(bed, namespace, "copy")
        await bed.assert_no_leak()
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_snapshot_deletion_waits_for_a_restore_in_progress(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = await snapshot_class(api, bed.driver.name)
    try:
        await bed.claim(namespace, "src")
        await api.create(snapshots_path(namespace), volume_snapshot("s", claim="src", cls=cls))
        vs = await wait_ready(api, namespace, "s")
        content_name = vs["status"]["boundVolumeSnapshotContentName"]
        handle = (await api.get(f"{VSCS}/{content_name}"))["status"]["snapshotHandle"]
        # The restore takes a while: the volume is created from the snapshot slowly.
        bed.driver.faults([{"method": "CreateVolume", "delay": 5.0}])
        await api.create(claims_path(namespace), restoring("copy", bed.storage_class, "s"))
        vs_path = f"{snapshots_path(namespace)}/s"
        await api.wait_for(
            vs_path,
            lambda o: RESTORE_FINALIZER in (o["metadata"].get("finalizers") or []),
            timeout=30,
            what="the restore under way",
        )
        await api.delete(vs_path)
        pending = await wait_event(api, namespace, "s", "SnapshotDeletePending")
        assert "restore" in pending[0]["message"]
        claim = await api.get(f"{claims_path(namespace)}/copy")
        assert claim["status"]["phase"] == "Pending"
        # Nothing was deleted under the running restore.
        assert await api.get(f"{VSCS}/{content_name}")
        assert handle in bed.backend()

        pvc = await wait_bound(api, namespace, "copy")
        bed.driver.faults([])
        assert volume_of(bed, pvc).source_snapshot_id == handle
        await api.wait_deleted(vs_path, 60)
        await api.wait_deleted(f"{VSCS}/{content_name}", 60)
        assert handle not in bed.backend()
        await drop_claim(bed, namespace, "copy")
        assert not await terminating(api, [snapshots_path(namespace), VSCS])
        await bed.assert_no_leak()
    finally:
        bed.driver.faults([])
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_restore_from_a_group_member(bed: SnapshotBed, api: RawApi, namespace: str) -> None:
    cls = f"vgsclass-{namespace}"
    await api.create(
        VGSCLASSES,
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {"name": cls, "annotations": {DEFAULT_GROUP_CLASS: "true"}},
            "driver": bed.driver.name,
            "deletionPolicy": "Delete",
        },
    )
    try:
        for name in ("db-0", "db-1"):
            await bed.claim(namespace, name, {"app": "db"})
        await api.create(
            groups_path(namespace),
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": "g"},
                "spec": {"source": {"selector": {"matchLabels": {"app": "db"}}}},
            },
        )
        group = await api.wait_for(
            f"{groups_path(namespace)}/g",
            lambda o: (o.get("status") or {}).get("readyToUse") is True,
            timeout=90,
            what="the group snapshot ready",
        )
        members = (await api.get(snapshots_path(namespace)))["items"]
        member = next(
            m for m in members if m["spec"]["source"]["persistentVolumeClaimName"] == "db-0"
        )
        name = member["metadata"]["name"]
        member = await wait_ready(api, namespace, name)
        content = await api.get(f"{VSCS}/{member['status']['boundVolumeSnapshotContentName']}")
        handle = content["status"]["snapshotHandle"]
        [backend_group] = bed.backend_groups().values()
        assert handle in backend_group.snapshot_ids

        await api.create(claims_path(namespace), restoring("db-0-copy", bed.storage_class, name))
        pvc = await wait_bound(api, namespace, "db-0-copy")
        volume = volume_of(bed, pvc)
        assert volume.source_snapshot_id == handle
        assert not await events_of(api, namespace, "db-0-copy", "ProvisioningFailed")
        await released(api, namespace, name)

        await api.delete(f"{groups_path(namespace)}/g")
        await api.wait_deleted(f"{groups_path(namespace)}/g", 90)
        for m in members:
            await api.wait_deleted(f"{snapshots_path(namespace)}/{m['metadata']['name']}", 60)
        await api.wait_deleted(
            f"{VGSCS}/{group['status']['boundVolumeGroupSnapshotContentName']}", 60
        )

        async def group_gone() -> bool:
            left = set(bed.backend()) & set(backend_group.snapshot_ids)
            return not bed.backend_groups() and not left

        await poll_until(group_gone, 60, "the group snapshot deleted on the driver")
        assert volume.volume_id in bed.driver.volumes(), "the restored volume stays"
        await drop_claim(bed, namespace, "db-0-copy")
        await bed.assert_no_leak()
    finally:
        await api.delete(f"{VGSCLASSES}/{cls}")
