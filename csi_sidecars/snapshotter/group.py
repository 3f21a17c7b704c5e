"""The decision for one VolumeGroupSnapshotContent, through the driver's GroupController.

The same shape as :mod:`.content` (Go's ``syncGroupSnapshotContent``):

1. **Delete** (:func:`~.objects.group_should_delete`, then :mod:`.deletion`): with policy
   ``Delete`` and a status handle, DeleteVolumeGroupSnapshot with the member snapshot IDs
   (from ``status.volumeSnapshotInfoList``, or ``spec.source.groupSnapshotHandles`` for
   pre-provisioned groups), clear the status, remove the finalizer.
2. **Create** (``spec.source.volumeHandles``, no status): being-created annotation, recorded
   request and finalizer in one guarded patch; CreateVolumeGroupSnapshot; status with the
   handle, readiness, creation time and one ``volumeSnapshotInfoList`` entry per member; remove
   the annotation; go on from the written object (delete at once if deleted meanwhile).
3. **Ready**: remove a left-over being-created annotation.
4. **Check**: pre-provisioned groups are polled with GetVolumeGroupSnapshot (secrets from the
   class's ``group-snapshotter-get-secret-*`` parameters); dynamic ones by repeating
   CreateVolumeGroupSnapshot.

Failures are reported on the object (``status.error`` with ``(final error)`` /
``(transient error)``, Warning events ``GroupSnapshotCreationFailed``,
``GroupSnapshotContentCheckandUpdateFailed``, ``GroupSnapshotDeleteError``): Go reports group
errors only in its log (external-snapshotter #1314).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.objects import annotations_of, name, str_list
from csi_sidecars.kube.snapshots import VOLUME_GROUP_SNAPSHOT_CONTENTS as VGSC
from csi_sidecars.snapshotter import names
from csi_sidecars.snapshotter.deletion import delete_group as delete
from csi_sidecars.snapshotter.deletion import group_deletion_secret as deletion_secret
from csi_sidecars.snapshotter.errors import (
    Report,
    describe,
    failure_plan,
    go_quote,
    is_final,
)
from csi_sidecars.snapshotter.objects import (
    Obj,
    class_name,
    group_should_delete,
    group_source_handles,
    group_volume_handles,
    is_ready,
    ref_uid,
    snapshot_ref,
    status_of,
    status_str,
)
from csi_sidecars.snapshotter.requests import (
    GroupSnapshotRequest,
    ParameterError,
    parse_group_request,
    remove_prefixed,
)
from csi_sidecars.snapshotter.secrets import (
    SecretRef,
    SecretRefError,
    class_ref,
    with_secret,
)
from csi_sidecars.snapshotter.status import (
    group_status_patch,
    mark_patch,
    snapshot_info,
    status_body,
    timestamp_ns,
    unmark_patch,
)
from csi_sidecars.snapshotter.view import View, poll_delay

MARKERS = (api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED, names.ANN_CREATE_REQUEST)
WHAT = "group snapshot content"
REF = "volumeGroupSnapshotRef"

CREATING = Report(names.GROUP_SNAPSHOT_CREATION_FAILED, "Failed to create group snapshot")
CHECKING = Report(
    names.GROUP_SNAPSHOT_CHECK_FAILED, "Failed to check and update group snapshot content"
)


def decide(vgsc: Obj, view: View) -> a.Plan:
    """The plan for ``vgsc`` (see the module docstring)."""
    if group_should_delete(vgsc):
        return delete(vgsc, view)
    if group_volume_handles(vgsc) and status_of(vgsc) is None:
        return create(vgsc, view, CREATING)
    if is_ready(vgsc):
        patch = unmark_patch(vgsc, MARKERS)
        if patch is None:
            return (a.Done(),)
        return (a.Patch(VGSC, name(vgsc), patch, type="json"), a.Done())
    if group_source_handles(vgsc) is not None:
        return check_static(vgsc, view)
    return create(vgsc, view, CHECKING)


def failed(
    vgsc: Obj, view: View, how: Report, detail: str, final: bool, then: a.Plan | None = None
) -> a.Plan:
    """Report a failure on ``vgsc`` (:func:`~.errors.failure_plan`), then ``then``."""
    return failure_plan(VGSC, vgsc, view.now(), how, detail, final, then)


def _go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(items) + "]"


def _input_error(content: str, inner: str) -> str:
    return (
        f"failed to get input parameters to create group snapshot for group snapshot content "
        f"{content}: {go_quote(inner)}"
    )


def build_request(vgsc: Obj, view: View) -> GroupSnapshotRequest | str:
    """The CreateVolumeGroupSnapshot request, or Go's error text (without the prefix)."""
    cfg = view.config
    content = name(vgsc)
    volumes = group_volume_handles(vgsc)
    if api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED in annotations_of(vgsc):
        recorded = parse_group_request(annotations_of(vgsc).get(names.ANN_CREATE_REQUEST), volumes)
        if recorded is not None:
            return recorded
    cls = class_name(vgsc, "volumeGroupSnapshotClassName")
    if not cls:
        return _input_error(
            content, f"failed to take group snapshot {content} without a group snapshot class"
        )
    klass = view.group_class(cls)
    if klass is None:
        return _input_error(
            content, f'volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "{cls}" not found'
        )
    raw = klass.get("parameters")
    try:
        params = remove_prefixed(raw if isinstance(raw, dict) else {})
    except ParameterError as err:
        return f"failed to remove CSI Parameters of prefixed keys: {err}"
    if cfg.extra_create_metadata:
        ref = snapshot_ref(vgsc, REF)
        params[api.PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY] = str(ref.get("name") or "")
        params[api.PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY] = str(ref.get("namespace") or "")
        params[api.PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY] = content
    group_name = names.object_name(
        cfg.group_name_prefix, ref_uid(vgsc, REF), cfg.group_name_uuid_length
    )
    return GroupSnapshotRequest(group_name, volumes, params)


