"""Storage flows the chart e2e tests drive through the API: attach, expand, snapshot, restore.

Each creates its objects, waits (with a deadline) for the roles to act, and cleans up. The
restore flows also read the driver's persisted state (which snapshot a volume was created from)
and slow its CreateVolume down through its faults file, to catch a restore in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.driver import load_state, write_faults_file
from tests.e2e.chart_support import unique
from tests.e2e.provisioner_support import claims_path, wait_bound, wait_event

VA = "/apis/storage.k8s.io/v1/volumeattachments"
SNAP = "/apis/snapshot.storage.k8s.io/v1"
GROUP_API = "/apis/groupsnapshot.storage.k8s.io/v1"
#: The provisioner's finalizer on a VolumeSnapshot it restores from (an Update it makes).
PROVISIONER_FINALIZER = "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection"
#: The snapshot controller's: a snapshot still the source of a Pending claim is not deleted.
SNAPSHOT_AS_SOURCE_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"


def is_ready(obj: JsonDict) -> bool:
    """Whether a (group) snapshot is ready to use."""
    return bool((obj.get("status") or {}).get("readyToUse"))


async def attach_and_detach(api: RawApi, driver: str, node: str, pv_name: str) -> None:
    """A VolumeAttachment of ``pv_name`` to ``node`` is attached, then deleted and detached."""
    va_name = unique("va")
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": va_name},
        "spec": {
            "attacher": driver,
            "nodeName": node,
            "source": {"persistentVolumeName": pv_name},
        },
    }
    await api.create(VA, body)
    await api.wait_for(
        f"{VA}/{va_name}", lambda o: bool(o.get("status", {}).get("attached")), what="attached"
    )
    await api.delete(f"{VA}/{va_name}")
    await api.wait_deleted(f"{VA}/{va_name}", 60)


async def expand(api: RawApi, namespace: str, claim: str) -> None:
    """The claim grows to 2Mi (the driver needs no node step)."""
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
    await api.patch(path, {"spec": {"resources": {"requests": {"storage": "2Mi"}}}})
    await api.wait_for(
        path,
        lambda o: o.get("status", {}).get("capacity", {}).get("storage") == "2Mi",
        what=f"{claim} expanded to 2Mi",
    )


async def snapshot_class(api: RawApi, driver: str) -> str:
    """A VolumeSnapshotClass of ``driver`` (deletionPolicy Delete); its name."""
    cls = unique("vsclass")
    await api.create(
        f"{SNAP}/volumesnapshotclasses",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": cls},
            "driver": driver,
            "deletionPolicy": "Delete",
        },
    )
    return cls


def volume_snapshot(name: str, claim: str, cls: str) -> JsonDict:
    """A VolumeSnapshot ``name`` of ``claim`` in class ``cls``."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"volumeSnapshotClassName": cls, "source": {"persistentVolumeClaimName": claim}},
    }


async def snapshot_and_delete(api: RawApi, ns: str, driver: str, claim: str) -> None:
    """A snapshot of the claim becomes ready; deleted, its content goes too."""
    cls, snap = await snapshot_class(api, driver), unique("snap")
    snaps = f"{SNAP}/namespaces/{ns}/volumesnapshots"
    await api.create(snaps, volume_snapshot(snap, claim, cls))
    ready = await api.wait_for(f"{snaps}/{snap}", is_ready, what=f"snapshot {snap} ready")
    content = ready["status"]["boundVolumeSnapshotContentName"]
    await api.delete(f"{snaps}/{snap}")
    await api.wait_deleted(f"{snaps}/{snap}", 60)
    await api.wait_deleted(f"{SNAP}/volumesnapshotcontents/{content}", 60)
    await api.delete(f"{SNAP}/volumesnapshotclasses/{cls}")


