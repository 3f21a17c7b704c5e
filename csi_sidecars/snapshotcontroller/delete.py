"""Deleting a VolumeSnapshot: Delete and Retain, restores in progress, group members.

Go's ``processSnapshotWithDeletionTimestamp`` and
``checkandRemoveSnapshotFinalizersAndCheckandDeleteContent``, as one plan:

1. the content counts only if it points back (name, namespace and uid);
2. nothing to do unless the snapshot carries one of our finalizers (Go ignores a member that
   carries only ``volumesnapshot-in-group-protection``, which then never goes);
3. a claim still ``Pending`` with the snapshot as ``dataSource``: ``SnapshotDeletePending``
   and retry;
4. a member of a group snapshot that still exists: ``SnapshotDeletePending`` and retry; once the
   group is gone the in-group finalizer goes too. Membership is the status' group name or, when
   that is not recorded yet, the owner reference;
5. the content: a snapshot deleted before it recorded its content (no bound name, no bound
   finalizer) asks the API server for ``snapcontent-<uid>`` when the cache has none: the
   content its first sync created a moment ago may not have reached the cache, and letting
   the snapshot go then would leave that content behind (the content's own sync would also
   delete it later, see :mod:`.content`; this just does not wait for that). Then, ours, if it
   is to be deleted and lacks it, the content finalizer first (so the
   sidecar sees the deletion and deletes the backend snapshot: #1388), then the
   ``volumesnapshot-being-deleted`` annotation, then, for Delete, the DELETE (uid precondition).
   Each write must succeed before the next is sent: a throttled or failed annotation patch is
   retried, and the content is never deleted without it (Go's retry skips the patch after a
   failure because it marked its cached copy, and the sidecar then never deletes: #1446);
6. the snapshot's finalizers, in one JSON patch guarded entry by entry: all of them (as-source,
   bound, in-group when decided in 4) once no Delete-policy content is left (the next sync
   after the sidecar removed it, or at once for Retain or no content). Go removes as-source
   in the first sync and bound in a later one: two writes of the snapshot where one does.

The source claim's own finalizer is the claim's sync's business (:mod:`.protection`), so it no
longer has to be removed before the snapshot may go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import (
    add_finalizer_patch,
    remove_finalizers_patch,
    set_annotations_patch,
)
from csi_sidecars.kube.resources import Resource
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    DELETION_POLICY_DELETE,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
    VS_IN_GROUP_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.plans import Decide, emit, failure

Obj = Mapping[str, Any]
VS = VOLUME_SNAPSHOTS
VSC = VOLUME_SNAPSHOT_CONTENTS
CANDIDATE_FINALIZERS = (VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER, VS_IN_GROUP_FINALIZER)


def is_deletion_candidate(vs: Obj) -> bool:
    """Being deleted and holding one of the controller's finalizers."""
    return o.is_deleting(vs) and any(f in o.finalizers(vs) for f in CANDIDATE_FINALIZERS)


def being_restored(vs: Obj, d: Decide) -> bool:
    """Whether a claim is still being provisioned from ``vs`` (Go's
    isVolumeBeingCreatedFromSnapshot)."""
    claims = d.view.claims_restoring(o.namespace(vs), o.name(vs))
    return any(o.status(c).get("phase") == "Pending" for c in claims)


def bound_content_of(vs: Obj, d: Decide) -> JsonDict | None:
    """The content bound both ways to ``vs`` (the recorded one, else ``snapcontent-<uid>``)."""
    name = so.bound_content(vs)
    if not name and so.source_claim(vs) is not None:
        name = names.content_name(o.uid(vs))
    content = d.view.content(name) if name else None
    return content if content is not None and so.points_to(content, vs) else None


