"""The decision for one VolumeSnapshotContent: a complete plan, built purely.

:func:`decide` follows Go's ``syncContent``:

1. **Delete** (:func:`~.objects.should_delete`, then :mod:`.deletion`): with policy
   ``Delete``, a status handle and no group, DeleteSnapshot, clear the status handle, remove
   the bound-protection finalizer.
2. **Create** (dynamic, no status, not a group member): set the being-created annotation, the
   recorded request and the finalizer in one guarded patch, CreateSnapshot, write the status,
   remove the annotation. The plan then goes on with the object the last write returned: a
   content deleted while the call was in flight is deleted in the same sync, without waiting
   for an informer event or a resync (external-snapshotter #1388).
3. **Ready**: remove a left-over being-created annotation, done.
4. **Check**: pre-provisioned contents and group members with a handle are looked up with
   ListSnapshots (or GetSnapshot when only that is offered; ready when neither is); dynamic
   ones are polled by repeating CreateSnapshot (the CSI spec's way), without setting the
   being-created annotation again once the handle is known.

Failures write ``status.error`` (``readyToUse=false``) and a Warning event with Go's reasons
and texts, each message ending in ``(final error)`` or ``(transient error)``
(:mod:`.errors`); the same message is not written twice. A final CreateSnapshot error removes
the being-created annotation, and a content deleted meanwhile then finishes at once. API
conflicts are never shown: guarded patches that fail are decided again, status writes cannot
conflict (:mod:`.status`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.objects import annotations_of, is_deleting, name, uid
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS as VSC
from csi_sidecars.snapshotter import names
from csi_sidecars.snapshotter.deletion import content_deletion_secret as deletion_secret
from csi_sidecars.snapshotter.deletion import delete_content as delete
from csi_sidecars.snapshotter.errors import (
    Report,
    describe,
    failure_plan,
    go_quote,
    is_final,
    is_not_found,
)
from csi_sidecars.snapshotter.objects import (
    Obj,
    class_name,
    is_group_member,
    is_ready,
    ref_uid,
    should_delete,
    snapshot_ref,
    source_snapshot_handle,
    status_of,
    status_str,
    volume_handle,
)
from csi_sidecars.snapshotter.requests import (
    ParameterError,
    SnapshotRequest,
    parse_snapshot_request,
    remove_prefixed,
)
from csi_sidecars.snapshotter.secrets import (
    SecretRef,
    SecretRefError,
    class_ref,
    with_secret,
)
from csi_sidecars.snapshotter.status import (
    mark_patch,
    snapshot_status_patch,
    status_body,
    timestamp_ns,
    unmark_patch,
)
from csi_sidecars.snapshotter.view import View, poll_delay

MARKERS = (api.ANN_VOLUME_SNAPSHOT_BEING_CREATED, names.ANN_CREATE_REQUEST)
WHAT = "snapshot content"


CREATING = Report(names.SNAPSHOT_CREATION_FAILED, "Failed to create snapshot")
CHECKING = Report(names.SNAPSHOT_CHECK_FAILED, "Failed to check and update snapshot content")


def decide(vsc: Obj, view: View) -> a.Plan:
    """The plan for ``vsc`` (see the module docstring)."""
    if should_delete(vsc):
        return delete(vsc, view)
    if volume_handle(vsc) and status_of(vsc) is None and not is_group_member(vsc):
        return create(vsc, view, CREATING)
    if is_ready(vsc):
        patch = unmark_patch(vsc, MARKERS)
        if patch is None:
            return (a.Done(),)
        return (a.Patch(VSC, name(vsc), patch, type="json"), a.Done())
    return check(vsc, view)


# -- failures ----------------------------------------------------------------------------------


def failed(
    vsc: Obj, view: View, how: Report, detail: str, final: bool, then: a.Plan | None = None
) -> a.Plan:
    """Report a failure on ``vsc`` (:func:`~.errors.failure_plan`), then ``then``."""
    return failure_plan(VSC, vsc, view.now(), how, detail, final, then)


# -- create ------------------------------------------------------------------------------------


def build_request(vsc: Obj, view: View) -> SnapshotRequest | str:
    """The CreateSnapshot request for ``vsc``, or Go's error text (without the prefix)."""
    cfg = view.config
    content = name(vsc)
    if api.ANN_VOLUME_SNAPSHOT_BEING_CREATED in annotations_of(vsc):
        recorded = parse_snapshot_request(
            annotations_of(vsc).get(names.ANN_CREATE_REQUEST), volume_handle(vsc)
        )
        if recorded is not None:
            return recorded
    cls = class_name(vsc)
    if not cls:
        return _input_error(content, f"failed to take snapshot {content} without a snapshot class")
    klass = view.snapshot_class(cls)
    if klass is None:
        return _input_error(
            content, f'volumesnapshotclass.snapshot.storage.k8s.io "{cls}" not found'
        )
    raw = klass.get("parameters")
    try:
        params = remove_prefixed(raw if isinstance(raw, dict) else {})
    except ParameterError as err:
        return f"failed to remove CSI Parameters of prefixed keys: {err}"
    if cfg.extra_create_metadata:
        ref = snapshot_ref(vsc)
        params[api.PREFIXED_VOLUME_SNAPSHOT_NAME_KEY] = str(ref.get("name") or "")
        params[api.PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY] = str(ref.get("namespace") or "")
        params[api.PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY] = content
    snap_name = names.object_name(
        cfg.snapshot_name_prefix, ref_uid(vsc), cfg.snapshot_name_uuid_length
    )
    return SnapshotRequest(snap_name, volume_handle(vsc), params)


