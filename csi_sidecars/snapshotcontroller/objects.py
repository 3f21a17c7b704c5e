"""Readers for the snapshot kinds' fields, with the Go controller's nil-versus-empty meanings.

The Go types use pointers where absence matters: a VolumeSnapshot whose
``spec.source.persistentVolumeClaimName`` is absent is pre-provisioned, while a group member whose
volume has no PV carries ``""``. Readers returning ``str | None`` keep that distinction; the
others follow :mod:`csi_sidecars.kube.objects` (absent or malformed -> the empty value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.kube import objects as o
from csi_sidecars.kube.snapshots import GROUP_SNAPSHOT_GROUP, VOLUME_GROUP_SNAPSHOTS

Obj = Mapping[str, Any]

#: ``apiVersion`` of the VolumeGroupSnapshot owner references the controller writes and reads.
GROUP_OWNER_API_VERSION = f"{GROUP_SNAPSHOT_GROUP}/{VOLUME_GROUP_SNAPSHOTS.version}"


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def key(obj: Obj | None) -> str:
    """``namespace/name`` (``name`` for cluster-scoped objects), as Go's ``SnapshotKey``."""
    ns = o.namespace(obj)
    return f"{ns}/{o.name(obj)}" if ns else o.name(obj)


# -- VolumeSnapshot ----------------------------------------------------------------------------


def source_claim(vs: Obj | None) -> str | None:
    """``spec.source.persistentVolumeClaimName`` (None when absent)."""
    return _opt_str(o.dig(vs, "spec", "source", "persistentVolumeClaimName"))


def source_content(vs: Obj | None) -> str | None:
    """``spec.source.volumeSnapshotContentName`` (None when absent)."""
    return _opt_str(o.dig(vs, "spec", "source", "volumeSnapshotContentName"))


def class_name(obj: Obj | None) -> str | None:
    """``spec.volumeSnapshotClassName`` (None when absent)."""
    return _opt_str(o.dig(obj, "spec", "volumeSnapshotClassName"))


def bound_content(vs: Obj | None) -> str:
    """``status.boundVolumeSnapshotContentName`` ("" when unset)."""
    return str(o.status(vs).get("boundVolumeSnapshotContentName") or "")


def is_ready(obj: Obj | None) -> bool:
    """``status.readyToUse`` is true."""
    return o.status(obj).get("readyToUse") is True


def is_created(obj: Obj | None) -> bool:
    """``status.creationTime`` is set (the snapshot was cut)."""
    return o.status(obj).get("creationTime") is not None


def error_message(obj: Obj | None) -> str | None:
    """``status.error.message`` (None without an error)."""
    err = o.status(obj).get("error")
    if not isinstance(err, dict):
        return None
    return str(err.get("message") or "")


def group_name(vs: Obj | None) -> str:
    """``status.volumeGroupSnapshotName`` ("" when unset)."""
    return str(o.status(vs).get("volumeGroupSnapshotName") or "")


def group_parent(vs: Obj | None) -> str:
    """The name of the VolumeGroupSnapshot owning ``vs`` (v1 ownerRef), "" when none."""
    refs = o.meta(vs).get("ownerReferences")
    for ref in refs if isinstance(refs, list) else []:
        if (
            isinstance(ref, dict)
            and ref.get("kind") == "VolumeGroupSnapshot"
            and ref.get("apiVersion") == GROUP_OWNER_API_VERSION
        ):
            return str(ref.get("name") or "")
    return ""


def is_group_member(vs: Obj | None) -> bool:
    """Go's ``IsVolumeGroupSnapshotMember``: owned by a VolumeGroupSnapshot."""
    return bool(group_parent(vs))


# -- VolumeSnapshotContent ---------------------------------------------------------------------


def volume_handle(content: Obj | None) -> str | None:
    """``spec.source.volumeHandle`` (dynamic contents)."""
    return _opt_str(o.dig(content, "spec", "source", "volumeHandle"))


def snapshot_handle(content: Obj | None) -> str | None:
    """``spec.source.snapshotHandle`` (pre-provisioned contents)."""
    return _opt_str(o.dig(content, "spec", "source", "snapshotHandle"))


def ref(content: Obj | None, field: str = "volumeSnapshotRef") -> Mapping[str, Any]:
    """``spec.<field>`` (the object reference back to the snapshot)."""
    value = o.spec(content).get(field)
    return value if isinstance(value, dict) else {}


def ref_key(content: Obj | None, field: str = "volumeSnapshotRef") -> str:
    """``namespace/name`` of the referenced snapshot ("" when the reference has no name)."""
    r = ref(content, field)
    if not r.get("name"):
        return ""
    return f"{r.get('namespace') or ''}/{r.get('name')}"


def deletion_policy(obj: Obj | None) -> str:
    """``spec.deletionPolicy`` of a content (or ``deletionPolicy`` of a class)."""
    return str(o.spec(obj).get("deletionPolicy") or (obj or {}).get("deletionPolicy") or "")


def driver(obj: Obj | None) -> str:
    """``spec.driver`` of a content (or ``driver`` of a class)."""
    return str(o.spec(obj).get("driver") or (obj or {}).get("driver") or "")


def points_to(content: Obj | None, snapshot: Obj | None, field: str = "volumeSnapshotRef") -> bool:
    """Go's ``IsVolumeSnapshotRefSet``: the reference names ``snapshot`` by name, namespace, uid."""
    r = ref(content, field)
    return (
        str(r.get("name") or "") == o.name(snapshot)
        and str(r.get("namespace") or "") == o.namespace(snapshot)
        and str(r.get("uid") or "") == o.uid(snapshot)
    )


def restore_size(content: Obj | None) -> int | None:
    """``status.restoreSize`` in bytes (None when absent or not a number)."""
    value = o.status(content).get("restoreSize")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- group kinds -------------------------------------------------------------------------------


def group_class_name(obj: Obj | None) -> str | None:
    """``spec.volumeGroupSnapshotClassName`` (None when absent)."""
    return _opt_str(o.dig(obj, "spec", "volumeGroupSnapshotClassName"))


def group_selector(vgs: Obj | None) -> Mapping[str, Any] | None:
    """``spec.source.selector`` (None when absent)."""
    value = o.dig(vgs, "spec", "source", "selector")
    return value if isinstance(value, dict) else None


def group_source_content(vgs: Obj | None) -> str | None:
    """``spec.source.volumeGroupSnapshotContentName`` (None when absent)."""
    return _opt_str(o.dig(vgs, "spec", "source", "volumeGroupSnapshotContentName"))


def bound_group_content(vgs: Obj | None) -> str:
    """``status.boundVolumeGroupSnapshotContentName`` ("" when unset)."""
    return str(o.status(vgs).get("boundVolumeGroupSnapshotContentName") or "")


def group_volume_handles(content: Obj | None) -> list[str]:
    """``spec.source.volumeHandles`` of a dynamic group content."""
    return o.str_list(o.dig(content, "spec", "source", "volumeHandles"))


def group_snapshot_handles(content: Obj | None) -> Mapping[str, Any] | None:
    """``spec.source.groupSnapshotHandles`` of a pre-provisioned group content."""
    value = o.dig(content, "spec", "source", "groupSnapshotHandles")
    return value if isinstance(value, dict) else None


def group_handle(obj: Obj | None) -> str | None:
    """``status.volumeGroupSnapshotHandle`` of a (group or member) content."""
    return _opt_str(o.status(obj).get("volumeGroupSnapshotHandle"))
