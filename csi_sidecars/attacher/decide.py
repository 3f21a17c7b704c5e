"""The attacher's VolumeAttachment decisions: pure functions from objects to one next action.

An executor syncs one VA key like this (``force_sync`` is consumed once per sync)::

    secrets = secrets_error = None
    while True:
        action = decide_va(va, cfg=cfg, pv=pv, csinode=csinode, now=now(),
                           csinode_synced=..., secrets=secrets, secrets_error=secrets_error,
                           force_sync=force_sync)
        # stop / step / call / write, see csi_sidecars.attacher.actions

The order of the steps is the Go attacher's, so the API writes are the same and in the same
order: on attach the PV finalizer first, then (after every check that can fail, so a broken
VA does not get a finalizer that blocks its deletion) the VA finalizer with the node-id
annotation, then ControllerPublishVolume, then the status; on detach ControllerUnpublishVolume,
then the VA finalizer is removed *before* the status is written (a VA without our finalizer
counts as detached, so a failed status write cannot cause a second unpublish; issue #587).

Better than Go, on purpose:

* detach works when the PV is gone (issue #235): the volume handle and secret reference are
  recorded on the VA together with the finalizer, and already-attached VAs get them recorded
  on their next sync (:class:`~.actions.AnnotateVA`);
* ``errorCode`` is written into ``detachError`` too, not only ``attachError``;
* events for attach/detach success and failure (issue #363);
* before the CSINode cache has synced, a VA waits (:class:`~.actions.WaitForCSINode`) instead of
  failing with "csinode not found" right after start-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.attacher import errors, events, names, patches
from csi_sidecars.attacher.actions import (
    AddPVFinalizer,
    AddVAFinalizer,
    AnnotateVA,
    Attach,
    Detach,
    Ignore,
    LoadSecrets,
    MarkAttached,
    MarkDetached,
    OutcomeAction,
    RemoveVAFinalizer,
    SetAttachError,
    SetDetachError,
    VAAction,
    WaitForCSINode,
)
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.objects import (
    JsonDict,
    SecretRef,
    SourceError,
    annotation,
    csi_source,
    csinode_node_id,
    has_finalizer,
    inline_spec,
    is_deleting,
    node_id_error,
    pv_not_found,
    pv_spec,
    secret_ref,
    va_attached,
    va_attacher,
    va_node_name,
    va_pv_name,
)
from csi_sidecars.attacher.request import (
    build_publish_request,
    build_unpublish_request,
    volume_capability,
)

Obj = Mapping[str, Any]


def decide_va(
    va: Obj,
    *,
    cfg: AttacherConfig,
    pv: Obj | None,
    csinode: Obj | None,
    now: dt.datetime,
    csinode_synced: bool = True,
    secrets: Mapping[str, str] | None = None,
    secrets_error: str | None = None,
    force_sync: bool = False,
) -> VAAction:
    """The next thing to do for a VolumeAttachment.

    Args:
        va: the VolumeAttachment.
        cfg: driver name, capabilities and flags.
        pv: the PV named by ``spec.source.persistentVolumeName`` from the cache, or None.
        csinode: the CSINode named ``spec.nodeName`` from the cache, or None.
        now: the time written into ``attachError`` / ``detachError``.
        csinode_synced: whether the CSINode cache has completed its first list.
        secrets: data of the controller-publish secret once loaded (None = not loaded yet).
        secrets_error: why loading it failed (the text after ``failed to load secret ...:``).
        force_sync: the ListVolumes reconciler found the status wrong: attach (or detach)
            even when the status already says so.
    """
    if va_attacher(va) != cfg.driver_name:
        return Ignore(f"VolumeAttachment is for attacher {va_attacher(va)!r}")
    if cfg.trivial:
        if va_attached(va):
            return Ignore("already attached")
        return MarkAttached(patches.va_mark_attached(va, None))
    inputs = _Inputs(va, cfg, pv, csinode, now, csinode_synced, secrets, secrets_error, force_sync)
    if is_deleting(va):
        return _decide_detach(inputs)
    return _decide_attach(inputs)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The arguments of :func:`decide_va`, passed around as one value."""

    va: Obj
    cfg: AttacherConfig
    pv: Obj | None
    csinode: Obj | None
    now: dt.datetime
    csinode_synced: bool = True
    secrets: Mapping[str, str] | None = None
    secrets_error: str | None = None
    force_sync: bool = False

    def attach_error(
        self, message: str, code: int | None = None, final: bool = True
    ) -> SetAttachError:
        code = code if self.cfg.error_codes else None
        node = va_node_name(self.va)
        pods = events.pod_selector(self.pv, node)
        evs = events.attach_failed(va_pv_name(self.va), node, message, pods)
        patch = patches.va_attach_error(self.va, errors.volume_error(message, self.now, code))
        return SetAttachError(patch, message, code, final, evs)

    def detach_error(
        self, message: str, code: int | None = None, final: bool = True
    ) -> SetDetachError:
        code = code if self.cfg.error_codes else None
        node = va_node_name(self.va)
        pods = events.pod_selector(self.pv, node)
        evs = events.detach_failed(va_pv_name(self.va), node, message, pods)
        patch = patches.va_detach_error(self.va, errors.volume_error(message, self.now, code))
        return SetDetachError(patch, message, code, final, evs)


