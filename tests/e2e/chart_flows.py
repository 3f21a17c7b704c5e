"""Storage flows the chart e2e tests drive through the API: attach, expand, snapshot.

Each creates its objects, waits (with a deadline) for the roles to act, and cleans up.
"""

from __future__ import annotations

from csi_sidecars.playground.apiclient import RawApi
from tests.e2e.chart_support import unique

VA = "/apis/storage.k8s.io/v1/volumeattachments"
SNAP = "/apis/snapshot.storage.k8s.io/v1"


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


async def snapshot_and_delete(api: RawApi, ns: str, driver: str, claim: str) -> None:
    """A snapshot of the claim becomes ready; deleted, its content goes too."""
    cls, snap = unique("vsclass"), unique("snap")
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
    snaps = f"{SNAP}/namespaces/{ns}/volumesnapshots"
    await api.create(
        snaps,
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": snap},
            "spec": {
                "volumeSnapshotClassName": cls,
                "source": {"persistentVolumeClaimName": claim},
            },
        },
    )
    ready = await api.wait_for(
        f"{snaps}/{snap}",
        lambda o: bool(o.get("status", {}).get("readyToUse")),
        what=f"snapshot {snap} ready",
    )
    content = ready["status"]["boundVolumeSnapshotContentName"]
    await api.delete(f"{snaps}/{snap}")
    await api.wait_deleted(f"{snaps}/{snap}", 60)
    await api.wait_deleted(f"{SNAP}/volumesnapshotcontents/{content}", 60)
    await api.delete(f"{SNAP}/volumesnapshotclasses/{cls}")
