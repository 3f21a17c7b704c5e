"""Pure readers of the PVC and PV fields the resizer decides from, and the condition mergers.

Sizes are exact numbers (:class:`fractions.Fraction` from :mod:`csi_sidecars.kube.quantity`), so
``2Gi`` and ``2048Mi`` compare equal, as Go's ``Quantity.Cmp`` does. A missing or malformed size
reads as None and the callers treat it the way Go treats a zero quantity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from csi_sidecars.kube.objects import JsonDict, Obj, annotations_of, dig, meta, spec, status
from csi_sidecars.kube.quantity import QuantityError, parse_quantity
from csi_sidecars.resizer import names

Conditions = list[JsonDict]


def size(value: Any) -> Fraction | None:
    """A quantity string as an exact number; None when absent or malformed."""
    if not isinstance(value, str | int):
        return None
    try:
        return parse_quantity(str(value))
    except QuantityError:
        return None


def request(pvc: Obj) -> str | None:
    """``spec.resources.requests.storage`` as written."""
    value = dig(pvc, "spec", "resources", "requests", names.STORAGE)
    return str(value) if value is not None else None


def capacity(pvc: Obj) -> str | None:
    """``status.capacity.storage`` as written."""
    value = dig(pvc, "status", "capacity", names.STORAGE)
    return str(value) if value is not None else None


def allocated(pvc: Obj) -> str | None:
    """``status.allocatedResources.storage`` as written (None: not recorded)."""
    value = dig(pvc, "status", "allocatedResources", names.STORAGE)
    return str(value) if value is not None else None


def resize_status(pvc: Obj) -> str:
    """``status.allocatedResourceStatuses.storage`` ("" when absent)."""
    return str(dig(pvc, "status", "allocatedResourceStatuses", names.STORAGE) or "")


def pv_capacity(pv: Obj) -> str | None:
    """``spec.capacity.storage`` of a PV as written."""
    value = dig(pv, "spec", "capacity", names.STORAGE)
    return str(value) if value is not None else None


def zero_if_none(value: Fraction | None) -> Fraction:
    """Go's zero quantity for an absent one."""
    return value if value is not None else Fraction(0)


def is_bound(pvc: Obj) -> bool:
    """``status.phase == Bound``."""
    return status(pvc).get("phase") == "Bound"


def volume_name(pvc: Obj) -> str:
    """``spec.volumeName``."""
    return str(spec(pvc).get("volumeName") or "")


def spec_vac(pvc: Obj) -> str:
    """``spec.volumeAttributesClassName`` ("" when unset)."""
    return str(spec(pvc).get("volumeAttributesClassName") or "")


def current_vac(pvc: Obj) -> str:
    """``status.currentVolumeAttributesClassName`` ("" when unset)."""
    return str(status(pvc).get("currentVolumeAttributesClassName") or "")


def modify_status(pvc: Obj) -> Mapping[str, Any] | None:
    """``status.modifyVolumeStatus`` (None when unset)."""
    value = status(pvc).get("modifyVolumeStatus")
    return value if isinstance(value, dict) else None


def csi_driver(pv: Obj) -> str:
    """``spec.csi.driver`` ("" for a PV that is not CSI)."""
    return str(dig(pv, "spec", "csi", "driver") or "")


def volume_handle(pv: Obj) -> str:
    """``spec.csi.volumeHandle``."""
    return str(dig(pv, "spec", "csi", "volumeHandle") or "")


def bound_to(pv: Obj, pvc: Obj) -> bool:
    """Whether ``pv.spec.claimRef`` names ``pvc`` (namespace and UID), as Go checks."""
    ref = dig(pv, "spec", "claimRef")
    if not isinstance(ref, dict):
        return False
    return ref.get("namespace") == meta(pvc).get("namespace") and ref.get("uid") == meta(pvc).get(
        "uid"
    )


def conditions(pvc: Obj) -> Conditions:
    """``status.conditions`` (copies of the dicts)."""
    value = status(pvc).get("conditions")
    if not isinstance(value, list):
        return []
    return [dict(c) for c in value if isinstance(c, dict)]


def has_condition(pvc: Obj, kind: str, *, true_only: bool = False) -> bool:
    """Whether the PVC has a condition of type ``kind`` (with status True if ``true_only``)."""
    return any(
        c.get("type") == kind and (not true_only or c.get("status") == "True")
        for c in conditions(pvc)
    )


def fs_resize_pending(pvc: Obj) -> bool:
    """A ``FileSystemResizePending=True`` condition: the node step is what is left."""
    return has_condition(pvc, names.FS_RESIZE_PENDING, true_only=True)


def has_annotation(obj: Obj, key: str) -> bool:
    """Whether ``metadata.annotations`` has ``key``."""
    return key in annotations_of(obj)


def condition(kind: str, now: str, message: str = "", reason: str = "") -> JsonDict:
    """A ``True`` PVC condition as the resizer writes it (empty reason/message left out)."""
    out: JsonDict = {"type": kind, "status": "True", "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def merge_resize_conditions(
    old: Iterable[JsonDict], new: Sequence[JsonDict], *, keep_old: bool
) -> Conditions:
    """The PVC conditions after an expansion step.

    Conditions the expansion does not own are kept in place; an owned one is replaced by the
    new condition of its type, else kept only with ``keep_old``; new types are appended.
    """
    wanted = {c["type"]: c for c in new}
    out: Conditions = []
    for cond in old:
        kind = cond.get("type")
        if kind not in names.RESIZE_CONDITIONS:
            out.append(cond)
        elif kind in wanted:
            out.append(wanted.pop(str(kind)))
        elif keep_old:
            out.append(cond)
    out.extend(c for c in new if c["type"] in wanted)
    return out


def merge_modify_conditions(old: Iterable[JsonDict], new: Sequence[JsonDict]) -> Conditions:
    """The PVC conditions after a modification step.

    Other conditions are kept; one of a new type is replaced, its ``lastTransitionTime``
    carried over unless its status or reason changed (then it is the new ``lastProbeTime``).
    """
    wanted = {c["type"]: c for c in new}
    out: Conditions = []
    for cond in old:
        fresh = wanted.pop(str(cond.get("type")), None)
        if fresh is None:
            out.append(cond)
            continue
        fresh = dict(fresh)
        if fresh.get("reason", "") != cond.get("reason", "") or fresh.get("status") != cond.get(
            "status"
        ):
            fresh["lastTransitionTime"] = fresh.get("lastProbeTime")
        else:
            fresh["lastTransitionTime"] = cond.get("lastTransitionTime")
        out.append(fresh)
    for cond in new:
        if cond["type"] in wanted:
            out.append({**cond, "lastTransitionTime": cond.get("lastProbeTime")})
    return out


def without(conds: Iterable[JsonDict], *kinds: str) -> Conditions:
    """``conds`` minus those of the given types."""
    return [c for c in conds if c.get("type") not in kinds]