def _secrets_step(
    ref: SecretRef | None, secrets: Mapping[str, str] | None, secrets_error: str | None
) -> LoadSecrets | str | None:
    """LoadSecrets to fetch, an error message, or None when the secrets are ready / unneeded."""
    if ref is None:
        return None
    if secrets_error is not None:
        return f'failed to load secret "{ref}": {secrets_error}'
    if secrets is None:
        return LoadSecrets(ref)
    return None


def detach_info(csi: Obj) -> dict[str, str]:
    """Our VA annotations that let a later detach work without the PV."""
    out = {names.VOLUME_HANDLE_ANNOTATION: str(csi.get("volumeHandle") or "")}
    ref = secret_ref(csi)
    if ref is not None:
        out[names.SECRET_NAME_ANNOTATION] = ref.name
        out[names.SECRET_NAMESPACE_ANNOTATION] = ref.namespace
    return out


def _decide_attach(i: _Inputs) -> VAAction:
    va, cfg, pv = i.va, i.cfg, i.pv
    if va_attached(va) and not i.force_sync:
        return _backfill(va, cfg, pv) or Ignore("already attached")
    pv_name = va_pv_name(va)
    try:
        inline = inline_spec(va)
    except SourceError as exc:
        return i.attach_error(str(exc))
    if inline is None:
        assert pv_name is not None
        if pv is None:
            return i.attach_error(pv_not_found(pv_name))
        if is_deleting(pv):
            return i.attach_error(f'PersistentVolume "{pv_name}" is marked for deletion')
        add = patches.pv_add_finalizer(pv, cfg.finalizer)
        if add is not None:
            return AddPVFinalizer(add)
        spec = pv_spec(pv)
    else:
        spec = inline
    try:
        csi = csi_source(spec, pv_name)
        volume_capability(
            spec,
            single_node_multi_writer=cfg.supports_single_node_multi_writer,
            default_fstype=cfg.default_fstype,
        )
    except SourceError as exc:
        return i.attach_error(str(exc))
    step = _secrets_step(secret_ref(csi), i.secrets, i.secrets_error)
    if isinstance(step, LoadSecrets):
        return step
    if step is not None:
        return i.attach_error(step)
    node_name = va_node_name(va)
    if not i.csinode_synced:
        return WaitForCSINode(node_name)
    node_id = csinode_node_id(i.csinode, cfg.driver_name)
    if node_id is None:
        return i.attach_error(node_id_error(i.csinode, node_name, cfg.driver_name))
    wanted = {names.NODE_ID_ANNOTATION: node_id}
    if cfg.record_detach_info and inline is None:
        wanted.update(detach_info(csi))
    save = patches.va_add_finalizer_and_annotations(va, cfg.finalizer, wanted)
    if save is not None:
        return AddVAFinalizer(save, node_id)
    request = build_publish_request(
        spec,
        node_id,
        secrets=i.secrets,
        supports_publish_readonly=cfg.supports_publish_readonly,
        supports_single_node_multi_writer=cfg.supports_single_node_multi_writer,
        default_fstype=cfg.default_fstype,
    )
    return Attach(request, pv_name, request.volume_id, node_id)


def _backfill(va: Obj, cfg: AttacherConfig, pv: Obj | None) -> AnnotateVA | None:
    """Record detach info on an attached VA that lacks it (attached by an older attacher)."""
    if not cfg.record_detach_info or pv is None or not has_finalizer(va, cfg.finalizer):
        return None
    try:
        if inline_spec(va) is not None:
            return None
        csi = csi_source(pv_spec(pv))
    except SourceError:
        return None
    patch = patches.va_add_finalizer_and_annotations(va, None, detach_info(csi))
    return AnnotateVA(patch) if patch is not None else None


