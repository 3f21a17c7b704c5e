"""Deleting contents: the backend snapshot (if the policy asks), the status, the finalizer.

One module for both kinds, Go's ``deleteCSISnapshotOperation`` and
``deleteCSIGroupSnapshotOperation``: with policy ``Delete`` and a status handle (and, for a
VolumeSnapshotContent, no group handle: members go with their group), call DeleteSnapshot or
DeleteVolumeGroupSnapshot with the deletion-secret annotations' Secret, clear the status
handle, then remove the bound-protection finalizer. A driver answering NOT_FOUND has nothing
left to delete (Go retries that forever). Failures emit Go's ``SnapshotDeleteError`` /
``GroupSnapshotDeleteError`` events and retry with back-off; the finalizer stays.
"""

from __future__ import annotations

from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.objects import name, str_list, warning
from csi_sidecars.kube.patch import remove_finalizer_patch
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import VOLUME_GROUP_SNAPSHOT_CONTENTS as VGSC
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS as VSC
from csi_sidecars.snapshotter import names
from csi_sidecars.snapshotter.errors import describe, go_quote, is_not_found
from csi_sidecars.snapshotter.objects import (
    Obj,
    deletion_policy,
    group_source_handles,
    status_of,
    status_str,
)
from csi_sidecars.snapshotter.secrets import SecretRef, SecretRefError, annotation_ref, with_secret
from csi_sidecars.snapshotter.status import (
    CLEARED_GROUP_STATUS,
    CLEARED_SNAPSHOT_STATUS,
    status_body,
)
from csi_sidecars.snapshotter.view import View


def content_deletion_secret(vsc: Obj) -> SecretRef | None:
    """The Secret of the content's deletion-secret annotations."""
    return annotation_ref(
        vsc,
        api.ANN_DELETION_SECRET_REF_NAME,
        api.ANN_DELETION_SECRET_REF_NAMESPACE,
        "snapshot content",
        name(vsc),
    )


def delete_content(vsc: Obj, view: View) -> a.Plan:
    """DeleteSnapshot if the policy asks for it, clear the status, remove the finalizer."""
    handle = status_str(vsc, "snapshotHandle")
    content = name(vsc)
    if (
        deletion_policy(vsc) != api.DELETION_POLICY_DELETE
        or not handle
        or status_str(vsc, "volumeGroupSnapshotHandle")
    ):
        return remove_content_finalizer(vsc)
    no_credentials = a.Emit(
        warning(names.SNAPSHOT_DELETE_ERROR, "Failed to get snapshot credentials"), dict(vsc), VSC
    )
    try:
        ref = content_deletion_secret(vsc)
    except SecretRefError as err:
        reason = f"failed to get input parameters to delete snapshot for content {content}: {err}"
        return (no_credentials, a.Retry(reason))
    return with_secret(
        ref,
        then=lambda secrets: _send_delete(vsc, handle, secrets),
        fail=lambda detail: (no_credentials, a.Retry(detail)),
    )


def _send_delete(vsc: Obj, handle: str, secrets: dict[str, str]) -> a.Plan:
    content = name(vsc)

    def event(message: str) -> a.Emit:
        return a.Emit(warning(names.SNAPSHOT_DELETE_ERROR, message), dict(vsc), VSC)

    def clear(_: Any = None) -> a.Plan:
        def clear_failed(exc: ApiError) -> a.Plan:
            if exc.not_found:
                return (a.Done("content is gone"),)
            return (event("Failed to clear content status"), a.Retry(str(exc)))

        return (
            a.Patch(
                VSC,
                content,
                status_body(dict(CLEARED_SNAPSHOT_STATUS)),
                subresource="status",
                then=remove_content_finalizer,
                on_error=clear_failed,
            ),
        )

    def delete_failed(exc: BaseException) -> a.Plan:
        if is_not_found(exc):
            return clear()
        reason = (
            f"failed to delete snapshot {go_quote(content)}, err: failed to delete snapshot "
            f"content {content}: {go_quote(describe(exc))}"
        )
        return (event("Failed to delete snapshot"), a.Retry(reason))

    request = csi_pb2.DeleteSnapshotRequest(snapshot_id=handle, secrets=secrets)
    return (a.Call("controller", "DeleteSnapshot", request, then=clear, on_error=delete_failed),)


