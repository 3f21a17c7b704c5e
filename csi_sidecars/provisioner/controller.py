"""The provisioner's controller: informers, work queues and the executors wired together.

Three queues, as in Go: ``claims`` (key ``namespace/name`` of a PVC, :class:`~.provision.
ClaimSync`), ``volumes`` (PV name, :class:`~.delete.VolumeSync`; the two share one back-off, as
sig-storage-lib's share one rate limiter) and ``cloning-protection`` (source PVC key, only when
the driver can clone). Informer handlers only enqueue keys, and only for objects that may need
work: claims that ask for our driver and are not bound yet, or have a journal record; PVs we
own. Workers start once every informer has listed and the
journal (:mod:`.journal`) is loaded; its writer runs beside them, and the claims of every
record it holds are synced first thing (that is how a restart finishes in-flight CreateVolumes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import ApiError, JsonDict, object_key
from csi_sidecars.kube.workqueue import ExponentialBackoff, WorkQueue
from csi_sidecars.provisioner import deletion, keys
from csi_sidecars.provisioner.caches import (
    RESYNC_PERIOD,
    Caches,
    InformerFactory,
    clone_source_key,
    informer_factory,
)
from csi_sidecars.provisioner.claims import storage_provisioner
from csi_sidecars.provisioner.clone_protection import CloneProtection, needs_check
from csi_sidecars.provisioner.context import Context, Emit, Outcome, Settings
from csi_sidecars.provisioner.delete import VolumeSync
from csi_sidecars.provisioner.intent import Intent
from csi_sidecars.provisioner.journal import Journal, journal_name
from csi_sidecars.provisioner.kubeio import KubeIO
from csi_sidecars.provisioner.metrics import ProvisionerMetrics
from csi_sidecars.provisioner.objects import annotations_of, is_deleting, spec, uid
from csi_sidecars.provisioner.provision import ClaimSync
from csi_sidecars.provisioner.request import ProvisionerOptions
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

_Cap = csi_pb2.ControllerServiceCapability.RPC
Sync = Callable[[str], Awaitable[Outcome]]
#: ``make(name, start, maximum)``: a work queue factory (the controller runner's).
QueueFactory = Callable[[str, float, float], WorkQueue]


def _handler(queue: WorkQueue, sync: Sync) -> Callable[[str], Awaitable[bool]]:
    async def handle(key: str) -> bool:
        outcome = await sync(key)
        if outcome.after is not None:
            queue.add_after(key, outcome.after)
            return True
        return not outcome.retry

    return handle


class ProvisionerController:
    """Everything the provisioner runs while it leads.

    Args:
        port: the Kubernetes port.
        csi: the driver's Controller service stub.
        opts: driver facts and request flags.
        settings: executor flags (identity, timeout, topology, ...).
        emit: records an event on an object.
        registry: where the workqueue and ``controller_*`` metrics go.
        worker_threads: ``--worker-threads`` (claim workers and, as many, volume workers).
        cloning_threads: ``--cloning-protection-threads``.
        retry_start: ``--retry-interval-start``.
        retry_max: ``--retry-interval-max``.
        resync_period: PVC/PV informer resync (seconds; 0 disables).
        make_informer: informer factory (default: plain informers on ``port``, run by
            :meth:`run`; the controller runner passes its own and runs them itself).
        make_queue: work queue factory (default: queues with metrics in ``registry``).
        journal_namespace: namespace of the journal Lease (the leader election namespace).
    """

    def __init__(
        self,
        port: KubePort,
        csi: csi_pb2_grpc.ControllerAsyncStub,
        opts: ProvisionerOptions,
        settings: Settings,
        *,
        emit: Emit,
        registry: CollectorRegistry,
        worker_threads: int = 100,
        cloning_threads: int = 1,
        retry_start: float = 1.0,
        retry_max: float = 300.0,
        resync_period: float = RESYNC_PERIOD,
        make_informer: InformerFactory | None = None,
        make_queue: QueueFactory | None = None,
        journal_namespace: str = "default",
    ) -> None:
        if make_queue is None:

            def make_queue(name: str, start: float, maximum: float) -> WorkQueue:
                return WorkQueue(
                    name, backoff=ExponentialBackoff(start, maximum), registry=registry
                )

        self.caches = Caches(
            make_informer or informer_factory(port),
            topology=opts.supports_topology,
            attachments=opts.has(_Cap.PUBLISH_UNPUBLISH_VOLUME),
            resync_period=resync_period,
        )
        self.io = KubeIO(port)
        self.journal = Journal(
            port, journal_namespace, journal_name(opts.driver), on_adopt=self._record_adopted
        )
        self.ctx = Context(
            io=self.io,
            journal=self.journal,
            caches=self.caches,
            csi=csi,
            opts=opts,
            settings=settings,
            emit=emit,
            metrics=ProvisionerMetrics(registry),
        )
        self.claim_sync = ClaimSync(self.ctx)
        self.volume_sync = VolumeSync(
            self.ctx, check_attachments=opts.has(_Cap.PUBLISH_UNPUBLISH_VOLUME)
        )
        self.clone_protection = CloneProtection(self.ctx) if opts.has(_Cap.CLONE_VOLUME) else None
        self.claim_queue = make_queue("claims", retry_start, retry_max)
        self.volume_queue = make_queue("volumes", retry_start, retry_max)
        self.clone_queue = make_queue("cloning-protection", retry_start, retry_max)
        self.worker_threads = worker_threads
        self.cloning_threads = cloning_threads
        self._known = self.ctx.known_names
        self.caches.claims.add_handlers(self._claim_added, self._claim_updated, self._claim_deleted)
        self.caches.volumes.add_handlers(
            self._volume_added, self._volume_updated, self._volume_deleted
        )
        if self.caches.attachments is not None:
            self.caches.attachments.add_handlers(on_delete=self._attachment_deleted)

    # -- handlers ---------------------------------------------------------------------------

    def _record_adopted(self, record: Intent) -> None:
        self.claim_queue.add(record.claim_key)

    def _wants_claim(self, pvc: Mapping[str, Any]) -> bool:
        if self.journal.knows_claim(object_key(dict(pvc))):
            return True
        if spec(pvc).get("volumeName") or is_deleting(pvc):
            return False
        return (
            storage_provisioner(pvc) in self._known
            or annotations_of(pvc).get(keys.ANN_MIGRATED_TO) in self._known
        )

    def _claim_added(self, pvc: JsonDict) -> None:
        key = object_key(pvc)
        self.io.stale(key, pvc)  # drops the read-your-writes entry once the cache caught up
        if self._wants_claim(pvc):
            self.claim_queue.add(key)
        if self.clone_protection is not None:
            if needs_check(pvc):
                self.clone_queue.add(key)
            source = clone_source_key(pvc)
            if source is not None:
                self.clone_queue.add(source)

    def _claim_updated(self, old: JsonDict, new: JsonDict) -> None:
        self._claim_added(new)

    def _claim_deleted(self, pvc: JsonDict) -> None:
        self.claim_sync.forget(uid(pvc))
        self.io.forget(object_key(pvc))
        if self.journal.knows_claim(object_key(pvc)):
            self.claim_queue.add(object_key(pvc))
        if self.clone_protection is not None:
            source = clone_source_key(pvc)
            if source is not None:
                self.clone_queue.add(source)

    def _volume_added(self, pv: JsonDict) -> None:
        name = object_key(pv)
        self.io.saved_volumes.pop(name, None)
        if deletion.owns_volume(pv, self._known):
            self.volume_queue.add(name)
        ref = spec(pv).get("claimRef")
        if isinstance(ref, dict) and ref.get("namespace") and ref.get("name"):
            record = self.journal.get(str(ref.get("uid") or ""))
            if record is not None and record.volume_name == object_key(pv):
                self.journal.drop(record.pvc_uid)  # the PV exists: nothing is in flight

    def _volume_updated(self, old: JsonDict, new: JsonDict) -> None:
        self._volume_added(new)

    def _volume_deleted(self, pv: JsonDict) -> None:
        self.io.saved_volumes.pop(object_key(pv), None)
        self.volume_sync.forget(object_key(pv))
        self.io.forget(object_key(pv))

    def _attachment_deleted(self, va: JsonDict) -> None:
        pv_name = ((spec(va).get("source") or {}) or {}).get("persistentVolumeName")
        if pv_name:
            self.volume_queue.add(str(pv_name))

    # -- running ----------------------------------------------------------------------------

    async def _load_journal(self) -> None:
        failures = 0
        while True:
            try:
                records = await self.journal.load()
                break
            except ApiError as exc:
                failures += 1
                log.error(
                    "Cannot read the journal; provisioning waits",
                    journal=f"{self.journal.namespace}/{self.journal.name}",
                    error=exc.message or str(exc),
                )
                await asyncio.sleep(min(0.5 * 2**failures, 30.0))
        for record in records:
            self.claim_queue.add(record.claim_key)

    async def lead(self) -> None:
        """Run the workers until the queues shut down (informers must be running and synced)."""
        await self._load_journal()
        writer = asyncio.create_task(self.journal.run(), name="provisioner journal")
        try:
            await self._work()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _work(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self.claim_queue.run(
                    _handler(self.claim_queue, self.claim_sync.sync), self.worker_threads
                )
            )
            tg.create_task(
                self.volume_queue.run(
                    _handler(self.volume_queue, self.volume_sync.sync), self.worker_threads
                )
            )
            if self.clone_protection is not None:
                tg.create_task(
                    self.clone_queue.run(
                        _handler(self.clone_queue, self.clone_protection.sync),
                        self.cloning_threads,
                    )
                )

    async def run(self) -> None:
        """Run informers and workers until cancelled (without the controller runner)."""
        try:
            async with asyncio.TaskGroup() as tg:
                for informer in self.caches.informers:
                    tg.create_task(informer.run(), name=f"informer {informer.resource.plural}")
                for informer in self.caches.informers:
                    await informer.wait_for_sync()
                log.info("Caches synced, starting workers", workers=self.worker_threads)
                tg.create_task(self.lead())
        finally:
            for queue in (self.claim_queue, self.volume_queue, self.clone_queue):
                with contextlib.suppress(Exception):
                    await queue.close()

    def idle(self) -> bool:
        """Whether no key is queued or being processed (for tests and benchmarks)."""
        return self.journal.idle() and all(
            len(q) == 0 and not q.processing
            for q in (self.claim_queue, self.volume_queue, self.clone_queue)
        )
