"""Object builders for the snapshot-controller tests (VS, VSC, classes, PVC, PV, group kinds)."""

from __future__ import annotations

from typing import Any

from csi_sidecars.kube.snapshots import (
    ANN_IS_DEFAULT_GROUP_SNAPSHOT_CLASS,
    ANN_IS_DEFAULT_SNAPSHOT_CLASS,
    GROUP_SNAPSHOT_GROUP,
    SNAPSHOT_GROUP,
    VSC_FINALIZER,
)

DRIVER = "hostpath.csi.k8s.io"
NS = "default"
NOW = "2026-01-02T03:04:05Z"
#: 2026-01-01T00:00:00Z in nanoseconds
CREATED_NS = 1767225600 * 1_000_000_000
CREATED = "2026-01-01T00:00:00Z"

Obj = dict[str, Any]


def _meta(
    name: str,
    *,
    ns: str | None = None,
    uid: str | None = None,
    finalizers: list[str] | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    owners: list[Obj] | None = None,
) -> Obj:
    meta: Obj = {"name": name}
    if ns:
        meta["namespace"] = ns
    if uid:
        meta["uid"] = uid
    if finalizers is not None:
        meta["finalizers"] = list(finalizers)
    if annotations is not None:
        meta["annotations"] = dict(annotations)
    if labels is not None:
        meta["labels"] = dict(labels)
    if owners is not None:
        meta["ownerReferences"] = owners
    if deleting:
        meta["deletionTimestamp"] = "set"
    return meta


def vs(
    name: str,
    uid: str,
    *,
    claim: str | None = None,
    content: str | None = None,
    cls: str | None = None,
    bound: str | None = None,
    ready: bool | None = None,
    created: str | None = None,
    size: str | None = None,
    error: str | None = None,
    group: str | None = None,
    status: bool = True,
    ns: str = NS,
    **meta: Any,
) -> Obj:
    source: Obj = {}
    if claim is not None:
        source["persistentVolumeClaimName"] = claim
    if content is not None:
        source["volumeSnapshotContentName"] = content
    spec: Obj = {"source": source}
    if cls is not None:
        spec["volumeSnapshotClassName"] = cls
    out: Obj = {
        "apiVersion": f"{SNAPSHOT_GROUP}/v1",
        "kind": "VolumeSnapshot",
        "metadata": _meta(name, ns=ns, uid=uid, **meta),
        "spec": spec,
    }
    st: Obj = {}
    if bound is not None:
        st["boundVolumeSnapshotContentName"] = bound
    if ready is not None:
        st["readyToUse"] = ready
    if created is not None:
        st["creationTime"] = created
    if size is not None:
        st["restoreSize"] = size
    if error is not None:
        st["error"] = {"message": error, "time": NOW}
    if group is not None:
        st["volumeGroupSnapshotName"] = group
    if status and st:
        out["status"] = st
    return out


def ref(name: str, uid: str | None, ns: str = NS, *, full: bool = False) -> Obj:
    out: Obj = {"kind": "VolumeSnapshot", "namespace": ns, "name": name}
    if uid is not None:
        out["uid"] = uid
    if full:
        out["apiVersion"] = f"{SNAPSHOT_GROUP}/v1"
    return out


def vsc(
    name: str,
    snap: str,
    snap_uid: str | None,
    *,
    handle: str | None = None,
    snapshot_handle: str | None = None,
    policy: str = "Delete",
    cls: str | None = None,
    ready: bool | None = None,
    created: int | None = None,
    size: int | None = None,
    error: str | None = None,
    group_handle: str | None = None,
    ns: str = NS,
    snap_ref: Obj | None = None,
    finalizers: list[str] | None = None,
    **meta: Any,
) -> Obj:
    source: Obj = {}
    if handle is not None:
        source["volumeHandle"] = handle
    if snapshot_handle is not None:
        source["snapshotHandle"] = snapshot_handle
    spec: Obj = {
        "volumeSnapshotRef": snap_ref or ref(snap, snap_uid, ns),
        "source": source,
        "deletionPolicy": policy,
        "driver": DRIVER,
    }
    if cls is not None:
        spec["volumeSnapshotClassName"] = cls
    out: Obj = {
        "apiVersion": f"{SNAPSHOT_GROUP}/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": _meta(
            name, finalizers=[VSC_FINALIZER] if finalizers is None else finalizers, **meta
        ),
        "spec": spec,
    }
    st: Obj = {}
    if ready is not None:
        st["readyToUse"] = ready
    if created is not None:
        st["creationTime"] = created
    if size is not None:
        st["restoreSize"] = size
    if error is not None:
        st["error"] = {"message": error, "time": NOW}
    if snapshot_handle is None and (ready is not None or created is not None):
        st["snapshotHandle"] = f"snap-{name}"
    if group_handle is not None:
        st["volumeGroupSnapshotHandle"] = group_handle
    if st:
        out["status"] = st
    return out


def vsclass(
    name: str,
    *,
    driver: str = DRIVER,
    policy: str = "Delete",
    default: bool = False,
    params: dict[str, str] | None = None,
) -> Obj:
    out: Obj = {
        "apiVersion": f"{SNAPSHOT_GROUP}/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": _meta(
            name, annotations={ANN_IS_DEFAULT_SNAPSHOT_CLASS: "true"} if default else None
        ),
        "driver": driver,
        "deletionPolicy": policy,
    }
    if params is not None:
        out["parameters"] = params
    return out