def _input_error(content: str, inner: str) -> str:
    return f"failed to get input parameters to create snapshot for content {content}: " + go_quote(
        inner
    )


def create(vsc: Obj, view: View, how: Report) -> a.Plan:
    """Create (or, once the handle is known, poll) the snapshot of a dynamic content."""
    content = name(vsc)
    if not ref_uid(vsc):
        inner = f"cannot create snapshot. Snapshot content {content} not bound to a snapshot"
        return failed(vsc, view, how, _take_error(vsc, inner), True)
    request = build_request(vsc, view)
    if isinstance(request, str):
        return failed(vsc, view, how, request, True)
    try:
        ref = deletion_secret(vsc)
    except SecretRefError as err:
        return failed(vsc, view, how, _input_error(content, str(err)), True)
    no_secret = _input_error(
        content, f"cannot get credentials for snapshot content {go_quote(content)}"
    )
    return with_secret(
        ref,
        then=lambda secrets: _send_create(vsc, view, how, request, secrets),
        fail=lambda _: failed(vsc, view, how, no_secret, True),
    )


def _take_error(vsc: Obj, inner: str) -> str:
    return f"failed to take snapshot of the volume {volume_handle(vsc)}: {go_quote(inner)}"


def _send_create(
    vsc: Obj, view: View, how: Report, request: SnapshotRequest, secrets: dict[str, str]
) -> a.Plan:
    def call(obj: Obj) -> a.Plan:
        return (
            a.Call(
                "controller",
                "CreateSnapshot",
                request.message(secrets),
                then=lambda reply: _created(obj, view, how, reply),
                on_error=lambda exc: _create_failed(obj, view, how, exc),
            ),
        )

    if status_str(vsc, "snapshotHandle"):
        return call(vsc)  # a readiness poll: the handle already guards against leaks
    patch = mark_patch(
        vsc,
        api.ANN_VOLUME_SNAPSHOT_BEING_CREATED,
        api.VSC_FINALIZER,
        (names.ANN_CREATE_REQUEST, request.record()),
    )
    if patch is None:
        return call(vsc)
    mark = a.Patch(VSC, name(vsc), patch, type="json", then=call)
    if api.ANN_VOLUME_SNAPSHOT_BEING_CREATED in annotations_of(vsc):
        return (mark,)
    return _if_snapshot_alive(vsc, mark)


