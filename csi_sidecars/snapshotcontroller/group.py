"""The VolumeGroupSnapshot state machine (Go's ``syncGroupSnapshot`` and its deletion).

Like :mod:`.snapshot`, one plan per sync: the class (named and present while the group has no
content, or the driver's default, found from the first PV its selector picks), deletion,
exactly one source (``GroupSnapshotValidationError``), the
``volumegroupsnapshot-bound-protection`` finalizer once a content is bound, then:

* pre-provisioned: bind the named content (uid, class) and mirror its status;
* dynamic: create ``groupsnapcontent-<uid>`` (:mod:`.groupcreate`), and once the sidecar has cut
  the group, create and bind the per-volume snapshots; mirror the status;
* ready: check the binding (and keep mirroring).

Deletion (Go's ``processGroupSnapshotWithDeletionTimestamp``): refused while a member is being
restored from; else the content is marked ``volumegroupsnapshot-being-deleted`` and, for Delete,
deleted; the members are deleted; the bound finalizer goes once a Delete content is gone. The
content is found by the recorded name or, before it was recorded, by its fixed name (Go's
fallback tests ``&x == nil`` and never runs). A group snapshot deleted before it was bound has no
finalizer and goes at once; the content made for it is then deleted by the content's own sync
(:mod:`.content`), which Go never does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import add_finalizer_patch, remove_finalizers_patch
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    DELETION_POLICY_DELETE,
    VGS_BOUND_FINALIZER,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CLASSES,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOTS,
)
from csi_sidecars.snapshotcontroller import classes, groupcreate, names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.delete import being_restored, mark_being_deleted
from csi_sidecars.snapshotcontroller.plans import Decide, emit, fail, failure
from csi_sidecars.snapshotcontroller.status import group_status

Obj = Mapping[str, Any]
Found = tuple[JsonDict | None, a.Plan | None]
VGS = VOLUME_GROUP_SNAPSHOTS
VGSC = VOLUME_GROUP_SNAPSHOT_CONTENTS
REF = "volumeGroupSnapshotRef"


def decide_group_snapshot(vgs: JsonDict | None, d: Decide) -> a.Plan:
    """The plan for one sync of a VolumeGroupSnapshot (None: gone, nothing to do)."""
    if vgs is None:
        return (a.Done("gone"),)
    name = so.group_class_name(vgs)
    if name is not None:
        needed = not so.bound_group_content(vgs) and not o.is_deleting(vgs)
        if needed and d.view.group_class(name) is None:
            err = classes.not_found(VOLUME_GROUP_SNAPSHOT_CLASSES, name)
            return fail(
                vgs,
                VGS,
                names.GET_GROUP_SNAPSHOT_CLASS_FAILED,
                f"failed to get group snapshot class with error {err}",
                now=d.now,
                set_ready_false=False,
            )
        return _sync(vgs, d)
    if so.group_source_content(vgs) is not None or o.is_deleting(vgs):
        return _sync(vgs, d)
    try:
        driver = classes.group_driver(d.view, vgs)
        chosen = classes.default_class(d.view, VOLUME_GROUP_SNAPSHOT_CLASSES, driver, group=True)
    except classes.ResolveError as err:
        return fail(
            vgs,
            VGS,
            names.SET_DEFAULT_GROUP_SNAPSHOT_CLASS_FAILED,
            f"Failed to set default group snapshot class with error {err}",
            now=d.now,
            set_ready_false=False,
        )
    return (
        a.Patch(
            VGS,
            o.name(vgs),
            classes.class_patch("volumeGroupSnapshotClassName", o.name(chosen)),
            o.namespace(vgs),
            type="json",
            then=lambda updated: _sync(updated, d),
        ),
    )


def _sync(vgs: JsonDict, d: Decide) -> a.Plan:
    if o.is_deleting(vgs):
        return decide_group_deletion(vgs, d)
    static = so.group_source_content(vgs) is not None
    if static == (so.group_selector(vgs) is not None):
        return fail(
            vgs,
            VGS,
            names.GROUP_SNAPSHOT_VALIDATION_ERROR,
            "Exactly one of Selector and VolumeGroupSnapshotContentName should be specified",
            now=d.now,
            retry=False,
        )
    found, bad = _preprovisioned(vgs, d) if static else _dynamic(vgs, d)
    if bad is not None:
        return bad
    steps: list[a.Action] = []
    if found is not None and so.bound_group_content(vgs):
        patch = add_finalizer_patch(vgs, VGS_BOUND_FINALIZER)
        if patch is not None:
            steps.append(
                a.Patch(
                    VGS,
                    o.name(vgs),
                    patch,
                    o.namespace(vgs),
                    type="json",
                    on_error=failure(
                        vgs,
                        VGS,
                        names.GROUP_SNAPSHOT_FINALIZER_ERROR,
                        lambda e: (
                            "Failed to check and update group snapshot: "
                            + names.controller_update_error(so.key(vgs), e)
                        ),
                        now=d.now,
                        record_status=False,
                    ),
                )
            )
    if not so.is_ready(vgs) or not so.bound_group_content(vgs):
        return (*steps, *_unready(vgs, found, d))
    return (*steps, *_ready(vgs, d))


def _mismatch(vgs: JsonDict, d: Decide, reason: str, message: str) -> Found:
    return None, fail(vgs, VGS, reason, message, now=d.now)


def _preprovisioned(vgs: JsonDict, d: Decide) -> Found:
    name = so.group_source_content(vgs) or ""
    if not name:
        return None, (a.Retry(f"empty VolumeGroupSnapshotContentName for {so.key(vgs)}"),)
    content = d.view.group_content(name)
    if content is None:
        return None, None
    if so.group_snapshot_handles(content) is None:
        return _mismatch(
            vgs,
            d,
            names.GROUP_SNAPSHOT_CONTENT_MISMATCH,
            "VolumeGroupSnapshotContent is dynamically provisioned while expecting a "
            "pre-provisioned one",
        )
    ref = so.ref(content, REF)
    if (
        ref.get("name") != o.name(vgs)
        or ref.get("namespace") != o.namespace(vgs)
        or (ref.get("uid") and ref.get("uid") != o.uid(vgs))
    ):
        return _mismatch(
            vgs,
            d,
            names.GROUP_SNAPSHOT_CONTENT_MISBOUND,
            f"VolumeGroupSnapshotContent [{name}] is bound to a different group snapshot",
        )
    return content, None


def _dynamic(vgs: JsonDict, d: Decide) -> Found:
    name = names.group_content_name(o.uid(vgs))
    content = d.view.group_content(name)
    if content is None:
        return None, None
    if so.group_snapshot_handles(content) is not None:
        return _mismatch(
            vgs,
            d,
            names.GROUP_SNAPSHOT_CONTENT_MISMATCH,
            f"VolumeGroupSnapshotContent {name} is pre-provisioned while expecting a dynamically "
            "provisioned one",
        )
    if not so.points_to(content, vgs, REF):
        return _mismatch(
            vgs,
            d,
            names.GROUP_SNAPSHOT_CONTENT_MISBOUND,
            f"VolumeGroupSnapshotContent [{name}] is bound to a different group snapshot",
        )
    return content, None


def update_group_status(
    vgs: JsonDict, content: JsonDict, d: Decide, *, ready_false: bool
) -> a.Plan:
    """Mirror the group content's status onto ``vgs``."""
    update = group_status(vgs, content)
    if update.patch is None:
        return ()
    failed = failure(
        vgs,
        VGS,
        names.GROUP_SNAPSHOT_STATUS_UPDATE_FAILED,
        lambda e: (
            "GroupSnapshot status update failed, " + names.controller_update_error(so.key(vgs), e)
        ),
        now=d.now,
        set_ready_false=ready_false,
    )

    def on_error(exc: ApiError) -> a.Plan:
        # Deleted meanwhile: the content made for it goes with the content's sync.
        return (a.Done("the group snapshot is gone"),) if exc.not_found else failed(exc)

    patch = a.Patch(
        VGS, o.name(vgs), update.patch, o.namespace(vgs), subresource="status", on_error=on_error
    )
    return (patch, *(emit(vgs, VGS, ev.type, ev.reason, ev.message) for ev in update.events))


