"""The claim executor: one sync of one PVC, from "should we?" to a saved PV.

:meth:`ClaimSync.sync` reads the newest copy of the claim and follows the pure side:

1. :func:`~..decide.claims.should_provision` (skip, wait, fail or provision);
2. :meth:`~.context.Context.build_request` (plan + lookups);
3. :func:`~..journal.intent.decide`: record the intent in the journal (a batched write) before
   CreateVolume, or clean up a recorded volume of a claim that is gone (:mod:`.cleanup`);
4. the source's protection finalizer (a PVC Update for a clone, a VolumeSnapshot Update for a
   restore), CreateVolume,
   :func:`~..decide.pv.check_create_response` (guarded replies, cleanup of unusable volumes),
   :func:`~..decide.pv.build_pv` and the plan that saves it with ``ProvisioningSucceeded``; the
   record is then dropped (the drop rides along with a later journal write);
5. on failure :func:`~..decide.states.handle_failure`: its actions (event, the PVC Update that
   gives the selected node back), slow retry for InvalidArgument, back-off otherwise.

Writes and events are complete actions performed by the one performer; what stays here is the
order, the awaits (journal, driver) and the in-memory state (topology pins, slow retries).

Records are keyed by claim UID and found by claim name, so a sync of ``namespace/name`` also
finishes the records of earlier claims of that name that are gone (:meth:`ClaimSync._orphans`).
Go's in-memory ``claimsInProgress`` is not needed: the journal keeps a deleted claim's record
until its CreateVolume has a final answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import is_deleting, name, namespace, uid
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, JsonDict
from csi_sidecars.kube.workqueue import After, Result
from csi_sidecars.provisioner.decide.claims import (
    ClaimAction,
    claim_class,
    should_provision,
    update_claim,
)
from csi_sidecars.provisioner.decide.claims import selected_node as claim_selected_node
from csi_sidecars.provisioner.decide.pv import (
    CleanupRequired,
    check_create_response,
    cleanup_outcome,
    save_pv,
)
from csi_sidecars.provisioner.decide.request import ProvisionPlan
from csi_sidecars.provisioner.decide.snapshots import ProtectionForbidden, protect_snapshot_source
from csi_sidecars.provisioner.decide.sources import with_clone_protection
from csi_sidecars.provisioner.decide.states import (
    IgnoredError,
    ProvisionError,
    ProvisioningState,
    classify_create_error,
    handle_failure,
)
from csi_sidecars.provisioner.execute.cleanup import run_cleanup
from csi_sidecars.provisioner.execute.context import DONE, RETRY, Context
from csi_sidecars.provisioner.execute.nodes import NodeOwnership
from csi_sidecars.provisioner.journal import intent
from csi_sidecars.provisioner.journal.intent import CleanupAction, IntentAction
from csi_sidecars.provisioner.journal.lease import JournalError
from csi_sidecars.provisioner.metrics import claim_source
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

PVC = PERSISTENT_VOLUME_CLAIMS


def _ref(pvc: Mapping[str, Any]) -> str:
    return f"{namespace(pvc)}/{name(pvc)}"


class ClaimSync:
    """Provisioning of claims; one instance per provisioner."""

    def __init__(
        self,
        ctx: Context,
        on_restored: Callable[[str], None] | None = None,
        node: NodeOwnership | None = None,
    ) -> None:
        self.ctx = ctx
        #: node deployment: which claims are this node's
        self.node = node
        #: told the ``namespace/name`` of a VolumeSnapshot once a claim restored from it
        self.on_restored = on_restored
        #: infeasible claims: uid -> (retry not before, StorageClass uid)
        self._slow: dict[str, tuple[float, str]] = {}

    # -- entry ------------------------------------------------------------------------------

    async def sync(self, key: str) -> Result:
        """Process the claim ``namespace/name`` once (and the records of gone claims of it)."""
        ctx = self.ctx
        pvc = ctx.caches.claim(key)
        if ctx.written(PVC).stale(key, pvc):
            return After(1.0)  # the watch event of our own write re-queues it sooner
        orphans = await self._orphans(key, pvc)
        if orphans is not None:
            return orphans
        if pvc is None or is_deleting(pvc):
            return DONE
        sc = ctx.caches.storage_class(claim_class(pvc))
        pv_exists = ctx.claim_provisioned(pvc)
        decision = should_provision(
            pvc,
            sc,
            driver=ctx.opts.driver_name,
            additional_names=ctx.settings.additional_names,
            pv_exists=pv_exists,
        )
        if decision.action == ClaimAction.SKIP:
            if pv_exists:
                ctx.journal.drop(uid(pvc))
            if rlog.v(5):
                log.info("Skipping claim", claim=key, reason=decision.reason)
            return DONE
        if decision.action == ClaimAction.WAIT:
            if rlog.v(4):
                log.info("Claim waits", claim=key, reason=decision.reason)
            return RETRY
        if self.node is not None:
            handled = await self.node.claim(pvc, sc)
            if handled is not None:
                return handled
        wait = self._slow_wait(pvc, sc)
        if wait > 0:
            return After(wait)
        ctx.event(pvc, PVC, decision.event)
        return await self._provision(pvc, sc)

    # -- provisioning -----------------------------------------------------------------------

    def _slow_wait(self, pvc: Mapping[str, Any], sc: Mapping[str, Any] | None) -> float:
        entry = self._slow.get(uid(pvc))
        if entry is None:
            return 0.0
        until, sc_uid = entry
        remaining = until - self.ctx.monotonic()
        if remaining > 0 and sc_uid == uid(sc):
            return remaining
        del self._slow[uid(pvc)]
        return 0.0

    async def _provision(self, pvc: JsonDict, sc: Mapping[str, Any] | None) -> Result:
        ctx = self.ctx
        started = ctx.monotonic()
        try:
            plan, request = await ctx.build_request(pvc, sc)
        except ProvisionError as err:  # IgnoredError too: its handling says what to emit
            return await self._failed(pvc, err)
        assert sc is not None
        record = ctx.journal.get(uid(pvc))
        decision = intent.decide(pvc, record=record, rebuilt=request, pv_exists=False)
        if decision.action == IntentAction.CLEANUP_CREATE and record is not None:
            action = await run_cleanup(ctx, record, pvc)
            if action != CleanupAction.RECORD:
                return RETRY
            decision = intent.IntentDecision(IntentAction.RECORD, "after cleanup", request)
        if decision.action == IntentAction.RECORD:
            entry = intent.make_intent(pvc, request, sc, plan.provisioner_secret)
            try:
                await ctx.journal.record(entry)
            except JournalError as exc:
                log.error(
                    "Failed to record the CreateVolume intent of claim",
                    claim=_ref(pvc),
                    error=str(exc),
                )
                return RETRY
        return await self._create(pvc, sc, plan, request, started)

    async def _create(
        self,
        pvc: JsonDict,
        sc: Mapping[str, Any],
        plan: ProvisionPlan,
        request: csi_pb2.CreateVolumeRequest,
        started: float,
    ) -> Result:
        ctx = self.ctx
        source_key = ""
        if plan.data_source is not None:
            source_key = f"{plan.data_source.namespace}/{plan.data_source.name}"
            if plan.clones:
                protected = await self._protect_clone_source(pvc, source_key)
            else:
                protected = await self._protect_snapshot(pvc, plan, source_key)
            if protected is not None:
                return protected
        result = await ctx.create_volume(request)
        if not result.ok or result.response is None:
            state = classify_create_error(
                result.code,
                supports_topology=ctx.opts.supports_topology,
                selected_node=claim_selected_node(pvc),
            )
            return await self._failed(pvc, ProvisionError(result.error, state, result.code))
        try:
            capacity = check_create_response(plan, pvc, result.response)
        except CleanupRequired as err:
            failure = await ctx.delete_created_volume(err.volume_id, request.secrets)
            return await self._failed(pvc, cleanup_outcome(err, failure))
        except ProvisionError as err:
            return await self._failed(pvc, err)
        pv = ctx.build_pv(plan, pvc, sc, result.response.volume, capacity)
        outcome = await ctx.perform(save_pv(pv, pvc, announce=True), _ref(pvc))
        if not isinstance(outcome, a.Done):
            # The intent stays recorded: the next attempt gets the same volume from the
            # idempotent CreateVolume and saves the PV again.
            log.error(
                f"Failed to save PersistentVolume {plan.name} for claim",
                claim=_ref(pvc),
                error=outcome.reason,
            )
            return RETRY
        log.info("Provisioned volume", claim=_ref(pvc), pv=plan.name)
        ctx.changed(pv, claim_class(pvc))
        ctx.metrics.provisioned(claim_class(pvc), claim_source(pvc), ctx.monotonic() - started)
        ctx.pins.drop(uid(pvc))
        self._slow.pop(uid(pvc), None)
        ctx.journal.drop(uid(pvc))
        if plan.restores and self.on_restored is not None:
            self.on_restored(source_key)  # its protection may go now
        return DONE

    async def _protect_snapshot(
        self, pvc: JsonDict, plan: ProvisionPlan, source_key: str
    ) -> Result | None:
        assert plan.data_source is not None
        outcome = await self.ctx.perform(protect_snapshot_source(plan.data_source), source_key)
        if isinstance(outcome, ProtectionForbidden):
            log.info(
                "Cannot protect the source snapshot (needs update on volumesnapshots); "
                "provisioning goes on without it",
                claim=_ref(pvc),
                snapshot=source_key,
            )
        if isinstance(outcome, a.Done):
            return None
        err = ProvisionError(
            f"failed to add the snapshot source protection finalizer to {source_key}: "
            f"{outcome.reason}",
            ProvisioningState.NO_CHANGE,
        )
        return await self._failed(pvc, err)

    async def _protect_clone_source(self, pvc: JsonDict, source_key: str) -> Result | None:
        ctx = self.ctx
        source = ctx.written(PVC).newest(source_key, ctx.caches.claim(source_key))
        if source is None:
            return None
        outcome = await ctx.perform(update_claim(source, with_clone_protection), source_key)
        if isinstance(outcome, a.Done):
            return None
        err = ProvisionError(
            f"failed to add the cloning protection finalizer to {source_key}: {outcome.reason}",
            ProvisioningState.NO_CHANGE,
        )
        return await self._failed(pvc, err)

    # -- records of gone claims ------------------------------------------------------------

    async def _orphans(self, key: str, pvc: JsonDict | None) -> Result | None:
        """Finish the records of claims named ``key`` that are gone or being deleted.

        Returns:
            None when the live claim (if any) may be synced now, else the outcome.
        """
        ctx = self.ctx
        live_uid = uid(pvc) if pvc is not None and not is_deleting(pvc) else ""
        ctx.journal.withdraw_pending(key, keep=live_uid)
        retry = False
        for record in ctx.journal.for_claim(key):
            if record.pvc_uid == live_uid:
                continue
            own = pvc if pvc is not None and uid(pvc) == record.pvc_uid else None
            saved = ctx.pv_saved(record.volume_name, own or record.claim())
            decision = intent.decide(pvc, record=record, rebuilt=None, pv_exists=saved)
            if decision.action == IntentAction.CLEANUP_CREATE:
                action = await run_cleanup(ctx, record, pvc)
                if action != CleanupAction.RELEASE:
                    retry = True
                    continue
            ctx.pins.drop(record.pvc_uid)
            ctx.journal.drop(record.pvc_uid)
        return RETRY if retry else None

    # -- failures ---------------------------------------------------------------------------

    async def _failed(self, pvc: JsonDict, err: ProvisionError) -> Result:
        ctx = self.ctx
        handling = handle_failure(err, pvc)
        outcome = await ctx.perform(handling.actions, _ref(pvc))
        if not isinstance(err, IgnoredError):
            ctx.metrics.provision_failed(claim_class(pvc), claim_source(pvc))
            if err.state != ProvisioningState.NO_CHANGE:
                ctx.changed(None, claim_class(pvc))  # the driver may have used some space
            log.info("Provisioning failed", claim=_ref(pvc), state=err.state.value, error=str(err))
        if handling.state == ProvisioningState.FINISHED:
            ctx.pins.drop(uid(pvc))
        if handling.remove_selected_node:
            if not isinstance(outcome, a.Done):
                log.error(
                    "Failed to remove the selected node of claim",
                    claim=_ref(pvc),
                    error=outcome.reason,
                )
                return RETRY
            return DONE
        if handling.stop:
            return DONE
        if handling.slow_retry:
            sc = ctx.caches.storage_class(claim_class(pvc))
            wait = ctx.settings.retry_interval_max
            self._slow[uid(pvc)] = (ctx.monotonic() + wait, uid(sc))
            return After(wait)
        return RETRY

    def forget(self, pvc_uid: str) -> None:
        """Drop in-memory state of a claim that is gone."""
        self.ctx.pins.drop(pvc_uid)
        self._slow.pop(pvc_uid, None)
        if self.node is not None:
            self.node.forget(pvc_uid)
