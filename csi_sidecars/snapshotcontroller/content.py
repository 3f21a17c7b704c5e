"""The VolumeSnapshotContent decision (Go's ``syncContent``), and the group content's.

1. exactly one of ``volumeHandle`` and ``snapshotHandle`` (``ContentValidationError`` event);
2. a content whose reference has no uid waits for its snapshot to bind it;
3. ``volumesnapshotcontent-bound-protection`` is added while it is not being deleted (the
   controller adds it, the sidecar removes it once the backend snapshot is gone);
4. the referenced snapshot counts only with the same uid. The controller never deletes a content
   because its snapshot is missing (a manifest copied from another cluster must not destroy
   data);
5. a snapshot being deleted: the ``volumesnapshot-being-deleted`` annotation (only that key).
   Also, ours, a content the user deletes while its snapshot is gone gets it, so the sidecar
   finishes the deletion instead of waiting forever (what a lost annotation leaves behind).

Waking the snapshot when the content moved ahead of it (Go's ``needsUpdateSnapshotStatus``) is
done by the informer handler, not here: a decision returns API actions only.
"""

from __future__ import annotations

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import add_finalizer_patch
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    VGS_BOUND_FINALIZER,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.delete import is_deletion_candidate, mark_being_deleted
from csi_sidecars.snapshotcontroller.plans import Decide, emit

VSC = VOLUME_SNAPSHOT_CONTENTS
VGSC = VOLUME_GROUP_SNAPSHOT_CONTENTS


def decide_content(content: JsonDict | None, d: Decide) -> a.Plan:
    """The plan for one sync of a VolumeSnapshotContent (None: gone, nothing to do)."""
    if content is None:
        return (a.Done("gone"),)
    if (so.volume_handle(content) is None) == (so.snapshot_handle(content) is None):
        msg = "Exactly one of VolumeHandle and SnapshotHandle should be specified"
        return (emit(content, VSC, o.WARNING, names.CONTENT_VALIDATION_ERROR, msg), a.Done(msg))
    ref = so.ref(content)
    if not ref.get("uid"):
        return (a.Done("waiting for its snapshot to bind it"),)
    steps: list[a.Action] = []
    if not o.is_deleting(content):
        patch = add_finalizer_patch(content, VSC_FINALIZER)
        if patch is not None:
            steps.append(a.Patch(VSC, o.name(content), patch, type="json"))
    vs = d.view.snapshot(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
    if vs is not None and o.uid(vs) != ref.get("uid"):
        vs = None
    if (vs is not None and is_deletion_candidate(vs)) or (vs is None and o.is_deleting(content)):
        mark = mark_being_deleted(content)
        if mark is not None:
            steps.append(mark)
    return (*steps, a.Done())


def decide_group_content(content: JsonDict | None, d: Decide) -> a.Plan:
    """The plan for one sync of a VolumeGroupSnapshotContent (Go's syncGroupSnapshotContent)."""
    if content is None:
        return (a.Done("gone"),)
    handles = so.group_volume_handles(content)
    static = so.group_snapshot_handles(content)
    if (static is None) == (not handles):
        msg = "Exactly one of GroupSnapshotHandles and VolumeHandles should be specified"
        return (
            emit(content, VGSC, o.WARNING, names.GROUP_CONTENT_VALIDATION_ERROR, msg),
            a.Done(msg),
        )
    ref = so.ref(content, "volumeGroupSnapshotRef")
    if not ref.get("uid"):
        return (a.Done("waiting for its group snapshot to bind it"),)
    steps: list[a.Action] = []
    if not o.is_deleting(content):
        patch = add_finalizer_patch(content, VGSC_FINALIZER)
        if patch is not None:
            steps.append(a.Patch(VGSC, o.name(content), patch, type="json"))
    vgs = d.view.group_snapshot(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
    if vgs is not None and o.uid(vgs) != ref.get("uid"):
        vgs = None
    gone_or_going = vgs is None or (o.is_deleting(vgs) and VGS_BOUND_FINALIZER in o.finalizers(vgs))
    if o.is_deleting(content) and gone_or_going:
        mark = mark_being_deleted(content, VGSC, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED)
        if mark is not None:
            steps.append(mark)
    return (*steps, a.Done())
