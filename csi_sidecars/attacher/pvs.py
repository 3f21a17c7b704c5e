"""PersistentVolume finalizer decisions and the informer event filters of the attacher.

The attacher puts ``external-attacher/<driver>`` on every PV it attaches, so the PV cannot
disappear while a VolumeAttachment still needs it. The finalizer comes off when the PV is being
deleted (or is an in-tree PV whose CSI migration was rolled back, i.e. whose
``pv.kubernetes.io/migrated-to`` is not this driver) and no VolumeAttachment in the cache, of
any attacher, names the PV. The trivial handler never touches PVs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.attacher import names, patches
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.objects import in_tree_plugin, va_pv_name
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import (
    annotations_of,
    finalizers,
    is_deleting,
    name,
    resource_version,
)

Obj = Mapping[str, Any]


def _migration_rolled_back(pv: Obj, driver: str) -> bool:
    """An in-tree PV that is no longer migrated to ``driver``: the finalizer must go."""
    if in_tree_plugin(pv) is None:
        return False
    return annotations_of(pv).get(names.MIGRATED_TO_ANNOTATION) != driver


def should_enqueue_pv(pv: Obj, cfg: AttacherConfig) -> bool:
    """Whether a PV add/update goes onto the PV queue (Go's ``processFinalizers``)."""
    if cfg.trivial or cfg.finalizer not in finalizers(pv):
        return False
    return is_deleting(pv) or _migration_rolled_back(pv, cfg.driver_name)


def pv_to_sync_on_va_delete(va: Obj) -> str | None:
    """The PV to re-check when a VolumeAttachment is deleted (its finalizer may be removable)."""
    return va_pv_name(va)


def decide_pv(pv: Obj, *, cfg: AttacherConfig, vas: Iterable[Obj]) -> a.Plan:
    """Remove the PV finalizer when nothing needs it any more, else nothing.

    The removal is a JSON patch guarded by a ``test`` of the entry; from a stale copy it fails
    and the PV is read again and decided again (the performer's default), a 404 is fine, any
    other error retries with back-off.

    Args:
        pv: the PersistentVolume.
        cfg: the attacher configuration.
        vas: every VolumeAttachment in the cache (all attachers) that names the PV.
    """
    if cfg.trivial:
        return (a.Done("trivial handler does not manage PersistentVolumes"),)
    if not is_deleting(pv) and not _migration_rolled_back(pv, cfg.driver_name):
        return (a.Done("no deletion timestamp"),)
    patch = patches.pv_remove_finalizer(pv, cfg.finalizer)
    if patch is None:
        return (a.Done("no finalizer"),)
    pv_name = name(pv)
    for va in vas:
        if va_pv_name(va) == pv_name:
            return (a.Done(f"VolumeAttachment {name(va)} uses the PersistentVolume"),)
    return (patch, a.Done("removed the PersistentVolume finalizer"))


def _without_errors(va: Obj) -> dict[str, Any]:
    out = copy.deepcopy(dict(va))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
    status = out.pop("status", None)
    if isinstance(status, dict):
        status.pop(names.STATUS_ATTACH_ERROR, None)
        status.pop(names.STATUS_DETACH_ERROR, None)
        # Go compares structs: an absent field equals its zero value.
        status = {k: v for k, v in status.items() if not _is_zero(v)}
        if status:
            out["status"] = status
    return out


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value in ({}, [])


def should_enqueue_va_change(old: Obj, new: Obj) -> bool:
    """Whether a VolumeAttachment update goes onto the VA queue (Go's ``shouldEnqueueVAChange``).

    A resync (same resourceVersion) is enqueued. An update that changed nothing but
    ``status.attachError`` / ``status.detachError`` (plus resourceVersion and managedFields) is
    not: it is our own error write, and processing it would bypass the back-off.
    """
    if resource_version(old) == resource_version(new):
        return True
    old_status = old.get("status") or {}
    new_status = new.get("status") or {}
    keys = (names.STATUS_ATTACH_ERROR, names.STATUS_DETACH_ERROR)
    if all(old_status.get(k) is None and new_status.get(k) is None for k in keys):
        return True
    return _without_errors(old) != _without_errors(new)
