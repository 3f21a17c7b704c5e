"""Snapshot source protection: release a VolumeSnapshot once no claim restores from it.

The claim executor adds ``provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection``
to a VolumeSnapshot before CreateVolume of a restore. :meth:`SnapshotProtection.sync` removes
it (:func:`~..decide.snapshots.release_snapshot`) once no claim restoring from that snapshot is
still ``Pending`` without its PV. It is queued (queue ``snapshot-protection``, key
``namespace/name`` of the snapshot) whenever that may have become true: a restore saved its PV,
a restoring claim was bound or deleted; and every ``--snapshot-orphan-sweep-interval``
:meth:`SnapshotProtection.sweep` queues every snapshot carrying the finalizer, as Go's
``SnapshotFinalizerController`` sweeps (``0`` disables the sweep; a missing ``list`` permission
on volumesnapshots disables it with one log line, as in Go).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import to_result
from csi_sidecars.kube.objects import JsonDict, finalizers
from csi_sidecars.kube.resources import ApiError, object_key, split_key
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOTS
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner.decide.snapshots import FINALIZER, SnapshotInUse, release_snapshot
from csi_sidecars.provisioner.execute.context import Context
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")


class SnapshotProtection:
    """Removes the snapshot source protection finalizer when it is safe."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _plan(self, key: str) -> a.Plan:
        ns, snapshot_name = split_key(key)
        restoring = self.ctx.caches.restoring_from(key)

        def then(snapshot: JsonDict | None) -> a.Plan:
            return release_snapshot(snapshot, restoring, self.ctx.claim_provisioned)

        return (a.Read(VOLUME_SNAPSHOTS, snapshot_name, ns, then=then),)

    async def sync(self, key: str) -> Result:
        """Process the VolumeSnapshot ``namespace/name`` once."""
        outcome = await self.ctx.perform(self._plan(key), key)
        if isinstance(outcome, SnapshotInUse):
            if rlog.v(4):
                log.info("Snapshot still restored from", snapshot=key, reason=outcome.reason)
        elif isinstance(outcome, a.Retry | a.Redecide):
            log.error(
                "Failed to remove the snapshot source protection finalizer",
                snapshot=key,
                error=outcome.reason,
            )
        elif isinstance(outcome, a.Done) and outcome.reason:
            log.info("Snapshot source released", snapshot=key, reason=outcome.reason)
        return to_result(outcome)

    async def sweep_once(self, enqueue: Callable[[str], None]) -> bool:
        """Queue every VolumeSnapshot carrying the finalizer; False when not permitted."""
        port = self.ctx.port
        token: str | None = None
        while True:
            page = await port.list(VOLUME_SNAPSHOTS, limit=500, continue_token=token)
            for item in page.get("items") or []:
                if FINALIZER in finalizers(item):
                    enqueue(object_key(item))
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return True

    async def sweep(
        self, interval: float, enqueue: Callable[[str], None], stopping: asyncio.Event
    ) -> None:
        """Every ``interval`` seconds, :meth:`sweep_once`, until ``stopping``."""
        while not stopping.is_set():
            try:
                await self.sweep_once(enqueue)
            except ApiError as exc:
                if exc.status in (403, 404):
                    log.info(
                        "Snapshot orphan sweep disabled: cannot list volumesnapshots",
                        error=exc.message or str(exc),
                    )
                    return
                log.error("Snapshot orphan sweep failed", error=exc.message or str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
