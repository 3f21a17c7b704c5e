"""Cloning protection: release a deleted clone-source PVC once no clone still needs it.

:meth:`CloneProtection.sync` performs :func:`~..decide.sources.release_clone_source` for
one source PVC: while a PVC of its namespace with ``dataSource{kind: PersistentVolumeClaim,
name: <source>}`` is still ``Pending`` it retries with back-off; then the PVC Update removes
``provisioner.storage.kubernetes.io/cloning-protection`` (Go's ``CloningProtectionController``).
"""

from __future__ import annotations

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import to_result
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner.decide.sources import CloneInUse, release_clone_source
from csi_sidecars.provisioner.execute.context import Context
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")


class CloneProtection:
    """Removes the cloning-protection finalizer when it is safe."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def sync(self, key: str) -> Result:
        """Process the source PVC ``namespace/name`` once."""
        ctx = self.ctx
        pvc = ctx.written(PERSISTENT_VOLUME_CLAIMS).newest(key, ctx.caches.claim(key))
        outcome = await ctx.perform(release_clone_source(pvc, ctx.caches.clones_of(key)), key)
        if isinstance(outcome, CloneInUse):
            if rlog.v(4):
                log.info("Clone source still in use", claim=key, reason=outcome.reason)
        elif isinstance(outcome, a.Retry | a.Redecide):
            log.error(
                "Failed to remove the cloning protection finalizer", claim=key, error=outcome.reason
            )
        elif isinstance(outcome, a.Done) and outcome.reason:
            log.info("Clone source released", claim=key, reason=outcome.reason)
        return to_result(outcome)
