"""Cloning protection: release a deleted clone-source PVC once no clone still needs it.

Before CreateVolume of a clone, the provisioner adds
``provisioner.storage.kubernetes.io/cloning-protection`` to the source PVC, so the source cannot
disappear while the driver copies it. :meth:`CloneProtection.sync` removes that finalizer from
a source PVC that is being deleted once no PVC of its namespace with
``dataSource{kind: PersistentVolumeClaim, name: <source>}`` is still ``Pending``; otherwise it
retries with back-off (Go's ``CloningProtectionController``).
"""

from __future__ import annotations

from csi_sidecars.kube.objects import finalizers, is_deleting, status
from csi_sidecars.kube.resources import ApiError, JsonDict
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner import keys
from csi_sidecars.provisioner.context import DONE, RETRY, Context
from csi_sidecars.provisioner.kubeio import api_message
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")


def needs_check(pvc: JsonDict) -> bool:
    """Whether a PVC is a deleted clone source still carrying the protection finalizer."""
    return is_deleting(pvc) and keys.CLONE_SOURCE_FINALIZER in finalizers(pvc)


def _without_finalizer(pvc: JsonDict) -> JsonDict | None:
    current = finalizers(pvc)
    if keys.CLONE_SOURCE_FINALIZER not in current:
        return None
    kept = [f for f in current if f != keys.CLONE_SOURCE_FINALIZER]
    return {**pvc, "metadata": {**pvc["metadata"], "finalizers": kept}}


class CloneProtection:
    """Removes the cloning-protection finalizer when it is safe."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def sync(self, key: str) -> Result:
        """Process the source PVC ``namespace/name`` once."""
        ctx = self.ctx
        pvc = ctx.caches.claim(key)
        if pvc is None or not needs_check(pvc):
            return DONE
        pending = [
            c for c in ctx.caches.clones_of(key) if status(c).get("phase") in (None, "", "Pending")
        ]
        if pending:
            if rlog.v(4):
                log.info("Clone source still in use", claim=key, clones=len(pending))
            return RETRY
        try:
            await ctx.io.update_claim(pvc, _without_finalizer)
        except ApiError as exc:
            if exc.not_found:
                return DONE
            log.error(
                "Failed to remove the cloning protection finalizer",
                claim=key,
                error=api_message(exc),
            )
            return RETRY
        log.info("Removed the cloning protection finalizer", claim=key)
        return DONE