# -- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """The driver's side of a flow: its state directory and its faults file."""

    statedir: Path
    faults: Path

    def volume(self, pv_name: str) -> Any:
        """The driver volume of PV ``pv_name`` (the driver names it after the PV)."""
        volumes = load_state(self.statedir).volumes.values()
        return next(v for v in volumes if v.name == pv_name)

    def snapshot_ids(self) -> set[str]:
        """IDs of the driver's snapshots."""
        return set(load_state(self.statedir).snapshots)

    def slow_create_volume(self, seconds: float) -> None:
        """Delay every CreateVolume by ``seconds`` (0: no delay)."""
        rules: list[Mapping[str, Any]] = (
            [{"method": "CreateVolume", "delay": seconds}] if seconds else []
        )
        write_faults_file(self.faults, rules)


def restoring(name: str, sc: str, snapshot: str, size: str, *, ref: bool = False) -> JsonDict:
    """A claim restored from VolumeSnapshot ``snapshot``: by ``dataSource``, or by
    ``dataSourceRef`` only (the API server fills ``dataSource`` from it)."""
    body: JsonDict = objects.pvc(name, sc, size=size)
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot}
    body["spec"]["dataSourceRef" if ref else "dataSource"] = source
    return body


def _finalizers(obj: JsonDict) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


async def _released(api: RawApi, path: str) -> None:
    """Wait until the provisioner's protection has left the VolumeSnapshot at ``path``."""
    await api.wait_for(
        path,
        lambda o: PROVISIONER_FINALIZER not in _finalizers(o),
        what=f"the provisioner's finalizer gone from {path.rsplit('/', 1)[-1]}",
    )


async def _restored(
    api: RawApi, ns: str, backend: Backend, claim: str, handle: str, size: str
) -> JsonDict:
    """Wait for ``claim`` Bound; check its driver volume was created from ``handle``."""
    pvc: JsonDict = await wait_bound(api, ns, claim)
    volume = backend.volume(pvc["spec"]["volumeName"])
    assert volume.source_snapshot_id == handle, (claim, volume)
    assert pvc["status"]["capacity"]["storage"] == size
    return pvc


async def restore_from_snapshot(
    api: RawApi, ns: str, driver: str, sc: str, claim: str, backend: Backend
) -> list[str]:
    """Two claims restored from a snapshot of ``claim``, one by ``dataSource`` and one by
    ``dataSourceRef``; the snapshot deleted while they are restoring waits for them.

    While CreateVolume runs (slowed down), the VolumeSnapshot carries both protections: the
    provisioner's (its Update on volumesnapshots) and the snapshot controller's; its deletion
    is held back with a ``SnapshotDeletePending`` event. Once both claims are Bound from the
    snapshot's handle, the provisioner releases it and the snapshot, its content and the
    driver's snapshot go. Returns the restored claims (the caller deletes them).
    """
    cls, snap = await snapshot_class(api, driver), unique("snap")
    snaps = f"{SNAP}/namespaces/{ns}/volumesnapshots"
    try:
        await api.create(snaps, volume_snapshot(snap, claim, cls))
        ready = await api.wait_for(f"{snaps}/{snap}", is_ready, what=f"snapshot {snap} ready")
        content_name = ready["status"]["boundVolumeSnapshotContentName"]
        content = await api.get(f"{SNAP}/volumesnapshotcontents/{content_name}")
        handle, size = content["status"]["snapshotHandle"], ready["status"]["restoreSize"]
        assert handle in backend.snapshot_ids()

        # Long enough for the snapshot controller to see the deletion while both are Pending,
        # on a busy machine too; far below the chart's provisioner --timeout (60s).
        backend.slow_create_volume(8.0)
        copies = [unique("restored"), unique("restored-ref")]
        try:
            await api.create(claims_path(ns), restoring(copies[0], sc, snap, size))
            await api.create(claims_path(ns), restoring(copies[1], sc, snap, size, ref=True))
            protected = await api.wait_for(
                f"{snaps}/{snap}",
                lambda o: PROVISIONER_FINALIZER in _finalizers(o),
                what="the provisioner's finalizer on the snapshot",
            )
            assert SNAPSHOT_AS_SOURCE_FINALIZER in _finalizers(protected)
            await api.delete(f"{snaps}/{snap}")
            (pending, *_) = await wait_event(api, ns, snap, "SnapshotDeletePending")
            assert "restore" in pending["message"], pending
            for copy in copies:
                await _restored(api, ns, backend, copy, handle, size)
        finally:
            backend.slow_create_volume(0)
        await api.wait_deleted(f"{snaps}/{snap}", 60)
        await api.wait_deleted(f"{SNAP}/volumesnapshotcontents/{content_name}", 60)
        assert handle not in backend.snapshot_ids()
        return copies
    finally:
        await api.delete(f"{SNAP}/volumesnapshotclasses/{cls}")