def pvc(
    name: str,
    *,
    pv: str | None = None,
    phase: str = "Bound",
    uid: str | None = None,
    ns: str = NS,
    restore_from: str | None = None,
    **meta: Any,
) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if pv is not None:
        spec["volumeName"] = pv
    if restore_from is not None:
        spec["dataSource"] = {
            "apiGroup": SNAPSHOT_GROUP,
            "kind": "VolumeSnapshot",
            "name": restore_from,
        }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, ns=ns, uid=uid or f"uid-{name}", **meta),
        "spec": spec,
        "status": {"phase": phase},
    }


def pv(
    name: str,
    claim: str,
    *,
    claim_uid: str | None = None,
    ns: str = NS,
    driver: str | None = DRIVER,
    handle: str | None = None,
    mode: str | None = "Filesystem",
    affinity: list[Obj] | None = None,
) -> Obj:
    spec: Obj = {
        "capacity": {"storage": "1Gi"},
        "claimRef": {"name": claim, "namespace": ns, "uid": claim_uid or f"uid-{claim}"},
    }
    if driver is not None:
        spec["csi"] = {"driver": driver, "volumeHandle": handle or f"vol-{name}"}
    else:
        spec["hostPath"] = {"path": "/tmp"}
    if mode is not None:
        spec["volumeMode"] = mode
    if affinity is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": affinity}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": _meta(name), "spec": spec}


def owner(vgs_name: str, vgs_uid: str) -> Obj:
    return {
        "apiVersion": f"{GROUP_SNAPSHOT_GROUP}/v1",
        "kind": "VolumeGroupSnapshot",
        "name": vgs_name,
        "uid": vgs_uid,
    }


def vgsclass(
    name: str,
    *,
    driver: str = DRIVER,
    policy: str = "Delete",
    default: bool = False,
    params: dict[str, str] | None = None,
) -> Obj:
    out: Obj = {
        "apiVersion": f"{GROUP_SNAPSHOT_GROUP}/v1",
        "kind": "VolumeGroupSnapshotClass",
        "metadata": _meta(
            name, annotations={ANN_IS_DEFAULT_GROUP_SNAPSHOT_CLASS: "true"} if default else None
        ),
        "driver": driver,
        "deletionPolicy": policy,
    }
    if params is not None:
        out["parameters"] = params
    return out


def vgs(
    name: str,
    uid: str,
    *,
    selector: Obj | None = None,
    content: str | None = None,
    cls: str | None = None,
    bound: str | None = None,
    ready: bool | None = None,
    error: str | None = None,
    created: str | None = None,
    ns: str = NS,
    **meta: Any,
) -> Obj:
    source: Obj = {}
    if selector is not None:
        source["selector"] = selector
    if content is not None:
        source["volumeGroupSnapshotContentName"] = content
    spec: Obj = {"source": source}
    if cls is not None:
        spec["volumeGroupSnapshotClassName"] = cls
    out: Obj = {
        "apiVersion": f"{GROUP_SNAPSHOT_GROUP}/v1",
        "kind": "VolumeGroupSnapshot",
        "metadata": _meta(name, ns=ns, uid=uid, **meta),
        "spec": spec,
    }
    st: Obj = {}
    if bound is not None:
        st["boundVolumeGroupSnapshotContentName"] = bound
    if ready is not None:
        st["readyToUse"] = ready
    if created is not None:
        st["creationTime"] = created
    if error is not None:
        st["error"] = {"message": error, "time": NOW}
    if st:
        out["status"] = st
    return out


def vgsc(
    name: str,
    group: str,
    group_uid: str | None,
    *,
    handles: list[str] | None = None,
    static: Obj | None = None,
    policy: str = "Delete",
    cls: str | None = None,
    ready: bool | None = None,
    group_handle: str | None = None,
    infos: list[Obj] | None = None,
    created: str | None = None,
    ns: str = NS,
    finalizers: list[str] | None = None,
    full_ref: bool = False,
    **meta: Any,
) -> Obj:
    from csi_sidecars.kube.snapshots import VGSC_FINALIZER

    source: Obj = {}
    if handles is not None:
        source["volumeHandles"] = handles
    if static is not None:
        source["groupSnapshotHandles"] = static
    ref: Obj = {"kind": "VolumeGroupSnapshot", "namespace": ns, "name": group}
    if group_uid is not None:
        ref["uid"] = group_uid
    if full_ref:
        ref["apiVersion"] = f"{GROUP_SNAPSHOT_GROUP}/v1"
    spec: Obj = {
        "volumeGroupSnapshotRef": ref,
        "source": source,
        "deletionPolicy": policy,
        "driver": DRIVER,
    }
    if cls is not None:
        spec["volumeGroupSnapshotClassName"] = cls
    out: Obj = {
        "apiVersion": f"{GROUP_SNAPSHOT_GROUP}/v1",
        "kind": "VolumeGroupSnapshotContent",
        "metadata": _meta(
            name, finalizers=[VGSC_FINALIZER] if finalizers is None else finalizers, **meta
        ),
        "spec": spec,
    }
    st: Obj = {}
    if ready is not None:
        st["readyToUse"] = ready
    if group_handle is not None:
        st["volumeGroupSnapshotHandle"] = group_handle
    if infos is not None:
        st["volumeSnapshotInfoList"] = infos
    if created is not None:
        st["creationTime"] = created
    if st:
        out["status"] = st
    return out
