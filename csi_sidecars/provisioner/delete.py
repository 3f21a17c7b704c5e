"""The volume executor: the protection finalizer of our PVs, and deleting Released volumes.

:meth:`VolumeSync.sync` handles one PV (sig-storage-lib ``syncVolume`` + the CSI ``Delete``):

* PVs of other provisioners are ignored (:func:`~.deletion.owns_volume`);
* the ``external-provisioner.volume.kubernetes.io/finalizer`` is added to Bound PVs with reclaim
  ``Delete`` and removed for ``Retain``/``Recycle``, with conflict-safe JSON patches;
* a Released PV with reclaim ``Delete`` is refused while a VolumeAttachment references it (when
  the driver has PUBLISH_UNPUBLISH_VOLUME), then DeleteVolume runs with the secret named in the
  PV annotations (StorageClass fallback; a failed Secret GET does not stop the deletion);
  ``NotFound`` counts as deleted; then the PV object is deleted and our finalizer removed.
  Failures emit ``VolumeFailedDelete`` and retry with back-off.
"""

from __future__ import annotations

from csi_sidecars.kube.objects import JsonDict, SecretError, is_deleting, name
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, ApiError
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner import deletion, events, keys
from csi_sidecars.provisioner.context import DONE, RETRY, Context
from csi_sidecars.provisioner.deletion import DeleteError
from csi_sidecars.provisioner.kubeio import api_message
from csi_sidecars.provisioner.states import delete_volume_succeeded
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

PV = PERSISTENT_VOLUMES


class VolumeSync:
    """Deletion and finalizer upkeep of PVs; one instance per provisioner.

    Args:
        ctx: the shared context.
        check_attachments: refuse deletion while a VolumeAttachment references the PV.
    """

    def __init__(self, ctx: Context, *, check_attachments: bool) -> None:
        self.ctx = ctx
        self.check_attachments = check_attachments
        #: PVs whose volume we deleted and whose object is being deleted: a watch event that
        #: still shows our finalizer must not send DeleteVolume again.
        self._deleted: set[str] = set()

    async def sync(self, pv_name: str) -> Result:
        """Process the PV ``pv_name`` once."""
        ctx = self.ctx
        pv = ctx.caches.volume(pv_name)
        if ctx.io.volumes.stale(pv_name, pv):
            return DONE  # the watch event of our own write brings the PV back
        if pv is None:
            ctx.io.volumes.forget(pv_name)
            return DONE
        if not deletion.owns_volume(pv, ctx.known_names):
            return DONE
        wanted = deletion.protection_finalizers(pv)
        if wanted is not None:
            present = keys.PV_FINALIZER in wanted
            try:
                await ctx.io.set_volume_finalizer(pv, keys.PV_FINALIZER, present)
            except ApiError as exc:
                log.error("Failed to update the PV finalizer", pv=pv_name, error=api_message(exc))
                return RETRY
            return DONE  # the watch event brings the updated PV back
        if not deletion.should_delete(pv):
            return DONE
        if pv_name in self._deleted and is_deleting(pv):
            return await self._finish(pv, pv, deletion.pv_class(pv), None)
        return await self._delete(pv)

    def forget(self, pv_name: str) -> None:
        """Drop the bookkeeping of a PV that is gone."""
        self._deleted.discard(pv_name)

    async def _delete(self, pv: JsonDict) -> Result:
        ctx = self.ctx
        started = ctx.monotonic()
        pv_name = name(pv)
        klass = deletion.pv_class(pv)
        try:
            secret_data = await self._secrets(pv)
            if self.check_attachments:
                blocker = deletion.attachment_blocker(pv_name, ctx.caches.attachments_of(pv_name))
                if blocker:
                    raise DeleteError(blocker)
            handle = deletion.volume_handle(pv)
        except DeleteError as err:
            return self._failed(pv, klass, str(err))
        result = await ctx.delete_volume(handle, secret_data)
        if not delete_volume_succeeded(result.code):
            return self._failed(pv, klass, result.error)
        log.info("Deleted volume", pv=pv_name, volume=handle)
        try:
            answer = await ctx.io.delete_volume_object(pv)
        except ApiError as exc:
            log.error("Failed to delete the PersistentVolume", pv=pv_name, error=api_message(exc))
            return RETRY
        self._deleted.add(pv_name)
        target = answer if answer is not None and answer.get("metadata") else pv
        return await self._finish(pv, target, klass, started)

    async def _finish(
        self, pv: JsonDict, target: JsonDict, klass: str, started: float | None
    ) -> Result:
        ctx = self.ctx
        pv_name = name(pv)
        try:
            await ctx.io.set_volume_finalizer(target, keys.PV_FINALIZER, False)
        except ApiError as exc:
            log.error("Failed to remove the PV finalizer", pv=pv_name, error=api_message(exc))
            return RETRY
        if started is not None:
            ctx.metrics.deleted(klass, ctx.monotonic() - started)
        return DONE

    async def _secrets(self, pv: JsonDict) -> dict[str, str]:
        ctx = self.ctx
        found = deletion.deletion_secret(pv, ctx.caches.storage_class(deletion.pv_class(pv)))
        try:
            return await ctx.io.secret_data(found.ref)
        except LookupError as err:
            log.info("Deleting without secrets", pv=name(pv), reason=str(err))
            return {}
        except SecretError as err:
            raise DeleteError(str(err)) from None

    def _failed(self, pv: JsonDict, klass: str, message: str) -> Result:
        ctx = self.ctx
        log.error("Failed to delete volume", pv=name(pv), error=message)
        ctx.event(pv, PV, events.volume_failed_delete(message))
        ctx.metrics.delete_failed(klass)
        return RETRY