def _if_snapshot_alive(vsc: Obj, create: a.Patch) -> a.Plan:
    """``create``, after a live read shows the bound VolumeSnapshot alive (same uid, not deleted).

    A content's first CreateSnapshot can come long after its snapshot was deleted: while no
    snapshot-controller runs (or its caches lag, after an API server restart), nothing deletes
    the content of a snapshot that is being deleted or already gone. A dynamic content exists
    only for its snapshot, so without one nothing is sent; the content waits (back-off) for the
    snapshot-controller to delete it. Only an unmarked content is held back (once marked, a call
    may have reached the driver, and the handle must be learnt so the snapshot can be deleted).
    Without ``get`` on volumesnapshots (Go's RBAC) the read answers 403 and the create goes on
    as in Go.
    """
    ref = snapshot_ref(vsc)
    snap_name, namespace = str(ref.get("name") or ""), str(ref.get("namespace") or "")
    if not snap_name or not namespace:
        return (create,)

    def decide_on(snap: Obj | None) -> a.Plan:
        if snap is None or uid(snap) != ref_uid(vsc):
            return (a.Retry(f"snapshot {namespace}/{snap_name} is gone: not created"),)
        if is_deleting(snap):
            return (a.Retry(f"snapshot {namespace}/{snap_name} is being deleted: not created"),)
        return (create,)

    def read_failed(exc: ApiError) -> a.Plan:
        if exc.status == 403:
            return (create,)
        return (a.Retry(f"cannot read snapshot {namespace}/{snap_name}: {exc}"),)

    return (
        a.Read(api.VOLUME_SNAPSHOTS, snap_name, namespace, then=decide_on, on_error=read_failed),
    )


def _created(vsc: Obj, view: View, how: Report, reply: Any) -> a.Plan:
    snap = reply.snapshot
    if not snap.snapshot_id:
        return failed(vsc, view, how, _take_error(vsc, "the driver returned no snapshot ID"), False)
    return _observed(vsc, view, snap, unmark=True)


def _create_failed(vsc: Obj, view: View, how: Report, exc: BaseException) -> a.Plan:
    final = is_final(exc)
    detail = _take_error(vsc, describe(exc))
    unmark = unmark_patch(vsc, MARKERS) if final else None
    if unmark is None:
        return failed(vsc, view, how, detail, final)
    after: a.Plan = (
        a.Patch(
            VSC,
            name(vsc),
            unmark,
            type="json",
            then=lambda obj: delete(obj, view) if should_delete(obj) else (a.Retry(detail),),
        ),
    )
    return failed(vsc, view, how, detail, final, after)


def _observed(vsc: Obj, view: View, snap: Any, *, unmark: bool) -> a.Plan:
    """Write what the driver said about the snapshot, then go on from the written object."""
    handle = status_str(vsc, "snapshotHandle") or source_snapshot_handle(vsc) or snap.snapshot_id
    created = timestamp_ns(snap.creation_time) if snap.HasField("creation_time") else None
    fields = snapshot_status_patch(
        status_of(vsc),
        handle=handle,
        ready=bool(snap.ready_to_use),
        created_ns=created if created is not None else int(view.now() * 1e9),
        size=int(snap.size_bytes),
        group_handle=str(snap.group_snapshot_id),
    )

    def next_step(obj: Obj) -> a.Plan:
        patch = unmark_patch(obj, MARKERS) if unmark else None
        if patch is not None:
            return (a.Patch(VSC, name(obj), patch, type="json", then=lambda o: settled(o, view)),)
        return settled(obj, view)

    if fields is None:
        return next_step(vsc)
    return (a.Patch(VSC, name(vsc), status_body(fields), subresource="status", then=next_step),)


def settled(vsc: Obj, view: View) -> a.Plan:
    """After a successful answer: delete if asked meanwhile, done if ready, else poll."""
    if should_delete(vsc):
        return delete(vsc, view)
    if is_ready(vsc):
        return (a.Done(),)
    return (a.RetryAfter(poll_delay(view.config, _age(vsc, view)), "not ready to use yet"),)


def _age(vsc: Obj, view: View) -> float:
    created = (status_of(vsc) or {}).get("creationTime")
    if isinstance(created, int) and created > 0:
        return max(0.0, view.now() - created / 1e9)
    return 0.0


