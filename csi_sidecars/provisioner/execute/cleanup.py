"""The no-leak cleanup: finish a CreateVolume recorded for a claim that no longer wants it.

Runs for :attr:`~..journal.intent.IntentAction.CLEANUP_CREATE`: the claim was deleted (or is
being deleted) while its journal record existed, or, on a live claim, the record names a volume
under an older name. The recorded request is sent again (CreateVolume is idempotent by name) to
learn the volume ID, with the recorded provisioner Secret; then the volume is deleted (reclaim
``Delete``) or adopted as a PV that the PV controller marks Released (``Retain``); see
:func:`~..journal.intent.after_cleanup_create` and
:func:`~..journal.intent.after_cleanup_delete`. The claim itself may be gone: the record
carries what is needed (:meth:`~..journal.intent.Intent.claim`). The caller then drops the
record (or records the new request on a live claim).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import SecretError, is_deleting, name, namespace, uid
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import secrets
from csi_sidecars.provisioner.decide.claims import claim_class
from csi_sidecars.provisioner.decide.pv import save_pv
from csi_sidecars.provisioner.execute.context import Context
from csi_sidecars.provisioner.journal import intent
from csi_sidecars.provisioner.journal.intent import CleanupAction, Intent
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")


async def _adopt(
    ctx: Context,
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any] | None,
    request: csi_pb2.CreateVolumeRequest,
    volume: csi_pb2.Volume,
    policy: str,
) -> bool:
    plan = intent.adoption_plan(pvc, sc, request, ctx.opts)
    klass = intent.adoption_class(sc, ctx.opts.driver_name, policy)
    pv = ctx.build_pv(plan, pvc, klass, volume, volume.capacity_bytes or plan.required_bytes)
    outcome = await ctx.perform(save_pv(pv, pvc), plan.name)
    if not isinstance(outcome, a.Done):
        log.error("Failed to save the adopted PersistentVolume", pv=plan.name, error=outcome.reason)
        return False
    log.info("Adopted volume as a released PersistentVolume", pv=plan.name, volume=volume.volume_id)
    return True


async def run_cleanup(
    ctx: Context, record: Intent, live: Mapping[str, Any] | None
) -> CleanupAction:
    """Send the cleanup CreateVolume of ``record`` and act on the answer.

    Args:
        ctx: the executor context.
        record: the durable journal record.
        live: the claim of that name as cached now (None when gone; it may be a newer claim
            of the same name, or the record's own claim being deleted or re-recorded).

    Returns:
        ``RELEASE`` (drop the record), ``RECORD`` (live claim: record the new request) or
        ``RETRY``; never ``DELETE_VOLUME``/``ADOPT`` (those are carried out here).
    """
    request = record.request
    own = live is not None and uid(live) == record.pvc_uid
    pvc: Mapping[str, Any] = live if own and live is not None else record.claim()
    deleting = not own or is_deleting(pvc)
    sc = ctx.caches.storage_class(record.storage_class or claim_class(pvc))
    ref = record.secret or secrets.provisioner_secret(pvc, sc, request.name)
    try:
        secret_data = await ctx.secret_data(ref)
    except LookupError as err:
        log.info("Cleanup proceeds without secrets", claim=name(pvc), reason=str(err))
        secret_data = {}
    except SecretError as err:
        # A malformed Secret is not a missing one: wait for it to be fixed, say why.
        ctx.event(pvc, PERSISTENT_VOLUME_CLAIMS, intent.cleanup_secret_failed(request.name, err))
        log.error("Cleanup waits for a usable secret", claim=name(pvc), error=str(err))
        return CleanupAction.RETRY
    full = csi_pb2.CreateVolumeRequest()
    full.CopyFrom(request)
    full.secrets.update(secret_data)
    result = await ctx.create_volume(full)
    volume = None
    if result.ok and result.response is not None and result.response.HasField("volume"):
        volume = result.response.volume
    volume_id = volume.volume_id if volume is not None and volume.volume_id else None
    policy = intent.cleanup_reclaim_policy(record, sc)
    decision = intent.after_cleanup_create(
        pvc_deleting=deleting,
        volume_id=volume_id,
        code=None if result.ok else result.code,
        reclaim_policy=policy,
        volume_name=request.name,
    )
    ctx.event(pvc, PERSISTENT_VOLUME_CLAIMS, decision.event)
    log.info(
        "Cleanup of recorded CreateVolume",
        claim=f"{namespace(pvc)}/{name(pvc)}",
        volume=request.name,
        action=decision.action.value,
        reason=decision.reason,
        error=result.error or None,
    )
    if decision.action == CleanupAction.DELETE_VOLUME:
        deleted = await ctx.delete_volume(decision.volume_id, secret_data)
        decision = intent.after_cleanup_delete(pvc_deleting=deleting, code=deleted.code)
        if decision.action == CleanupAction.RETRY:
            log.error("Cleanup DeleteVolume failed", volume=volume_id, error=deleted.error)
    elif decision.action == CleanupAction.ADOPT:
        assert volume is not None
        adopted = await _adopt(ctx, pvc, sc, request, volume, policy)
        return CleanupAction.RELEASE if adopted else CleanupAction.RETRY
    return decision.action