def _unready(vgs: JsonDict, found: JsonDict | None, d: Decide) -> a.Plan:
    if so.group_source_content(vgs) is not None:
        if found is None:
            return fail(
                vgs,
                VGS,
                names.GROUP_SNAPSHOT_CONTENT_MISSING,
                "VolumeGroupSnapshotContent is missing",
                now=d.now,
            )
        ref = so.ref(found, REF)
        if ref.get("uid") and so.group_class_name(found) is not None:
            return (*update_group_status(vgs, found, d, ready_false=False), a.Done())
        patch: list[JsonDict] = [
            {
                "op": "test",
                "path": f"/spec/{REF}/uid",
                "value": ref.get("uid") if "uid" in ref else None,
            },
            {"op": "add", "path": f"/spec/{REF}/uid", "value": o.uid(vgs)},
        ]
        if so.group_class_name(vgs) is not None:
            patch.append(
                {
                    "op": "add",
                    "path": "/spec/volumeGroupSnapshotClassName",
                    "value": so.group_class_name(vgs),
                }
            )
        return (
            a.Patch(
                VGSC,
                o.name(found),
                patch,
                type="json",
                then=lambda bound: (
                    *update_group_status(vgs, bound, d, ready_false=False),
                    a.Done(),
                ),
                on_error=failure(
                    vgs,
                    VGS,
                    names.GROUP_SNAPSHOT_BIND_FAILED,
                    lambda e: f"GroupSnapshot failed to bind VolumeGroupSnapshotContent, {e}",
                    now=d.now,
                ),
            ),
        )
    if found is not None:
        rest = (*update_group_status(vgs, found, d, ready_false=True), a.Done())
        if not groupcreate.ready_for_members(found):
            return rest
        return groupcreate.member_actions(vgs, found, d, rest)
    return groupcreate.create_group_content(
        vgs, d, then=lambda c: (*update_group_status(vgs, c, d, ready_false=False), a.Done())
    )