# -- check -------------------------------------------------------------------------------------


def check(vsc: Obj, view: View) -> a.Plan:
    """Go's ``checkandUpdateContentStatus`` for a content that is not ready."""
    content = name(vsc)
    member_handle = status_str(vsc, "volumeGroupSnapshotHandle") and status_str(
        vsc, "snapshotHandle"
    )
    handle = source_snapshot_handle(vsc) or (
        status_str(vsc, "snapshotHandle") if member_handle else ""
    )
    if not handle:
        if is_group_member(vsc):  # the snapshot-controller fills the member in
            return (a.RetryAfter(view.config.poll_start, "waiting for the group snapshot"),)
        return create(vsc, view, CHECKING)
    ref: SecretRef | None = None
    if member_handle:
        try:
            ref = deletion_secret(vsc)
        except SecretRefError as err:
            detail = (
                f"failed to get credentials from annotation for snapshot content {content}: {err}"
            )
            return failed(vsc, view, CHECKING, detail, True)
        unreadable = (
            f"failed to get credentials from annotation for snapshot content {content}: "
            f"cannot get credentials for snapshot content {go_quote(content)}"
        )
        fail_read: Callable[[str], str] = lambda _: unreadable  # noqa: E731
    else:
        cls = class_name(vsc)
        if cls:
            klass = view.snapshot_class(cls)
            if klass is None:
                detail = (
                    f"failed to get snapshot class {cls} for snapshot content {content}: "
                    f'volumesnapshotclass.snapshot.storage.k8s.io "{cls}" not found'
                )
                return failed(vsc, view, CHECKING, detail, True)
            raw = klass.get("parameters")
            try:
                ref = class_ref(
                    raw if isinstance(raw, dict) else {},
                    api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY,
                    api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY,
                    "SnapshotterList",
                    {"volumesnapshotcontent.name": content},
                )
            except SecretRefError as err:
                detail = f"failed to get secret reference for snapshot content {content}: {err}"
                return failed(vsc, view, CHECKING, detail, True)
        fail_read = lambda d: f"failed to get credentials for snapshot content {content}: {d}"  # noqa: E731

    return with_secret(
        ref,
        then=lambda secrets: _status_call(vsc, view, handle, secrets),
        fail=lambda detail: failed(vsc, view, CHECKING, fail_read(detail), True),
    )


def _status_call(vsc: Obj, view: View, handle: str, secrets: dict[str, str]) -> a.Plan:
    cfg = view.config
    content = name(vsc)

    def wrap(inner: str) -> str:
        return f"failed to list snapshot for content {content}: {go_quote(inner)}"

    missing = wrap(f"can not find snapshot for snapshotID {handle}")

    def error(exc: BaseException) -> a.Plan:
        if cfg.get_snapshot and not cfg.list_snapshots and is_not_found(exc):
            return failed(vsc, view, CHECKING, missing, True)
        return failed(vsc, view, CHECKING, wrap(describe(exc)), is_final(exc))

    if cfg.list_snapshots:

        def listed(reply: Any) -> a.Plan:
            if not reply.entries:
                return failed(vsc, view, CHECKING, missing, True)
            return _observed(vsc, view, reply.entries[0].snapshot, unmark=False)

        request = csi_pb2.ListSnapshotsRequest(snapshot_id=handle, secrets=secrets)
        return (a.Call("controller", "ListSnapshots", request, then=listed, on_error=error),)
    if cfg.get_snapshot:
        get = csi_pb2.GetSnapshotRequest(snapshot_id=handle, secrets=secrets)
        return (
            a.Call(
                "controller",
                "GetSnapshot",
                get,
                then=lambda reply: _observed(vsc, view, reply.snapshot, unmark=False),
                on_error=error,
            ),
        )
    # Neither: the handle is taken as valid and ready (Go).
    return _observed(
        vsc, view, csi_pb2.Snapshot(snapshot_id=handle, ready_to_use=True), unmark=False
    )