def mark_being_deleted(
    content: Obj,
    resource: Resource = VSC,
    annotation: str = ANN_VOLUME_SNAPSHOT_BEING_DELETED,
) -> a.Patch | None:
    """The JSON patch adding only the being-deleted annotation; None when it is there.

    Never the whole map: Go replaces ``/metadata/annotations`` from its copy and can undo the
    sidecar's being-created annotation written meanwhile.
    """
    patch = set_annotations_patch(content, {annotation: "yes"})
    if patch is None:
        return None
    return a.Patch(resource, o.name(content), patch, type="json")


def decide_deletion(vs: JsonDict, d: Decide) -> a.Plan:
    """The plan for a VolumeSnapshot with a deletionTimestamp."""
    if not is_deletion_candidate(vs):
        return (a.Done("not ours to finalize"),)
    content = bound_content_of(vs, d)
    if content is None and unbound_dynamic(vs):
        # Deleted right after its creation: the content made a moment ago may not be in the
        # cache yet. Ask the API server before the snapshot lets go of it.
        def found(live: JsonDict | None) -> a.Plan:
            fits = live if live is not None and so.points_to(live, vs) else None
            return _deletion(vs, fits, d)

        return (a.Read(VSC, names.content_name(o.uid(vs)), then=found),)
    return _deletion(vs, content, d)


def unbound_dynamic(vs: Obj) -> bool:
    """A dynamic snapshot that never recorded its content: no bound name in the status and no
    bound-protection finalizer (added once a content was seen bound)."""
    return (
        so.source_claim(vs) is not None
        and not so.bound_content(vs)
        and VS_BOUND_FINALIZER not in o.finalizers(vs)
    )


def _deletion(vs: JsonDict, content: JsonDict | None, d: Decide) -> a.Plan:
    delete_content = content is not None and so.deletion_policy(content) == DELETION_POLICY_DELETE
    if content is not None and being_restored(vs, d):
        return (
            emit(
                vs,
                VS,
                o.WARNING,
                names.SNAPSHOT_DELETE_PENDING,
                "Snapshot is being used to restore a PVC",
            ),
            a.Retry(f"snapshot {so.key(vs)} is in use (being used to restore a PVC)"),
        )
    remove_group = False
    group = so.group_name(vs) or so.group_parent(vs)
    if group:
        if d.view.group_snapshot(o.namespace(vs), group) is not None:
            msg = (
                f"deletion of the individual volume snapshot {so.key(vs)} is not allowed as it "
                f"belongs to group snapshot {o.namespace(vs)}/{group}. Deleting the group "
                "snapshot will trigger the deletion of all the individual volume snapshots that "
                "are part of the group."
            )
            return (emit(vs, VS, o.WARNING, names.SNAPSHOT_DELETE_PENDING, msg), a.Retry(msg))
        remove_group = True
    steps: list[a.Action] = []
    if content is not None:
        deleting = o.is_deleting(content)
        if delete_content and not deleting:
            guard = add_finalizer_patch(content, VSC_FINALIZER)
            if guard is not None:
                steps.append(a.Patch(VSC, o.name(content), guard, type="json"))
        mark = mark_being_deleted(content)
        if mark is not None:
            steps.append(mark)
        if delete_content and not deleting:
            steps.append(
                a.Delete(
                    VSC,
                    o.name(content),
                    uid=o.uid(content) or None,
                    on_error=failure(
                        vs,
                        VS,
                        names.SNAPSHOT_CONTENT_OBJECT_DELETE_ERROR,
                        lambda _e: "Failed to delete snapshot content API object",
                        now=d.now,
                        record_status=False,
                    ),
                )
            )
    if delete_content:
        # The snapshot keeps its finalizers until the sidecar let the content go; then one
        # patch removes them all (Go writes the snapshot twice: one round trip more per
        # deletion on the busiest step, and one more request against --kube-api-qps).
        return (*steps, a.Done())
    remove = [VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]
    if remove_group:
        remove.append(VS_IN_GROUP_FINALIZER)
    patch = remove_finalizers_patch(vs, remove)
    if patch is not None:
        steps.append(a.Patch(VS, o.name(vs), patch, o.namespace(vs), type="json", missing_ok=True))
    return (*steps, a.Done())
