"""The VolumeSnapshot state machine: one pure decision per sync (Go's ``syncSnapshot``).

:func:`decide_snapshot` takes the snapshot and what the caches know and returns the complete
plan:

1. the class: the named class must exist while the snapshot has no content yet, an unnamed
   dynamic snapshot gets the default one (:mod:`.classes`); the rest is decided on the patched
   object;
2. a snapshot being deleted goes to :func:`~.delete.decide_deletion`;
3. exactly one source (``SnapshotValidationError``);
4. the finalizers: ``volumesnapshot-as-source-protection`` always, ``-bound-protection`` once a
   Delete-policy content is bound (one guarded JSON patch for both);
5. not ready or not bound: bind a pre-provisioned content, follow a group member's content, or
   find / create the dynamic content ``snapcontent-<uid>`` (:mod:`.create`), and mirror the
   content's status; ready and bound: check the binding, add the group owner reference of a
   static group member, and keep mirroring the status (Go stops updating a ready snapshot, so a
   restore size the driver reports late never reaches it).

The status is a merge patch of the status subresource (no resourceVersion: never a conflict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import add_finalizers_patch
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import (
    DELETION_POLICY_DELETE,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
)
from csi_sidecars.snapshotcontroller import classes, create, names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.delete import decide_deletion
from csi_sidecars.snapshotcontroller.plans import Decide, emit, fail, failure
from csi_sidecars.snapshotcontroller.status import snapshot_status

Obj = Mapping[str, Any]
Found = tuple[JsonDict | None, a.Plan | None]
"""A content lookup: the content (or None), or the plan for a content that does not fit."""

VS = VOLUME_SNAPSHOTS


def decide_snapshot(vs: JsonDict | None, d: Decide) -> a.Plan:
    """The plan for one sync of the VolumeSnapshot ``vs`` (None: it is gone, nothing to do)."""
    if vs is None:
        return (a.Done("gone"),)
    name = so.class_name(vs)
    if name is not None:
        # Only a snapshot still to get a content needs its class: Go reports a class deleted
        # after the fact as an error on every ready snapshot of it, at every resync.
        needed = not so.bound_content(vs) and not o.is_deleting(vs)
        if needed and d.view.snapshot_class(name) is None:
            err = classes.not_found(VOLUME_SNAPSHOT_CLASSES, name)
            return fail(
                vs,
                VS,
                names.GET_SNAPSHOT_CLASS_FAILED,
                f"Failed to get snapshot class with error {err}",
                now=d.now,
                set_ready_false=False,
            )
        return _sync(vs, d)
    if so.source_content(vs) is not None or so.is_group_member(vs):
        return _sync(vs, d)
    try:
        driver = classes.snapshot_driver(d.view, vs)
        chosen = classes.default_class(d.view, VOLUME_SNAPSHOT_CLASSES, driver)
    except classes.ResolveError as err:
        if o.is_deleting(vs):
            return _sync(vs, d)
        return fail(
            vs,
            VS,
            names.SET_DEFAULT_SNAPSHOT_CLASS_FAILED,
            f"Failed to set default snapshot class with error {err}",
            now=d.now,
            set_ready_false=False,
        )
    return (
        a.Patch(
            VS,
            o.name(vs),
            classes.class_patch("volumeSnapshotClassName", o.name(chosen)),
            o.namespace(vs),
            type="json",
            then=lambda updated: _sync(updated, d),
        ),
    )


def _sync(vs: JsonDict, d: Decide) -> a.Plan:
    if o.is_deleting(vs):
        return decide_deletion(vs, d)
    if (so.source_claim(vs) is None) == (so.source_content(vs) is None):
        return fail(
            vs,
            VS,
            names.SNAPSHOT_VALIDATION_ERROR,
            "Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName should be "
            "specified",
            now=d.now,
            retry=False,
        )
    found, bad = (
        preprovisioned_content(vs, d)
        if so.source_content(vs) is not None
        else dynamic_content(vs, d)
    )
    if bad is not None:
        return bad
    steps: list[a.Action] = []
    wanted = [VS_AS_SOURCE_FINALIZER]
    if (
        found is not None
        and so.bound_content(vs)
        and so.deletion_policy(found) == DELETION_POLICY_DELETE
    ):
        wanted.append(VS_BOUND_FINALIZER)
    patch = add_finalizers_patch(vs, wanted)
    if patch is not None:
        steps.append(
            a.Patch(
                VS,
                o.name(vs),
                patch,
                o.namespace(vs),
                type="json",
                on_error=failure(
                    vs,
                    VS,
                    names.SNAPSHOT_FINALIZER_ERROR,
                    lambda e: (
                        "Failed to check and update snapshot: "
                        + names.controller_update_error(so.key(vs), e)
                    ),
                    now=d.now,
                    record_status=False,
                ),
            )
        )
    if not so.is_ready(vs) or not so.bound_content(vs):
        # The finalizer patch, when there is one, is the read-your-writes check that the
        # snapshot is there and not being deleted; without it a creation looks first.
        return (*steps, *_unready(vs, found, d, checked=patch is not None))
    return (*steps, *_ready(vs, d))


# -- content lookups ---------------------------------------------------------------------------


def preprovisioned_content(vs: JsonDict, d: Decide) -> Found:
    """The content a pre-provisioned snapshot names, if it fits (Go's
    getPreprovisionedContentFromStore)."""
    name = so.source_content(vs) or ""
    if not name:
        return None, (a.Retry(f"empty VolumeSnapshotContentName for snapshot {so.key(vs)}"),)
    content = d.view.content(name)
    if content is None:
        return None, None
    if so.snapshot_handle(content) is None:
        return None, fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISMATCH,
            "VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned "
            "one",
            now=d.now,
        )
    ref = so.ref(content)
    if (
        ref.get("name") != o.name(vs)
        or ref.get("namespace") != o.namespace(vs)
        or (ref.get("uid") and ref.get("uid") != o.uid(vs))
    ):
        return None, fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISBOUND,
            f"VolumeSnapshotContent [{name}] is bound to a different snapshot",
            now=d.now,
        )
    return content, None


def dynamic_content(vs: JsonDict, d: Decide) -> Found:
    """The content ``snapcontent-<uid>``, if it fits (Go's
    getDynamicallyProvisionedContentFromStore)."""
    name = names.content_name(o.uid(vs))
    content = d.view.content(name)
    if content is None:
        return None, None
    if so.volume_handle(content) is None:
        return None, fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISMATCH,
            f"VolumeSnapshotContent {name} is pre-provisioned while expecting a dynamically "
            "provisioned one",
            now=d.now,
        )
    if not so.points_to(content, vs):
        return None, fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISBOUND,
            f"VolumeSnapshotContent [{name}] is bound to a different snapshot",
            now=d.now,
        )
    return content, None


# -- status ------------------------------------------------------------------------------------


def update_status(vs: JsonDict, content: JsonDict, d: Decide, *, ready_false: bool) -> a.Plan:
    """Mirror the content's status onto ``vs`` (events for the created/ready transitions).

    A member of a group whose content is not known yet is an error, as in Go: the snapshot must
    not lose its group name.
    """
    group = ""
    handle = so.group_handle(content)
    if handle is not None and d.settings.groups:
        owners = d.view.group_contents_by_handle(handle)
        if not owners:
            return (
                a.Retry(
                    "updateSnapshotStatus: cannot find the group snapshot for VolumeSnapshot "
                    f"[{so.key(vs)}], will not update snapshot status"
                ),
            )
        group = str(so.ref(owners[0], "volumeGroupSnapshotRef").get("name") or "")
    update = snapshot_status(vs, content, group)
    if update.patch is None:
        return ()
    failed = failure(
        vs,
        VS,
        names.SNAPSHOT_STATUS_UPDATE_FAILED,
        lambda e: "Snapshot status update failed, " + names.controller_update_error(so.key(vs), e),
        now=d.now,
        set_ready_false=ready_false,
    )

    def on_error(exc: ApiError) -> a.Plan:
        # Gone meanwhile (deleted right after its creation): nothing to report on, and the
        # content made for it is deleted by the deletion's or the content's own sync.
        return (a.Done("the snapshot is gone"),) if exc.not_found else failed(exc)

    patch = a.Patch(
        VS, o.name(vs), update.patch, o.namespace(vs), subresource="status", on_error=on_error
    )
    return (patch, *(emit(vs, VS, ev.type, ev.reason, ev.message) for ev in update.events))


# -- not ready or not bound --------------------------------------------------------------------


def _unready(vs: JsonDict, found: JsonDict | None, d: Decide, *, checked: bool) -> a.Plan:
    if so.source_content(vs) is not None:
        return _bind_preprovisioned(vs, found, d)
    if so.is_group_member(vs):
        bound = so.bound_content(vs)
        if not bound:
            return (a.Retry(f"detected group snapshot member {so.key(vs)} with no content"),)
        content = d.view.content(bound)
        if content is None:
            return (
                a.Retry(
                    f"group snapshot member {so.key(vs)} requests an non-existing content {bound}"
                ),
            )
        return (*update_status(vs, content, d, ready_false=False), a.Done())
    if found is not None:
        if so.snapshot_handle(found) is not None:
            return fail(
                vs,
                VS,
                names.SNAPSHOT_HANDLE_SET,
                f"Snapshot handle should not be set in content {so.key(vs)} for dynamic "
                "provisioning",
                now=d.now,
            )
        rest = (*update_status(vs, found, d, ready_false=True), a.Done())
        return create.protect_source(vs, found, d, rest)
    if so.source_claim(vs) is None:
        return fail(
            vs,
            VS,
            names.SNAPSHOT_PVC_SOURCE_MISSING,
            f"PVC source for snapshot {so.key(vs)} is missing",
            now=d.now,
        )
    return create.create_content(
        vs,
        d,
        then=lambda content: (*update_status(vs, content, d, ready_false=False), a.Done()),
        checked=checked,
    )


def _bind_preprovisioned(vs: JsonDict, content: JsonDict | None, d: Decide) -> a.Plan:
    if content is None:
        return fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISSING,
            "VolumeSnapshotContent is missing",
            now=d.now,
        )
    ref = so.ref(content)
    if ref.get("uid") and so.class_name(content) is not None:
        return (*update_status(vs, content, d, ready_false=False), a.Done())
    current_uid = ref.get("uid") if "uid" in ref else None
    patch: list[JsonDict] = [
        {"op": "test", "path": "/spec/volumeSnapshotRef/uid", "value": current_uid},
        {"op": "add", "path": "/spec/volumeSnapshotRef/uid", "value": o.uid(vs)},
    ]
    if so.class_name(vs) is not None:
        patch.append(
            {"op": "add", "path": "/spec/volumeSnapshotClassName", "value": so.class_name(vs)}
        )
    return (
        a.Patch(
            VOLUME_SNAPSHOT_CONTENTS,
            o.name(content),
            patch,
            type="json",
            then=lambda bound: (*update_status(vs, bound, d, ready_false=False), a.Done()),
            on_error=failure(
                vs,
                VS,
                names.SNAPSHOT_BIND_FAILED,
                lambda e: f"Snapshot failed to bind VolumeSnapshotContent, {e}",
                now=d.now,
            ),
        ),
    )


# -- ready and bound ---------------------------------------------------------------------------


def _ready(vs: JsonDict, d: Decide) -> a.Plan:
    content = d.view.content(so.bound_content(vs))
    if content is None:
        return fail(
            vs,
            VS,
            names.SNAPSHOT_CONTENT_MISSING,
            "VolumeSnapshotContent is missing",
            now=d.now,
            retry=False,
        )
    if not so.points_to(content, vs):
        return fail(
            vs,
            VS,
            names.SNAPSHOT_MISBOUND,
            "VolumeSnapshotContent is not bound to the VolumeSnapshot correctly",
            now=d.now,
            retry=False,
        )
    steps = list(update_status(vs, content, d, ready_false=False))
    group = so.group_name(vs)
    if group and not so.is_group_member(vs):
        parent = d.view.group_snapshot(o.namespace(vs), group)
        if parent is None:
            return (*steps, a.Retry(f"missing parent group for snapshot {so.key(vs)}"))
        steps.append(create.owner_patch(vs, parent))
    return (*steps, a.Done())
