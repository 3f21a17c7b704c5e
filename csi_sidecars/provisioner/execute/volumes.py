"""The volume executor: the protection finalizer of our PVs, and deleting Released volumes.

:meth:`VolumeSync.sync` handles one PV (sig-storage-lib ``syncVolume`` + the CSI ``Delete``): it
reads the newest copy (the cache, or what our last write returned), asks
:func:`~csi_sidecars.provisioner.decide.deletion.volume_plan` for the complete actions and has
the performer do them:

* PVs of other provisioners are ignored;
* the ``external-provisioner.volume.kubernetes.io/finalizer`` is added to Bound PVs with reclaim
  ``Delete`` and removed for ``Retain``/``Recycle``, with conflict-safe JSON patches;
* a Released PV with reclaim ``Delete`` is refused while a VolumeAttachment references it (when
  the driver has PUBLISH_UNPUBLISH_VOLUME), then DeleteVolume runs with the secret named in the
  PV annotations (StorageClass fallback; a Secret that cannot be read does not stop the
  deletion, a malformed one does); ``NotFound`` counts as deleted; then the PV object is
  deleted and our finalizer removed. Failures emit ``VolumeFailedDelete`` and retry with
  back-off.

In node deployment only the PVs whose node affinity admits this node's topology are handled.

The typed outcome feeds the ``controller_persistentvolume_delete_*`` metrics and the logs.
"""

from __future__ import annotations

from collections.abc import Mapping

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import to_result
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner.decide import deletion
from csi_sidecars.provisioner.decide.nodes import volume_accessible
from csi_sidecars.provisioner.execute.context import DONE, Context
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

PV = PERSISTENT_VOLUMES


class VolumeSync:
    """Deletion and finalizer upkeep of PVs; one instance per provisioner.

    Args:
        ctx: the shared context.
        check_attachments: refuse deletion while a VolumeAttachment references the PV.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        check_attachments: bool,
        node_topology: Mapping[str, str] | None = None,
        node_deployment: bool = False,
    ) -> None:
        self.ctx = ctx
        self.check_attachments = check_attachments
        #: node deployment: only PVs whose node affinity admits this node's topology are ours
        self.node_deployment = node_deployment
        self.node_topology = node_topology
        #: PVs whose volume and object we deleted but whose finalizer removal failed: a watch
        #: event that still shows our finalizer must not send DeleteVolume again.
        self._deleted: set[str] = set()

    async def sync(self, pv_name: str) -> Result:
        """Process the PV ``pv_name`` once."""
        ctx = self.ctx
        written = ctx.written(PV)
        cached = ctx.caches.volume(pv_name)
        if written.stale(pv_name, cached):
            return DONE  # the watch event of our own write brings the PV back
        if cached is None:
            written.forget(pv_name)
            return DONE
        if self.node_deployment and not volume_accessible(cached, self.node_topology):
            return DONE  # another node's volume
        started = ctx.monotonic()
        plan = deletion.volume_plan(
            cached,
            known_names=ctx.known_names,
            storage_class=ctx.caches.storage_class(deletion.pv_class(cached)),
            attachments=ctx.caches.attachments_of(pv_name) if self.check_attachments else None,
            volume_deleted=pv_name in self._deleted,
        )
        outcome = await ctx.perform(plan, pv_name)
        self._account(pv_name, outcome, started)
        if isinstance(outcome, deletion.VolumeDeleted):
            ctx.changed(cached, deletion.pv_class(cached))
        return to_result(outcome)

    def _account(self, pv_name: str, outcome: a.Outcome, started: float) -> None:
        ctx = self.ctx
        if isinstance(outcome, deletion.VolumeDeleted):
            log.info("Deleted volume", pv=pv_name, volume=outcome.volume_id)
            ctx.metrics.deleted(outcome.storage_class, ctx.monotonic() - started)
            self._deleted.add(pv_name)
        elif isinstance(outcome, deletion.FinalizerPending):
            log.error("Volume deleted, PV finalizer not removed", pv=pv_name, error=outcome.reason)
            self._deleted.add(pv_name)
        elif isinstance(outcome, deletion.DeleteFailed):
            log.error("Failed to delete volume", pv=pv_name, error=outcome.reason)
            ctx.metrics.delete_failed(outcome.storage_class)
        elif isinstance(outcome, a.Retry | a.Redecide):
            log.error("PersistentVolume sync failed", pv=pv_name, error=outcome.reason)

    def forget(self, pv_name: str) -> None:
        """Drop the bookkeeping of a PV that is gone."""
        self._deleted.discard(pv_name)
