"""Reading VolumeSnapshotContents and VolumeGroupSnapshotContents, and what the handlers queue.

Readers follow :mod:`csi_sidecars.kube.objects`: absent or malformed fields read as empty. The
predicates are Go's (``shouldDelete``, ``isDriverMatch``, ``ShouldEnqueueContentChange``) with
two differences, each for a Go weakness:

* :func:`should_delete`: a deleted content whose backend snapshot handle is already known is
  deleted even if the being-created annotation is still there (Go sets it again for every
  readiness poll, so one failing poll blocks the deletion); with the handle, a CreateSnapshot
  in flight can only answer that same handle, so nothing can leak.
* :func:`needs_work` filters the initial list and the periodic resyncs: a ready content that
  is not being deleted and carries no being-created annotation has nothing to do, so 15,000 of
  them cost no syncs and do not delay a new snapshot (Go queues them all, #1148).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.objects import (
    annotations_of,
    dig,
    is_deleting,
    resource_version,
    spec,
    str_list,
)
from csi_sidecars.snapshotter import names

Obj = Mapping[str, Any]
ClassLookup = Callable[[str], Obj | None]

#: What the content informers keep (metadata.name/namespace/resourceVersion always are).
CONTENT_FIELDS = (
    "metadata.uid",
    "metadata.deletionTimestamp",
    "metadata.finalizers",
    "metadata.annotations",
    "spec",
    "status",
)
CLASS_FIELDS = ("driver", "parameters", "deletionPolicy")


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def status_of(obj: Obj | None) -> Mapping[str, Any] | None:
    """``status``, or None when the object has none (Go's ``Status == nil``)."""
    value = (obj or {}).get("status")
    return value if isinstance(value, dict) else None


def status_str(obj: Obj | None, key: str) -> str:
    """A string field of ``status``."""
    return _str((status_of(obj) or {}).get(key))


def is_ready(obj: Obj | None) -> bool:
    """``status.readyToUse`` is true."""
    return (status_of(obj) or {}).get("readyToUse") is True


def error_message(obj: Obj | None) -> str:
    """``status.error.message``."""
    return _str(dig(obj, "status", "error", "message"))


# -- VolumeSnapshotContent ---------------------------------------------------------------------


def volume_handle(vsc: Obj) -> str:
    """``spec.source.volumeHandle`` (dynamic contents)."""
    return _str(dig(vsc, "spec", "source", "volumeHandle"))


def source_snapshot_handle(vsc: Obj) -> str:
    """``spec.source.snapshotHandle`` (pre-provisioned contents)."""
    return _str(dig(vsc, "spec", "source", "snapshotHandle"))


def snapshot_ref(obj: Obj, field: str = "volumeSnapshotRef") -> Mapping[str, Any]:
    """``spec.volumeSnapshotRef`` (or ``spec.<field>``)."""
    value = spec(obj).get(field)
    return value if isinstance(value, dict) else {}


def ref_uid(obj: Obj, field: str = "volumeSnapshotRef") -> str:
    """The UID of the (group) snapshot the content is bound to."""
    return _str(snapshot_ref(obj, field).get("uid"))


def class_name(obj: Obj, field: str = "volumeSnapshotClassName") -> str:
    """``spec.volumeSnapshotClassName`` (or ``spec.<field>``); "" when unset."""
    return _str(spec(obj).get(field))


def deletion_policy(obj: Obj) -> str:
    """``spec.deletionPolicy``."""
    return _str(spec(obj).get("deletionPolicy"))


def is_group_member(vsc: Obj) -> bool:
    """Whether the content belongs to a group snapshot (never CreateSnapshot for it)."""
    return api.VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION in annotations_of(vsc)


def should_delete(vsc: Obj) -> bool:
    """Whether a deleted content is ready for DeleteSnapshot / finalizer removal (see module)."""
    if not is_deleting(vsc):
        return False
    if source_snapshot_handle(vsc) and not ref_uid(vsc):
        return True
    ann = annotations_of(vsc)
    if api.ANN_VOLUME_SNAPSHOT_BEING_CREATED in ann and not status_str(vsc, "snapshotHandle"):
        return False
    return api.ANN_VOLUME_SNAPSHOT_BEING_DELETED in ann


# -- VolumeGroupSnapshotContent ----------------------------------------------------------------


def group_volume_handles(vgsc: Obj) -> list[str]:
    """``spec.source.volumeHandles`` (dynamic group contents)."""
    return str_list(dig(vgsc, "spec", "source", "volumeHandles"))


def group_source_handles(vgsc: Obj) -> Mapping[str, Any] | None:
    """``spec.source.groupSnapshotHandles`` (pre-provisioned group contents), or None."""
    value = dig(vgsc, "spec", "source", "groupSnapshotHandles")
    return value if isinstance(value, dict) else None


def group_should_delete(vgsc: Obj) -> bool:
    """Go's ``shouldDeleteGroupSnapshotContent``, with the same handle rule as VSCs."""
    if not is_deleting(vgsc):
        return False
    if group_source_handles(vgsc) is not None and not ref_uid(vgsc, "volumeGroupSnapshotRef"):
        return True
    ann = annotations_of(vgsc)
    if api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED in ann and not status_str(
        vgsc, "volumeGroupSnapshotHandle"
    ):
        return False
    return api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED in ann


# -- which objects are ours, and which changes matter -----------------------------------------


def driver_matches(obj: Obj, driver: str, class_of: ClassLookup, *, group: bool = False) -> bool:
    """Go's ``isDriverMatch``: a source, our driver, and a class (if known) of our driver."""
    if group:
        has_source = bool(group_volume_handles(obj)) or group_source_handles(obj) is not None
        cls = class_name(obj, "volumeGroupSnapshotClassName")
    else:
        has_source = bool(volume_handle(obj) or source_snapshot_handle(obj))
        cls = class_name(obj)
    if not has_source or _str(spec(obj).get("driver")) != driver:
        return False
    if cls:
        found = class_of(cls)
        if found is not None and _str(found.get("driver")) != driver:
            return False
    return True


#: Annotations the sidecar itself writes: changing them alone needs no sync.
CONTROLLED_ANNOTATIONS = frozenset(
    {
        api.ANN_VOLUME_SNAPSHOT_BEING_CREATED,
        api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
        names.ANN_CREATE_REQUEST,
    }
)


def needs_work(obj: Obj) -> bool:
    """Whether a content may need anything from us (used for adds and resyncs)."""
    if is_deleting(obj) or not is_ready(obj):
        return True
    return any(k in CONTROLLED_ANNOTATIONS for k in annotations_of(obj))


def _sanitized(obj: Obj) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "finalizers", "annotations")
    }
    meta["annotations"] = {
        k: v for k, v in annotations_of(obj).items() if k not in CONTROLLED_ANNOTATIONS
    }
    out["metadata"] = meta
    return out


def should_enqueue_change(old: Obj, new: Obj) -> bool:
    """Go's ``ShouldEnqueueContentChange``, with resyncs filtered by :func:`needs_work`.

    Changes to status, finalizers, managed fields or our own annotations alone are skipped
    (our own writes continue in the plan that made them); a change to ``readyToUse=true`` is
    not (Go's fix for #1388).
    """
    if resource_version(old) == resource_version(new):
        return needs_work(new)
    if is_ready(new) and not is_ready(old):
        return True
    return _sanitized(old) != _sanitized(new)
