"""The detach plan of a VolumeAttachment that has a deletion timestamp (and our finalizer).

As a plan::

    (Read the controller-publish Secret, when the volume has one; the rest is its continuation)
    Call ControllerUnpublishVolume
      then:     Patch remove the VA finalizer
                  then: the VA is gone (ours was the last finalizer)
                          -> Emit SuccessfulDetachVolume, Done
                        else
                          -> Patch status detached (404 is fine), Emit SuccessfulDetachVolume, Done
      on_error: Patch status detachError, Emit FailedDetachVolume (VA, pods), Retry

The finalizer goes *before* the status is written (a VA without our finalizer counts as
detached, so a failed status write cannot cause a second unpublish; issue #587). When removing
it deleted the VA, the status write that could only get a 404 is not sent (Go sends it).

The volume to unpublish comes from the inline spec, else the PV, else (PV gone, issue #235) our
volume-handle and secret-reference annotations; the node ID from the CSINode, else the
``csi.alpha.kubernetes.io/node-id`` annotation written at attach time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.attacher import events, names, patches
from csi_sidecars.attacher.objects import (
    SourceError,
    csi_source,
    csinode_node_id,
    inline_spec,
    node_id_error,
    pv_not_found,
    pv_spec,
    secret_ref,
    va_attached,
    va_pv_name,
)
from csi_sidecars.attacher.plans import CSINODE_WAIT, Facts, api_message, is_stale, with_secrets
from csi_sidecars.attacher.request import build_unpublish_request
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, annotations_of, finalizers, is_deleting
from csi_sidecars.kube.resources import ApiError

Obj = Mapping[str, Any]


def detach_source(va: Obj, pv: Obj | None) -> tuple[JsonDict, bool]:
    """The CSI source to unpublish, and whether it came from our annotations (PV gone).

    Raises:
        SourceError: no usable source (PV gone and no annotation: Go's not-found error).
    """
    inline = inline_spec(va)
    if inline is not None:
        return csi_source(inline), False
    pv_name = va_pv_name(va)
    assert pv_name is not None
    if pv is not None:
        return csi_source(pv_spec(pv), pv_name), False
    recorded = annotations_of(va)
    handle = recorded.get(names.VOLUME_HANDLE_ANNOTATION)
    if handle is None:
        raise SourceError(pv_not_found(pv_name))
    csi: JsonDict = {"volumeHandle": handle}
    ref_name = recorded.get(names.SECRET_NAME_ANNOTATION)
    ref_ns = recorded.get(names.SECRET_NAMESPACE_ANNOTATION)
    if ref_name is not None and ref_ns is not None:
        csi["controllerPublishSecretRef"] = {"name": ref_name, "namespace": ref_ns}
    return csi, True


def decide_detach(f: Facts) -> a.Plan:
    """The detach plan (``f.va`` is being deleted)."""
    if f.cfg.finalizer not in finalizers(f.va) and not f.force_sync:
        return (a.Done("already detached"),)
    try:
        csi, _ = detach_source(f.va, f.pv)
    except SourceError as exc:
        return f.detach_error(str(exc))
    handle = str(csi.get("volumeHandle") or "")
    return with_secrets(
        secret_ref(csi), f.detach_error, lambda secrets: _unpublish(f, handle, secrets)
    )


def _unpublish(f: Facts, handle: str, secrets: dict[str, str] | None) -> a.Plan:
    if not f.csinode_synced:
        return (a.RetryAfter(CSINODE_WAIT, "waiting for the CSINode cache"),)
    driver = f.cfg.driver_name
    node_id = csinode_node_id(f.csinode, driver)
    if node_id is None:
        node_id = annotations_of(f.va).get(names.NODE_ID_ANNOTATION)
    if node_id is None:
        return f.detach_error(node_id_error(f.csinode, f.node_name, driver))
    request = build_unpublish_request(handle, node_id, secrets=secrets)
    return (
        a.Call(
            "controller",
            "ControllerUnpublishVolume",
            request,
            then=lambda _: unpublished(f, handle),
            on_error=f.detach_call_failed,
        ),
    )


def unpublished(f: Facts, handle: str) -> a.Plan:
    """After a successful ControllerUnpublishVolume: the finalizer, then the status.

    Go's ``markAsDetached``: nothing at all when the finalizer is gone and the status already
    says detached.
    """
    va = f.va
    event = events.on_va(events.detach_succeeded(f.pv_name, handle, f.node_name), va)
    done = (event, a.Done("detached"))

    def mark_failed(exc: ApiError) -> a.Plan:
        if exc.not_found:
            return done
        return f.detach_error(f"could not mark as detached: {api_message(exc)}")

    mark = (patches.va_mark_detached(va, mark_failed), *done)

    def removed(new: JsonDict) -> a.Plan:
        # Ours was the last finalizer: the API server has removed the VA.
        return done if is_deleting(new) and not finalizers(new) else mark

    def remove_failed(exc: ApiError) -> a.Plan:
        if exc.not_found:
            return done
        if is_stale(exc):
            return (a.Redecide(api_message(exc)),)
        return f.detach_error(f"could not mark as detached: {api_message(exc)}")

    remove = patches.va_remove_finalizer(va, f.cfg.finalizer, then=removed, on_error=remove_failed)
    if remove is None:
        return mark if va_attached(va) else (a.Done("already detached"),)
    return (remove,)
