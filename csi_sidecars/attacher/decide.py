"""The attacher's VolumeAttachment decision: one pure call returns the whole plan of a sync.

:func:`decide_va` returns complete actions (:mod:`csi_sidecars.controller.actions`): the guarded
finalizer patches with their bodies, the Secret read, the ControllerPublish/Unpublish call with
its request, and, in the pure continuations of those, the status write with its events and the
outcome. The executor (:class:`~csi_sidecars.controller.perform.Performer`) only performs them.

An attach, as a plan (the Go attacher's order, so the API writes are the same)::

    Patch PV finalizer          (skipped when present)
    Patch VA finalizer + node-id (+ detach-info) annotations       (skipped when present)
    Call ControllerPublishVolume
      then:     Patch status attached + publish context, Emit SuccessfulAttachVolume, Done
      on_error: Patch status attachError, Emit FailedAttachVolume (VA, pods), Retry

Both finalizer patches are in the one plan, back to back, without deciding again in between.
The VA patch comes after every check that can fail, so a broken VA does not get a finalizer
that blocks its deletion. With a ``controllerPublishSecretRef`` the plan stops at a ``Read`` of
the Secret whose continuation holds the rest. A check that fails yields the ``attachError``
plan instead (after the PV patch when it came first, as in Go). The detach side is
:mod:`csi_sidecars.attacher.detach`.

Better than Go, on purpose:

* detach works when the PV is gone (issue #235): the volume handle and secret reference are
  recorded on the VA together with the finalizer, and already-attached VAs get them recorded
  on their next sync (best effort: a failure is not retried);
* ``errorCode`` is written into ``detachError`` too, not only ``attachError``;
* events for attach/detach success and failure (issue #363);
* before the CSINode cache has synced, a VA is looked at again shortly
  (:data:`~.plans.CSINODE_WAIT`, no back-off) instead of failing with "csinode not found".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.attacher import detach, events, names, patches
from csi_sidecars.attacher.config import AttacherConfig
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
    va_attacher,
)
from csi_sidecars.attacher.plans import CSINODE_WAIT, Clock, Facts, is_stale, utcnow, with_secrets
from csi_sidecars.attacher.request import build_publish_request, volume_capability
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import finalizers, is_deleting

Obj = Mapping[str, Any]


def decide_va(
    va: Obj,
    *,
    cfg: AttacherConfig,
    pv: Obj | None,
    csinode: Obj | None,
    clock: Clock = utcnow,
    csinode_synced: bool = True,
    force_sync: bool = False,
) -> a.Plan:
    """The plan for one sync of a VolumeAttachment.

    Args:
        va: the VolumeAttachment.
        cfg: driver and flags.
        pv: the PV named by ``spec.source.persistentVolumeName`` (cache or our last write).
        csinode: the CSINode named ``spec.nodeName`` from the cache, or None.
        clock: the time written into ``attachError`` / ``detachError``.
        csinode_synced: whether the CSINode cache has completed its first list.
        force_sync: the ListVolumes reconciler found the status wrong: attach (or detach)
            even when the status already says so.
    """
    if va_attacher(va) != cfg.driver_name:
        return (a.Done(f"VolumeAttachment is for attacher {va_attacher(va)!r}"),)
    if cfg.trivial:
        if va_attached(va):
            return (a.Done("already attached"),)
        return (patches.va_mark_attached(va, None), a.Done("attached (trivial handler)"))
    facts = Facts(va, cfg, pv, csinode, clock, csinode_synced, force_sync)
    if is_deleting(va):
        return detach.decide_detach(facts)
    return decide_attach(facts)


def detach_info(csi: Obj) -> dict[str, str]:
    """Our VA annotations that let a later detach work without the PV."""
    out = {names.VOLUME_HANDLE_ANNOTATION: str(csi.get("volumeHandle") or "")}
    ref = secret_ref(csi)
    if ref is not None:
        out[names.SECRET_NAME_ANNOTATION] = ref.name
        out[names.SECRET_NAMESPACE_ANNOTATION] = ref.namespace
    return out


def decide_attach(f: Facts) -> a.Plan:
    """The attach plan of a VolumeAttachment without a deletion timestamp."""
    va, cfg, pv = f.va, f.cfg, f.pv
    if va_attached(va) and not f.force_sync:
        return _backfill(f) or (a.Done("already attached"),)
    pv_name = f.pv_name
    try:
        inline = inline_spec(va)
    except SourceError as exc:
        return f.attach_error(str(exc))
    first: tuple[a.Action, ...] = ()
    if inline is None:
        assert pv_name is not None
        if pv is None:
            return f.attach_error(pv_not_found(pv_name))
        if is_deleting(pv):
            return f.attach_error(f'PersistentVolume "{pv_name}" is marked for deletion')
        add = patches.pv_add_finalizer(
            pv, cfg.finalizer, f.attach_write_failed("could not add PersistentVolume finalizer")
        )
        first = (add,) if add is not None else ()
        volume = pv_spec(pv)
    else:
        volume = inline
    try:
        csi = csi_source(volume, pv_name)
        volume_capability(
            volume,
            single_node_multi_writer=cfg.single_node_multi_writer,
            default_fstype=cfg.default_fstype,
        )
    except SourceError as exc:
        return (*first, *f.attach_error(str(exc)))

    def publish(secrets: dict[str, str] | None) -> a.Plan:
        return _publish(f, volume, csi, inline is not None, secrets)

    return (*first, *with_secrets(secret_ref(csi), f.attach_error, publish))


def _publish(
    f: Facts, volume: Obj, csi: Obj, inline: bool, secrets: dict[str, str] | None
) -> a.Plan:
    """Once the secrets are known: the VA patch and ControllerPublishVolume."""
    va, cfg = f.va, f.cfg
    if not f.csinode_synced:
        return (a.RetryAfter(CSINODE_WAIT, "waiting for the CSINode cache"),)
    node_id = csinode_node_id(f.csinode, cfg.driver_name)
    if node_id is None:
        return f.attach_error(node_id_error(f.csinode, f.node_name, cfg.driver_name))
    wanted = {names.NODE_ID_ANNOTATION: node_id}
    if cfg.record_detach_info and not inline:
        wanted.update(detach_info(csi))
    save = patches.va_save(
        va, cfg.finalizer, wanted, f.attach_write_failed("could not save VolumeAttachment")
    )
    request = build_publish_request(
        volume,
        node_id,
        secrets=secrets,
        supports_publish_readonly=cfg.publish_readonly,
        supports_single_node_multi_writer=cfg.single_node_multi_writer,
        default_fstype=cfg.default_fstype,
    )
    handle = request.volume_id

    def published(reply: Any) -> a.Plan:
        event = events.attach_succeeded(f.pv_name, handle, f.node_name)
        return (
            patches.va_mark_attached(va, dict(reply.publish_context)),
            events.on_va(event, va),
            a.Done("attached"),
        )

    call = a.Call(
        "controller",
        "ControllerPublishVolume",
        request,
        then=published,
        on_error=f.attach_call_failed,
    )
    return (save, call) if save is not None else (call,)


def _backfill(f: Facts) -> a.Plan | None:
    """Record detach info on an attached VA that lacks it (attached by an older attacher)."""
    va, cfg, pv = f.va, f.cfg, f.pv
    if not cfg.record_detach_info or pv is None or cfg.finalizer not in finalizers(va):
        return None
    try:
        if inline_spec(va) is not None:
            return None
        csi = csi_source(pv_spec(pv))
    except SourceError:
        return None

    def failed(exc: Any) -> a.Plan:
        if is_stale(exc):
            return (a.Redecide("VolumeAttachment changed"),)
        return (a.Done("could not record detach info (best effort)"),)

    patch = patches.va_save(va, None, detach_info(csi), failed)
    return (patch, a.Done("recorded detach info")) if patch is not None else None