def create(vgsc: Obj, view: View, how: Report) -> a.Plan:
    """Create (or poll) the group snapshot of a dynamic group content."""
    content = name(vgsc)
    volumes = group_volume_handles(vgsc)

    def take(inner: str) -> str:
        return (
            f"failed to take group snapshot of the volumes {_go_list(volumes)}: {go_quote(inner)}"
        )

    if not ref_uid(vgsc, REF):
        inner = (
            f"cannot create group snapshot. Group snapshot content {content} not bound to a "
            "group snapshot"
        )
        return failed(vgsc, view, how, take(inner), True)
    request = build_request(vgsc, view)
    if isinstance(request, str):
        return failed(vgsc, view, how, request, True)
    try:
        ref = deletion_secret(vgsc)
    except SecretRefError as err:
        return failed(vgsc, view, how, _input_error(content, str(err)), True)
    no_secret = _input_error(
        content, f"cannot get credentials for group snapshot content {go_quote(content)}"
    )

    def send(secrets: dict[str, str]) -> a.Plan:
        def call(obj: Obj) -> a.Plan:
            return (
                a.Call(
                    "group_controller",
                    "CreateVolumeGroupSnapshot",
                    request.message(secrets),
                    then=lambda reply: _created(obj, view, how, reply, take),
                    on_error=lambda exc: _create_failed(obj, view, how, take(describe(exc)), exc),
                ),
            )

        if status_str(vgsc, "volumeGroupSnapshotHandle"):
            return call(vgsc)
        patch = mark_patch(
            vgsc,
            api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
            api.VGSC_FINALIZER,
            (names.ANN_CREATE_REQUEST, request.record()),
        )
        if patch is None:
            return call(vgsc)
        return (a.Patch(VGSC, content, patch, type="json", then=call),)

    return with_secret(ref, then=send, fail=lambda _: failed(vgsc, view, how, no_secret, True))


def _created(vgsc: Obj, view: View, how: Report, reply: Any, take: Any) -> a.Plan:
    group = reply.group_snapshot
    if not group.group_snapshot_id:
        return failed(vgsc, view, how, take("the driver returned no group snapshot ID"), False)
    infos = [snapshot_info(s) for s in group.snapshots]
    return _observed(vgsc, view, group, infos, unmark=True)