def _ready(vgs: JsonDict, d: Decide) -> a.Plan:
    content = d.view.group_content(so.bound_group_content(vgs))
    if content is None:
        return fail(
            vgs,
            VGS,
            names.GROUP_SNAPSHOT_CONTENT_MISSING,
            "VolumeGroupSnapshotContent is missing",
            now=d.now,
            retry=False,
        )
    if not so.points_to(content, vgs, REF):
        return fail(
            vgs,
            VGS,
            names.GROUP_SNAPSHOT_MISBOUND,
            "VolumeGroupSnapshotContent is not bound to the VolumeGroupSnapshot correctly",
            now=d.now,
            retry=False,
        )
    rest = (*update_group_status(vgs, content, d, ready_false=False), a.Done())
    if so.group_source_content(vgs) is None and groupcreate.ready_for_members(content):
        return groupcreate.member_actions(vgs, content, d, rest)
    return rest


# -- deletion ----------------------------------------------------------------------------------


def _member_delete_error(member: Obj, vgs: Obj) -> Callable[[str], str]:
    def text(err: str) -> str:
        return (
            f"failed to delete snapshot API object {so.key(member)} part of group snapshot "
            f"{so.key(vgs)}: {err}"
        )

    return text


def decide_group_deletion(vgs: JsonDict, d: Decide) -> a.Plan:
    """The plan for a VolumeGroupSnapshot with a deletionTimestamp."""
    name = so.bound_group_content(vgs)
    if not name and so.group_source_content(vgs) is None:
        name = names.group_content_name(o.uid(vgs))
    content = d.view.group_content(name) if name else None
    if content is not None and not so.points_to(content, vgs, REF):
        content = None
    delete_content = content is not None and so.deletion_policy(content) == DELETION_POLICY_DELETE
    if VGS_BOUND_FINALIZER not in o.finalizers(vgs):
        return (a.Done("not ours to finalize"),)
    members = d.view.group_members(o.namespace(vgs), o.name(vgs))
    for member in members:
        if being_restored(member, d):
            msg = (
                f"Snapshot {so.key(member)} belonging to VolumeGroupSnapshot {so.key(vgs)} is "
                "being used to restore a PVC"
            )
            return (emit(vgs, VGS, o.WARNING, names.SNAPSHOT_DELETE_PENDING, msg), a.Retry(msg))
    steps: list[a.Action] = []
    if content is not None:
        deleting = o.is_deleting(content)
        if delete_content and not deleting:
            guard = add_finalizer_patch(content, VGSC_FINALIZER)
            if guard is not None:
                steps.append(a.Patch(VGSC, o.name(content), guard, type="json"))
        mark = mark_being_deleted(content, VGSC, ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED)
        if mark is not None:
            steps.append(mark)
        if delete_content and not deleting:
            steps.append(
                a.Delete(
                    VGSC,
                    o.name(content),
                    uid=o.uid(content) or None,
                    on_error=failure(
                        vgs,
                        VGS,
                        names.GROUP_SNAPSHOT_CONTENT_OBJECT_DELETE_ERROR,
                        lambda _e: "Failed to delete group snapshot content API object",
                        now=d.now,
                        record_status=False,
                    ),
                )
            )
    for member in members:
        if o.is_deleting(member):
            continue
        steps.append(
            a.Delete(
                VOLUME_SNAPSHOTS,
                o.name(member),
                o.namespace(member),
                on_error=failure(
                    vgs,
                    VGS,
                    names.SNAPSHOT_DELETE_ERROR,
                    _member_delete_error(member, vgs),
                    now=d.now,
                    record_status=False,
                ),
            )
        )
    if not delete_content:
        patch = remove_finalizers_patch(vgs, [VGS_BOUND_FINALIZER])
        if patch is not None:
            steps.append(
                a.Patch(VGS, o.name(vgs), patch, o.namespace(vgs), type="json", missing_ok=True)
            )
    return (*steps, a.Done())
