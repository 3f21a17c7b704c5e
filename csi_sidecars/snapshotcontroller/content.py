"""The VolumeSnapshotContent decision (Go's ``syncContent``), and the group content's.

1. exactly one of ``volumeHandle`` and ``snapshotHandle`` (``ContentValidationError`` event);
2. a content whose reference has no uid waits for its snapshot to bind it;
3. ``volumesnapshotcontent-bound-protection`` is added while it is not being deleted (the
   controller adds it, the sidecar removes it once the backend snapshot is gone);
4. the referenced snapshot counts only with the same uid;
5. a snapshot being deleted: the ``volumesnapshot-being-deleted`` annotation (only that key).
   Also, ours, a content the user deletes while its snapshot is gone gets it, so the sidecar
   finishes the deletion instead of waiting forever (what a lost annotation leaves behind);
6. ours: a content **the controller made** for a snapshot that is gone is deleted when its
   policy is Delete (:func:`orphaned`). Go never deletes a content whose snapshot is missing, so
   a snapshot deleted right after its creation leaks: its content is created meanwhile (or by a
   request of a stalled, replaced leader that reaches the API server late), nothing ever
   deletes it, and the sidecar cuts a backend snapshot nobody can use (#1388's shape). Such a
   content can never be bound again: a dynamic content is found only as
   ``snapcontent-<uid of its snapshot>``, and that uid is gone for good. The cache's word is
   confirmed by a GET of the snapshot first (an informer can lag behind a new snapshot), then
   the finalizer (if missing), the being-deleted annotation and the DELETE (uid precondition)
   let the sidecar delete the backend snapshot, after finishing a CreateSnapshot in flight.
   Go's rule stays for everything else: a pre-provisioned content (``snapshotHandle``: a
   manifest copied from another cluster must not destroy data), policy Retain, or a content
   not named after its snapshot's uid (a group member's, another tool's) is never deleted.
   Group contents follow the same rule with ``groupsnapcontent-<uid>``.

Waking the snapshot when the content moved ahead of it (Go's ``needsUpdateSnapshotStatus``) is
done by the informer handler, not here: a decision returns API actions only.
"""

from __future__ import annotations

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import add_finalizer_patch
from csi_sidecars.kube.resources import Resource
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    DELETION_POLICY_DELETE,
    VGS_BOUND_FINALIZER,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
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
    if vs is None and orphaned(content):
        return (*steps, *collect(content, VSC, VOLUME_SNAPSHOTS, ANN_VOLUME_SNAPSHOT_BEING_DELETED))
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
    if vgs is None and group_orphaned(content):
        marker = ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED
        return (*steps, *collect(content, VGSC, VOLUME_GROUP_SNAPSHOTS, marker))
    gone_or_going = vgs is None or (o.is_deleting(vgs) and VGS_BOUND_FINALIZER in o.finalizers(vgs))
    if o.is_deleting(content) and gone_or_going:
        mark = mark_being_deleted(content, VGSC, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED)
        if mark is not None:
            steps.append(mark)
    return (*steps, a.Done())


# -- contents of gone snapshots ----------------------------------------------------------------


def orphaned(content: JsonDict) -> bool:
    """Whether ``content`` is one the controller made for its snapshot, to delete with it: not
    being deleted, dynamic, policy Delete, named ``snapcontent-<uid of its snapshot>``."""
    uid = str(so.ref(content).get("uid") or "")
    return (
        bool(uid)
        and not o.is_deleting(content)
        and so.volume_handle(content) is not None
        and so.snapshot_handle(content) is None
        and so.deletion_policy(content) == DELETION_POLICY_DELETE
        and o.name(content) == names.content_name(uid)
    )


def group_orphaned(content: JsonDict) -> bool:
    """:func:`orphaned` for a group content (``groupsnapcontent-<uid of its group>``)."""
    uid = str(so.ref(content, "volumeGroupSnapshotRef").get("uid") or "")
    return (
        bool(uid)
        and not o.is_deleting(content)
        and bool(so.group_volume_handles(content))
        and so.group_snapshot_handles(content) is None
        and so.deletion_policy(content) == DELETION_POLICY_DELETE
        and o.name(content) == names.group_content_name(uid)
    )


def collect(content: JsonDict, kind: Resource, owner: Resource, annotation: str) -> a.Plan:
    """Delete an orphaned content once a GET confirms that its snapshot (``owner``: a
    VolumeSnapshot or VolumeGroupSnapshot) is gone or has another uid."""
    field = "volumeSnapshotRef" if kind is VSC else "volumeGroupSnapshotRef"
    ref = so.ref(content, field)
    uid, name = str(ref.get("uid") or ""), str(ref.get("name") or "")
    if not name:
        return (a.Done("the reference names no snapshot"),)

    def confirmed(live: JsonDict | None) -> a.Plan:
        if live is not None and o.uid(live) == uid:
            return (a.Done("its snapshot exists (the cache is behind)"),)
        steps: list[a.Action] = []
        mark = mark_being_deleted(content, kind, annotation)
        if mark is not None:
            steps.append(mark)
        steps.append(a.Delete(kind, o.name(content), uid=o.uid(content) or None))
        return (*steps, a.Done())

    return (a.Read(owner, name, str(ref.get("namespace") or "") or None, then=confirmed),)