def _create_failed(vgsc: Obj, view: View, how: Report, detail: str, exc: BaseException) -> a.Plan:
    final = is_final(exc)
    unmark = unmark_patch(vgsc, MARKERS) if final else None
    if unmark is None:
        return failed(vgsc, view, how, detail, final)
    after: a.Plan = (
        a.Patch(
            VGSC,
            name(vgsc),
            unmark,
            type="json",
            then=lambda obj: delete(obj, view) if group_should_delete(obj) else (a.Retry(detail),),
        ),
    )
    return failed(vgsc, view, how, detail, final, after)


def _observed(
    vgsc: Obj, view: View, group: Any, infos: list[dict[str, Any]], *, unmark: bool
) -> a.Plan:
    created = timestamp_ns(group.creation_time) if group.HasField("creation_time") else None
    static = group_source_handles(vgsc) or {}
    handle = (
        status_str(vgsc, "volumeGroupSnapshotHandle")
        or str(static.get("volumeGroupSnapshotHandle") or "")
        or group.group_snapshot_id
    )
    fields = group_status_patch(
        status_of(vgsc),
        handle=handle,
        ready=bool(group.ready_to_use),
        created=created / 1e9 if created is not None else view.now(),
        infos=infos,
    )

    def next_step(obj: Obj) -> a.Plan:
        patch = unmark_patch(obj, MARKERS) if unmark else None
        if patch is not None:
            return (a.Patch(VGSC, name(obj), patch, type="json", then=lambda o: settled(o, view)),)
        return settled(obj, view)

    if fields is None:
        return next_step(vgsc)
    return (a.Patch(VGSC, name(vgsc), status_body(fields), subresource="status", then=next_step),)


def settled(vgsc: Obj, view: View) -> a.Plan:
    """After a successful answer: delete if asked meanwhile, done if ready, else poll."""
    if group_should_delete(vgsc):
        return delete(vgsc, view)
    if is_ready(vgsc):
        return (a.Done(),)
    return (a.RetryAfter(poll_delay(view.config, _age(vgsc, view)), "not ready to use yet"),)


def _age(vgsc: Obj, view: View) -> float:
    text = status_str(vgsc, "creationTime")
    try:
        created = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, view.now() - created)


def check_static(vgsc: Obj, view: View) -> a.Plan:
    """Poll a pre-provisioned group with GetVolumeGroupSnapshot."""
    content = name(vgsc)
    static = group_source_handles(vgsc) or {}
    handle = str(static.get("volumeGroupSnapshotHandle") or "")
    ids = str_list(static.get("volumeSnapshotHandles"))
    ref: SecretRef | None = None
    cls = class_name(vgsc, "volumeGroupSnapshotClassName")
    if cls:
        klass = view.group_class(cls)
        if klass is None:
            detail = (
                f"failed to get group snapshot class {cls} for group snapshot content {content}: "
                f'volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "{cls}" not found'
            )
            return failed(vgsc, view, CHECKING, detail, True)
        raw = klass.get("parameters")
        try:
            ref = class_ref(
                raw if isinstance(raw, dict) else {},
                api.PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY,
                api.PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY,
                "GroupSnapshotterGet",
                {"volumegroupsnapshotcontent.name": content},
            )
        except SecretRefError as err:
            detail = f"failed to get secret reference for group snapshot content {content}: {err}"
            return failed(vgsc, view, CHECKING, detail, True)
    if not ids:
        detail = (
            f"cannot list group snapshot {content}. No snapshots found in the group snapshot "
            "content"
        )
        return failed(vgsc, view, CHECKING, detail, True)

    def wrap(inner: str) -> str:
        return (
            f"failed to list group snapshot for group snapshot content {content}: {go_quote(inner)}"
        )

    def send(secrets: dict[str, str]) -> a.Plan:
        request = csi_pb2.GetVolumeGroupSnapshotRequest(
            group_snapshot_id=handle, snapshot_ids=ids, secrets=secrets
        )
        return (
            a.Call(
                "group_controller",
                "GetVolumeGroupSnapshot",
                request,
                then=lambda reply: _observed(vgsc, view, reply.group_snapshot, [], unmark=False),
                on_error=lambda exc: failed(
                    vgsc, view, CHECKING, wrap(describe(exc)), is_final(exc)
                ),
            ),
        )

    return with_secret(
        ref,
        then=send,
        fail=lambda d: failed(
            vgsc,
            view,
            CHECKING,
            f"failed to get credentials for group snapshot content {content}: {d}",
            True,
        ),
    )
