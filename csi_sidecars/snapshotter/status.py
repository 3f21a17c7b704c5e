"""The writes the snapshotter makes to contents, built purely.

Status writes are merge patches of the ``status`` subresource without a resourceVersion: only
this sidecar writes content status, so there is nothing to conflict with, and a 409 can never
turn into a user-visible error (external-snapshotter #748). Metadata edits (the being-created
annotation, the recorded request, the finalizer) are JSON patches guarded by ``test``
operations: a decision made from a stale copy fails and is made again, silently.

Field formats are the CRDs': a VolumeSnapshotContent's ``creationTime`` is int64 nanoseconds,
``restoreSize`` int64 bytes; a VolumeGroupSnapshotContent's ``creationTime`` is an RFC 3339
time, its ``volumeSnapshotInfoList`` entries carry nanoseconds again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from csi_sidecars.kube.objects import annotations_of
from csi_sidecars.kube.patch import add_finalizer_patch, escape_pointer, set_annotations_patch
from csi_sidecars.kube.resources import JsonDict
from csi_sidecars.snapshotter.objects import status_of

MARKER_VALUE = "yes"


def rfc3339(seconds: float) -> str:
    """A ``metav1.Time`` (second precision, UTC)."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_ns(ts: Any) -> int | None:
    """A protobuf ``Timestamp`` field as Unix nanoseconds; None when unset or zero."""
    if ts is None:
        return None
    value = int(ts.seconds) * 1_000_000_000 + int(ts.nanos)
    return value or None


def snapshot_status_patch(
    old: Mapping[str, Any] | None,
    *,
    handle: str,
    ready: bool,
    created_ns: int,
    size: int,
    group_handle: str = "",
) -> JsonDict | None:
    """The status fields a successful answer sets (None: nothing changes).

    Go's ``updateSnapshotContentStatus``: the handle, creation time, size and group handle are
    only filled in when missing (size only when positive); ``readyToUse`` follows the answer.
    Unlike Go, a left-over ``error`` is cleared by any successful answer, not only when the
    snapshot becomes ready, so a recovered content does not keep showing an old failure.
    """
    old = old or {}
    out: JsonDict = {}
    if not old.get("snapshotHandle"):
        out["snapshotHandle"] = handle
    if old.get("readyToUse") is not ready:
        out["readyToUse"] = ready
    if old.get("creationTime") is None:
        out["creationTime"] = created_ns
    if old.get("restoreSize") is None and size > 0:
        out["restoreSize"] = size
    if not old.get("volumeGroupSnapshotHandle") and group_handle:
        out["volumeGroupSnapshotHandle"] = group_handle
    if old.get("error") is not None:
        out["error"] = None
    return out or None


def error_status_patch(old: Mapping[str, Any] | None, message: str, now: float) -> JsonDict | None:
    """``readyToUse=false`` and ``error`` with ``message``; None when that message is set."""
    error = (old or {}).get("error")
    if isinstance(error, dict) and error.get("message") == message:
        return None
    return {"readyToUse": False, "error": {"message": message, "time": rfc3339(now)}}


#: What a successful DeleteSnapshot clears (Go's ``clearVolumeContentStatus``).
CLEARED_SNAPSHOT_STATUS: JsonDict = {
    "snapshotHandle": None,
    "readyToUse": None,
    "creationTime": None,
    "restoreSize": None,
}

#: What a successful DeleteVolumeGroupSnapshot clears.
CLEARED_GROUP_STATUS: JsonDict = {
    "volumeGroupSnapshotHandle": None,
    "readyToUse": None,
    "creationTime": None,
    "error": None,
}


def snapshot_info(snap: Any) -> JsonDict:
    """One ``volumeSnapshotInfoList`` entry from a ``csi.v1.Snapshot``."""
    out: JsonDict = {
        "volumeHandle": snap.source_volume_id,
        "snapshotHandle": snap.snapshot_id,
        "readyToUse": bool(snap.ready_to_use),
    }
    created = timestamp_ns(snap.creation_time) if snap.HasField("creation_time") else None
    if created is not None:
        out["creationTime"] = created
    if snap.size_bytes > 0:
        out["restoreSize"] = int(snap.size_bytes)
    return out


def group_status_patch(
    old: Mapping[str, Any] | None,
    *,
    handle: str,
    ready: bool,
    created: float,
    infos: Sequence[JsonDict],
) -> JsonDict | None:
    """Go's ``updateGroupSnapshotContentStatus`` (same rules as :func:`snapshot_status_patch`)."""
    old = old or {}
    out: JsonDict = {}
    if not old.get("volumeGroupSnapshotHandle"):
        out["volumeGroupSnapshotHandle"] = handle
    if old.get("readyToUse") is not ready:
        out["readyToUse"] = ready
    if old.get("creationTime") is None:
        out["creationTime"] = rfc3339(created)
    if not old.get("volumeSnapshotInfoList") and infos:
        out["volumeSnapshotInfoList"] = [dict(i) for i in infos]
    if old.get("error") is not None:
        out["error"] = None
    return out or None


def status_body(fields: JsonDict) -> JsonDict:
    """The merge patch document for the ``status`` subresource."""
    return {"status": fields}


def mark_patch(
    obj: Mapping[str, Any], marker: str, finalizer: str, record: tuple[str, str] | None
) -> list[JsonDict] | None:
    """Set the being-created ``marker`` (and the recorded request), add ``finalizer``.

    The finalizer is the one the snapshot-controller adds to every bound content anyway; adding
    it with the marker means a content cannot vanish while a CreateSnapshot may be in flight.
    None when everything is already in place.
    """
    wanted = {marker: MARKER_VALUE}
    if record is not None:
        wanted[record[0]] = record[1]
    ops = [
        *(set_annotations_patch(obj, wanted) or []),
        *(add_finalizer_patch(obj, finalizer) or []),
    ]
    return ops or None


def unmark_patch(obj: Mapping[str, Any], keys: Sequence[str]) -> list[JsonDict] | None:
    """Remove the annotations ``keys`` that are present, each guarded by a ``test``."""
    ann = annotations_of(obj)
    ops: list[JsonDict] = []
    for key in keys:
        if key in ann:
            path = "/metadata/annotations/" + escape_pointer(key)
            ops += [{"op": "test", "path": path, "value": ann[key]}, {"op": "remove", "path": path}]
    return ops or None


def has_status(obj: Mapping[str, Any]) -> bool:
    """Whether the object has a status at all."""
    return status_of(obj) is not None