def remove_content_finalizer(vsc: Obj) -> a.Plan:
    """Remove the bound-protection finalizer if it is there; done."""
    patch = remove_finalizer_patch(vsc, api.VSC_FINALIZER)
    if patch is None:
        return (a.Done(),)
    return (a.Patch(VSC, name(vsc), patch, type="json", missing_ok=True), a.Done())


def group_deletion_secret(vgsc: Obj) -> SecretRef | None:
    """The Secret of the group content's deletion-secret annotations."""
    return annotation_ref(
        vgsc,
        api.ANN_DELETION_GROUP_SECRET_REF_NAME,
        api.ANN_DELETION_GROUP_SECRET_REF_NAMESPACE,
        "group snapshot content",
        name(vgsc),
    )


def member_ids(vgsc: Obj) -> list[str]:
    """The member snapshot IDs for DeleteVolumeGroupSnapshot (Go's order of sources)."""
    infos = (status_of(vgsc) or {}).get("volumeSnapshotInfoList")
    if isinstance(infos, list) and infos:
        return [str(i.get("snapshotHandle") or "") for i in infos if isinstance(i, dict)]
    return str_list((group_source_handles(vgsc) or {}).get("volumeSnapshotHandles"))


def delete_group(vgsc: Obj, view: View) -> a.Plan:
    """DeleteVolumeGroupSnapshot if the policy asks for it, clear the status, drop the
    finalizer."""
    content = name(vgsc)
    handle = status_str(vgsc, "volumeGroupSnapshotHandle")
    if deletion_policy(vgsc) != api.DELETION_POLICY_DELETE or not handle:
        return remove_group_finalizer(vgsc)

    def event(message: str) -> a.Emit:
        return a.Emit(warning(names.GROUP_SNAPSHOT_DELETE_ERROR, message), dict(vgsc), VGSC)

    try:
        ref = group_deletion_secret(vgsc)
    except SecretRefError as err:
        return (event("Failed to get snapshot credentials"), a.Retry(str(err)))
    ids = member_ids(vgsc)
    if not ids:
        reason = (
            f"cannot delete group snapshot content {content}. No snapshots found in the group "
            "snapshot"
        )
        return (event("Failed to delete group snapshot"), a.Retry(reason))

    def clear(_: Any = None) -> a.Plan:
        def clear_failed(exc: ApiError) -> a.Plan:
            if exc.not_found:
                return (a.Done("content is gone"),)
            return (event("Failed to clear content status"), a.Retry(str(exc)))

        return (
            a.Patch(
                VGSC,
                content,
                status_body(dict(CLEARED_GROUP_STATUS)),
                subresource="status",
                then=remove_group_finalizer,
                on_error=clear_failed,
            ),
        )

    def delete_failed(exc: BaseException) -> a.Plan:
        if is_not_found(exc):
            return clear()
        reason = f"failed to delete group snapshot {go_quote(content)}, err: {describe(exc)}"
        return (event("Failed to delete group snapshot"), a.Retry(reason))

    def send(secrets: dict[str, str]) -> a.Plan:
        request = csi_pb2.DeleteVolumeGroupSnapshotRequest(
            group_snapshot_id=handle, snapshot_ids=ids, secrets=secrets
        )
        return (
            a.Call(
                "group_controller",
                "DeleteVolumeGroupSnapshot",
                request,
                then=clear,
                on_error=delete_failed,
            ),
        )

    return with_secret(
        ref,
        then=send,
        fail=lambda d: (event("Failed to get snapshot credentials"), a.Retry(d)),
    )


def remove_group_finalizer(vgsc: Obj) -> a.Plan:
    """Remove the group bound-protection finalizer if it is there; done."""
    patch = remove_finalizer_patch(vgsc, api.VGSC_FINALIZER)
    if patch is None:
        return (a.Done(),)
    return (a.Patch(VGSC, name(vgsc), patch, type="json", missing_ok=True), a.Done())
