"""A (group) snapshot's status derived from its content's, as pure functions.

The content's status is the sidecar's report of the backend snapshot; the controller mirrors it
onto the user's object: bound content name, creation time (the content's nanoseconds since the
epoch as an RFC 3339 time), readiness, restore size (bytes as a ``BinarySI`` quantity), the error
(copied, cleared once the content has none) and, for group members, the group's name.

Unlike Go, an error is compared by value: Go compares pointer addresses and so rewrites the
status on every sync while both objects carry an error (one API write per sync for nothing).

:func:`needs_update` is Go's ``needsUpdateSnapshotStatus``: the content informer handler uses it
to wake the snapshot when the content moved ahead of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import Event, JsonDict, normal
from csi_sidecars.kube.quantity import QuantityError, parse_quantity
from csi_sidecars.kube.quantity import format_binary_si as binary_si
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller import objects as so

Obj = Mapping[str, Any]


def rfc3339(nanoseconds: int) -> str:
    """A ``metav1.Time`` as Go serialises it: UTC, whole seconds."""
    when = dt.datetime.fromtimestamp(nanoseconds // 1_000_000_000, tz=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_zero(quantity: Any) -> bool:
    try:
        return parse_quantity(str(quantity)) == 0
    except QuantityError:
        return False


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What mirroring the content onto the snapshot changes.

    Attributes:
        patch: the merge patch of ``status`` (None: nothing to write).
        events: the Normal events of the transitions (created, ready).
    """

    patch: JsonDict | None
    events: tuple[Event, ...] = field(default=())


def snapshot_status(vs: Obj, content: Obj, group_name: str = "") -> StatusUpdate:
    """The status update of VolumeSnapshot ``vs`` from ``content`` (Go's updateSnapshotStatus).

    Args:
        vs: the snapshot as we know it.
        content: its content.
        group_name: the group snapshot the content's ``volumeGroupSnapshotHandle`` belongs to.
    """
    cur = o.status(vs)
    cst = o.status(content)
    changes: JsonDict = {}
    ready = cst.get("readyToUse") is True
    if not cur.get("boundVolumeSnapshotContentName"):
        changes["boundVolumeSnapshotContentName"] = o.name(content)
    created = cst.get("creationTime")
    if cur.get("creationTime") is None and isinstance(created, int):
        changes["creationTime"] = rfc3339(created)
    if cur.get("readyToUse") is not ready or "readyToUse" not in cur:
        changes["readyToUse"] = ready
    size = so.restore_size(content)
    have = cur.get("restoreSize")
    if size is not None and (have is None or (_is_zero(have) and size > 0)):
        changes["restoreSize"] = binary_si(size)
    content_error = cst.get("error") if isinstance(cst.get("error"), dict) else None
    if (cur.get("error") or None) != content_error:
        changes["error"] = content_error
    if group_name and not cur.get("volumeGroupSnapshotName"):
        changes["volumeGroupSnapshotName"] = group_name
    if not changes:
        return StatusUpdate(None)
    events: list[Event] = []
    snap = so.key(vs)
    if cur.get("creationTime") is None and "creationTime" in changes:
        events.append(
            normal(
                names.SNAPSHOT_CREATED,
                f"Snapshot {snap} was successfully created by the CSI driver.",
            )
        )
    if cur.get("readyToUse") is not True and ready:
        events.append(normal(names.SNAPSHOT_READY, f"Snapshot {snap} is ready to use."))
    return StatusUpdate({"status": changes}, tuple(events))


def needs_update(vs: Obj, content: Obj) -> bool:
    """Whether the snapshot's status lags the content's (Go's needsUpdateSnapshotStatus)."""
    cur = vs.get("status")
    cst = content.get("status")
    if not isinstance(cst, dict):
        return False
    if not isinstance(cur, dict):
        return True
    if not cur.get("boundVolumeSnapshotContentName"):
        return True
    if cur.get("creationTime") is None and cst.get("creationTime") is not None:
        return True
    if "readyToUse" in cst and cur.get("readyToUse") != cst.get("readyToUse"):
        return True
    size = cst.get("restoreSize")
    if cur.get("restoreSize") is None and size is not None:
        return True
    return bool(
        cur.get("restoreSize") is not None
        and _is_zero(cur.get("restoreSize"))
        and isinstance(size, int)
        and size > 0
    )


def group_status(vgs: Obj, content: Obj) -> StatusUpdate:
    """The status update of VolumeGroupSnapshot ``vgs`` from its content."""
    cur = o.status(vgs)
    cst = o.status(content)
    changes: JsonDict = {}
    ready = cst.get("readyToUse") is True
    if not cur.get("boundVolumeGroupSnapshotContentName"):
        changes["boundVolumeGroupSnapshotContentName"] = o.name(content)
    if cur.get("creationTime") is None and cst.get("creationTime") is not None:
        changes["creationTime"] = cst["creationTime"]
    if cur.get("readyToUse") is not ready or "readyToUse" not in cur:
        changes["readyToUse"] = ready
    content_error = cst.get("error") if isinstance(cst.get("error"), dict) else None
    if (cur.get("error") or None) != content_error:
        changes["error"] = content_error
    if not changes:
        return StatusUpdate(None)
    events: list[Event] = []
    group = so.key(vgs)
    if cur.get("creationTime") is None and "creationTime" in changes:
        events.append(
            normal(
                names.GROUP_SNAPSHOT_CREATED,
                f"GroupSnapshot {group} was successfully created by the CSI driver.",
            )
        )
    if cur.get("readyToUse") is not True and ready:
        events.append(normal(names.GROUP_SNAPSHOT_READY, f"GroupSnapshot {group} is ready to use."))
    return StatusUpdate({"status": changes}, tuple(events))


def group_needs_update(vgs: Obj, content: Obj) -> bool:
    """Whether the group snapshot's status lags its content's."""
    cur = vgs.get("status")
    cst = content.get("status")
    if not isinstance(cst, dict):
        return False
    if not isinstance(cur, dict):
        return True
    if not cur.get("boundVolumeGroupSnapshotContentName"):
        return True
    if cur.get("creationTime") is None and cst.get("creationTime") is not None:
        return True
    return "readyToUse" in cst and cur.get("readyToUse") != cst.get("readyToUse")