async def restore_from_group_member(
    api: RawApi, ns: str, driver: str, sc: str, backend: Backend
) -> list[str]:
    """A claim restored from a member of a VolumeGroupSnapshot of two labelled claims.

    Needs ``CSIVolumeGroupSnapshot`` on the snapshotter and the snapshot controller. The group
    snapshot's deletion takes its member VolumeSnapshots and its content along. Returns every
    claim it made (the caller deletes them).
    """
    label, cls, group = unique("app"), unique("vgsclass"), unique("group")
    await api.create(
        f"{GROUP_API}/volumegroupsnapshotclasses",
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {"name": cls},
            "driver": driver,
            "deletionPolicy": "Delete",
        },
    )
    members = [f"{label}-0", f"{label}-1"]
    try:
        for member in members:
            body = objects.pvc(member, sc)
            body["metadata"]["labels"] = {"app": label}
            await api.create(claims_path(ns), body)
        for member in members:
            await wait_bound(api, ns, member)
        groups = f"{GROUP_API}/namespaces/{ns}/volumegroupsnapshots"
        await api.create(
            groups,
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": group},
                "spec": {
                    "volumeGroupSnapshotClassName": cls,
                    "source": {"selector": {"matchLabels": {"app": label}}},
                },
            },
        )
        ready = await api.wait_for(
            f"{groups}/{group}", is_ready, timeout=90, what="the group snapshot ready"
        )
        snaps = f"{SNAP}/namespaces/{ns}/volumesnapshots"
        listed = (await api.get(snaps))["items"]
        of_group = [
            s
            for s in listed
            if any(o.get("name") == group for o in s["metadata"].get("ownerReferences") or [])
        ]
        assert sorted(s["spec"]["source"]["persistentVolumeClaimName"] for s in of_group) == (
            members
        )
        (first,) = [
            s for s in of_group if s["spec"]["source"]["persistentVolumeClaimName"] == members[0]
        ]
        name = first["metadata"]["name"]
        first = await api.wait_for(f"{snaps}/{name}", is_ready, what=f"member {name} ready")
        content = await api.get(
            f"{SNAP}/volumesnapshotcontents/{first['status']['boundVolumeSnapshotContentName']}"
        )
        handle, size = content["status"]["snapshotHandle"], first["status"]["restoreSize"]
        copy = unique("from-group")
        await api.create(claims_path(ns), restoring(copy, sc, name, size))
        await _restored(api, ns, backend, copy, handle, size)
        await _released(api, f"{snaps}/{name}")

        await api.delete(f"{groups}/{group}")
        await api.wait_deleted(f"{groups}/{group}", 90)
        for s in of_group:
            await api.wait_deleted(f"{snaps}/{s['metadata']['name']}", 60)
        await api.wait_deleted(
            f"{GROUP_API}/volumegroupsnapshotcontents/"
            f"{ready['status']['boundVolumeGroupSnapshotContentName']}",
            60,
        )
        assert handle not in backend.snapshot_ids()
        return [*members, copy]
    finally:
        await api.delete(f"{GROUP_API}/volumegroupsnapshotclasses/{cls}")