def _detach_source(va: Obj, pv: Obj | None) -> tuple[JsonDict, bool]:
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
    handle = annotation(va, names.VOLUME_HANDLE_ANNOTATION)
    if handle is None:
        raise SourceError(pv_not_found(pv_name))
    csi: JsonDict = {"volumeHandle": handle}
    ref_name = annotation(va, names.SECRET_NAME_ANNOTATION)
    ref_ns = annotation(va, names.SECRET_NAMESPACE_ANNOTATION)
    if ref_name is not None and ref_ns is not None:
        csi["controllerPublishSecretRef"] = {"name": ref_name, "namespace": ref_ns}
    return csi, True


def _decide_detach(i: _Inputs) -> VAAction:
    va, cfg = i.va, i.cfg
    if not has_finalizer(va, cfg.finalizer) and not i.force_sync:
        return Ignore("already detached")
    try:
        csi, from_annotations = _detach_source(va, i.pv)
    except SourceError as exc:
        return i.detach_error(str(exc))
    step = _secrets_step(secret_ref(csi), i.secrets, i.secrets_error)
    if isinstance(step, LoadSecrets):
        return step
    if step is not None:
        return i.detach_error(step)
    node_name = va_node_name(va)
    if not i.csinode_synced:
        return WaitForCSINode(node_name)
    node_id = csinode_node_id(i.csinode, cfg.driver_name)
    if node_id is None:
        node_id = annotation(va, names.NODE_ID_ANNOTATION)
    if node_id is None:
        return i.detach_error(node_id_error(i.csinode, node_name, cfg.driver_name))
    handle = str(csi.get("volumeHandle") or "")
    request = build_unpublish_request(handle, node_id, secrets=i.secrets)
    return Detach(request, va_pv_name(va), handle, node_id, from_annotations)


def attach_outcome(
    va: Obj,
    attach: Attach,
    *,
    cfg: AttacherConfig,
    now: dt.datetime,
    publish_context: Mapping[str, str] | None = None,
    error: BaseException | None = None,
    pv: Obj | None = None,
) -> MarkAttached | SetAttachError:
    """The status write after ControllerPublishVolume returned ``publish_context`` or ``error``.

    ``va`` is the VA the request was built from (after its finalizer patch); ``pv`` (optional)
    lets failure events reach the pods using the volume.
    """
    if error is not None:
        return _Inputs(va, cfg, pv, None, now).attach_error(
            errors.error_message(error),
            code=errors.error_code_number(error),
            final=errors.is_final_error(error),
        )
    evs = events.attach_succeeded(attach.pv_name, attach.volume_handle, va_node_name(va))
    return MarkAttached(patches.va_mark_attached(va, publish_context), evs)


def detach_outcome(
    va: Obj,
    detach: Detach,
    *,
    cfg: AttacherConfig,
    now: dt.datetime,
    error: BaseException | None = None,
    pv: Obj | None = None,
) -> tuple[OutcomeAction, ...]:
    """The writes after ControllerUnpublishVolume, in order (stop at the first failure).

    Success: remove the VA finalizer, then mark the status detached (Go's ``markAsDetached``:
    nothing at all when the finalizer is gone and the status already says detached).
    Failure: one :class:`~.actions.SetDetachError` with the gRPC code.
    """
    if error is not None:
        failed = _Inputs(va, cfg, pv, None, now).detach_error(
            errors.error_message(error),
            code=errors.error_code_number(error),
            final=errors.is_final_error(error),
        )
        return (failed,)
    remove = patches.va_remove_finalizer(va, cfg.finalizer)
    if remove is None and not va_attached(va):
        return ()
    evs = events.detach_succeeded(detach.pv_name, detach.volume_handle, va_node_name(va))
    mark = MarkDetached(patches.va_mark_detached(va), evs)
    return (RemoveVAFinalizer(remove), mark) if remove is not None else (mark,)


def step_failed(
    va: Obj,
    action: object,
    message: str,
    *,
    cfg: AttacherConfig,
    now: dt.datetime,
    pv: Obj | None = None,
) -> SetAttachError | SetDetachError | None:
    """What to write when applying ``action`` failed with ``message`` (Go's wording).

    Returns:
        The error status write, or None when Go only logs and retries with back-off (failed
        status writes, :class:`~.actions.AnnotateVA`, PV finalizer removal).
        A 409 from a ``test`` operation is better handled by re-reading and deciding again.
    """
    inputs = _Inputs(va, cfg, pv, None, now)
    if isinstance(action, AddPVFinalizer):
        return inputs.attach_error(f"could not add PersistentVolume finalizer: {message}")
    if isinstance(action, AddVAFinalizer):
        return inputs.attach_error(f"could not save VolumeAttachment: {message}")
    if isinstance(action, RemoveVAFinalizer | MarkDetached):
        return inputs.detach_error(f"could not mark as detached: {message}")
    return None
