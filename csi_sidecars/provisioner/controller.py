"""The provisioner's controller: informers, work queues and the executors wired together.

The queues: ``claims`` (key ``namespace/name`` of a PVC, :class:`~.execute.provision.ClaimSync`),
``volumes`` (PV name, :class:`~.execute.volumes.VolumeSync`; the two share one back-off, as
sig-storage-lib's share one rate limiter), ``cloning-protection`` (source PVC key, only when
the driver can clone) and ``snapshot-protection`` (VolumeSnapshot key, only when the driver
has snapshots; :class:`~.execute.snapshot_protection.SnapshotProtection` and its sweep).
Informer handlers only enqueue keys, and only for objects that may need work: claims that ask
for our driver and are not bound yet, or have a journal record; PVs we own. They also tell the
read-your-writes caches what the informers have caught up with.

Informers and queues are declared on the controller runner's context
(:class:`csi_sidecars.controller.ControllerContext`), which starts them and waits for the sync.
:meth:`ProvisionerController.lead` then loads the journal (:mod:`.journal`), runs its writer
beside the workers, and syncs the claims of every record it holds first thing (that is how a
restart finishes in-flight CreateVolumes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import ControllerContext
from csi_sidecars.controller.perform import Performer
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.leaderelection import lease_namespace
from csi_sidecars.kube.objects import annotations_of, dig, is_deleting, spec, uid
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    ApiError,
    JsonDict,
    object_key,
)
from csi_sidecars.provisioner.decide import deletion, strings
from csi_sidecars.provisioner.decide.claims import storage_provisioner
from csi_sidecars.provisioner.decide.nodes import static_topology
from csi_sidecars.provisioner.decide.request import ProvisionerOptions
from csi_sidecars.provisioner.decide.snapshots import needs_snapshot, snapshot_source_key
from csi_sidecars.provisioner.decide.sources import needs_release_check
from csi_sidecars.provisioner.execute import capacity as capacity_tracking
from csi_sidecars.provisioner.execute.caches import RESYNC_PERIOD, Caches, clone_source_key
from csi_sidecars.provisioner.execute.capacity import CapacitySettings
from csi_sidecars.provisioner.execute.clone_protection import CloneProtection
from csi_sidecars.provisioner.execute.context import Context, Settings
from csi_sidecars.provisioner.execute.nodes import NodeOwnership, NodeSettings
from csi_sidecars.provisioner.execute.provision import ClaimSync
from csi_sidecars.provisioner.execute.snapshot_protection import SnapshotProtection
from csi_sidecars.provisioner.execute.volumes import VolumeSync
from csi_sidecars.provisioner.flags import GATE_TOPOLOGY, GATE_VAC, ProvisionerConfig
from csi_sidecars.provisioner.journal import Intent, Journal, journal_name
from csi_sidecars.provisioner.metrics import ProvisionerMetrics
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

_Cap = csi_pb2.ControllerServiceCapability.RPC


class ProvisionerController:
    """Everything the provisioner runs while it leads, declared on the runner's context.

    Informers and queues are the runner's (:meth:`ControllerContext.informer` /
    :meth:`ControllerContext.queue`): it starts the informers, waits for their sync, runs
    :meth:`lead` and drains the queues on SIGTERM. Capabilities are read from ``ctx.driver``.

    Args:
        ctx: the controller runner's context (driver, port, connection, recorder, registry).
        config: the provisioner's flags.
        identity: the provisioner identity written into every PV.
        resync_period: PVC/PV informer resync (seconds; 0 disables).
        capacity: capacity tracking's settings (None: ``--enable-capacity`` is off).
        capacity_port: the client capacity tracking writes with.
        node: node deployment: this node (None: ``--node-deployment`` is off).
    """

    def __init__(
        self,
        ctx: ControllerContext,
        config: ProvisionerConfig,
        *,
        identity: str,
        resync_period: float = RESYNC_PERIOD,
        capacity: CapacitySettings | None = None,
        capacity_port: KubePort | None = None,
        node: NodeSettings | None = None,
    ) -> None:
        self.ctx = ctx
        self.identity = identity
        opts = ProvisionerOptions(
            driver=ctx.driver,
            volume_name_prefix=config.volume_name_prefix,
            volume_name_uuid_length=config.volume_name_uuid_length,
            default_fstype=config.default_fstype,
            extra_create_metadata=config.extra_create_metadata,
            topology_gate=config.gates[GATE_TOPOLOGY],
            vac_gate=config.gates[GATE_VAC],
        )
        settings = Settings(
            identity=identity,
            timeout=config.csi.timeout,
            strict_topology=config.strict_topology,
            immediate_topology=config.immediate_topology,
            retry_interval_max=config.retry.maximum,
            controller_publish_readonly=config.controller_publish_readonly,
            prevent_volume_mode_conversion=config.prevent_volume_mode_conversion,
        )
        attachments = opts.has(_Cap.PUBLISH_UNPUBLISH_VOLUME)
        node_segments = capacity is not None and capacity.fixed_segment is None
        static = None
        if node is not None:
            static = static_topology(ctx.driver.name, node.name, node.node_id, node.segments or {})
        self.caches = Caches(
            ctx,
            topology=opts.supports_topology or node_segments,
            attachments=attachments,
            resync_period=resync_period,
            static_topology=static,
        )
        self.performer = Performer(
            ctx.port, ctx.conn, ctx.recorder, timeout=config.csi.timeout, role="provisioner"
        )
        self.journal = Journal(
            ctx.port,
            lease_namespace(config.kube.leader_election_namespace),
            journal_name(ctx.driver.name, node.name if node is not None else ""),
            on_adopt=self._record_adopted,
        )
        self.shared = Context(
            performer=self.performer,
            journal=self.journal,
            caches=self.caches,
            csi=ctx.conn.controller,
            opts=opts,
            settings=settings,
            metrics=ProvisionerMetrics(ctx.registry),
        )
        self.capacity = (
            capacity_tracking.declare(
                ctx,
                self.caches,
                capacity,
                capacity_port or ctx.port,
                retry_start=config.retry.start,
                retry_max=config.retry.maximum,
                timeout=config.csi.timeout,
            )
            if capacity is not None
            else None
        )
        if self.capacity is not None:
            self.shared.volume_changed = self.capacity.refresh
        self._claims_written = self.shared.written(PERSISTENT_VOLUME_CLAIMS)
        self._volumes_written = self.shared.written(PERSISTENT_VOLUMES)
        start, maximum = config.retry.start, config.retry.maximum
        self.claim_queue = ctx.queue("claims", start=start, maximum=maximum)
        self.volume_queue = ctx.queue("volumes", start=start, maximum=maximum)
        self.clone_queue = ctx.queue("cloning-protection", start=start, maximum=maximum)
        self.snapshot_queue = ctx.queue("snapshot-protection", start=start, maximum=maximum)
        self.snapshot_protection = (
            SnapshotProtection(self.shared) if opts.has(_Cap.CREATE_DELETE_SNAPSHOT) else None
        )
        self.sweep_interval = config.snapshot_orphan_sweep_interval
        self.claim_sync = ClaimSync(
            self.shared,
            on_restored=self.snapshot_queue.add if self.snapshot_protection else None,
            node=NodeOwnership(self.shared, node) if node is not None else None,
        )
        self.volume_sync = VolumeSync(
            self.shared,
            check_attachments=attachments,
            node_deployment=node is not None,
            node_topology=node.segments if node is not None else None,
        )
        self.clone_protection = (
            CloneProtection(self.shared) if opts.has(_Cap.CLONE_VOLUME) else None
        )
        self.worker_threads = config.worker_threads
        self.cloning_threads = config.cloning_protection_threads
        self._known = self.shared.known_names
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
            or annotations_of(pvc).get(strings.ANN_MIGRATED_TO) in self._known
        )

    def _claim_added(self, pvc: JsonDict, old: JsonDict | None = None) -> None:
        key = object_key(pvc)
        self._claims_written.observe(key, pvc)  # drops our copy once the cache caught up
        if self._wants_claim(pvc):
            self.claim_queue.add(key)
        if self.clone_protection is not None:
            if needs_release_check(pvc):
                self.clone_queue.add(key)
            source = clone_source_key(pvc)
            if source is not None:
                self.clone_queue.add(source)
        # Once a restoring claim stops needing its snapshot (not on every resync of it).
        freed = not needs_snapshot(pvc) and (old is None or needs_snapshot(old))
        if self.snapshot_protection is not None and freed:
            self._snapshot_may_be_free(pvc)

    def _snapshot_may_be_free(self, pvc: JsonDict) -> None:
        snapshot = snapshot_source_key(pvc)
        if snapshot is not None:
            self.snapshot_queue.add(snapshot)

    def _claim_updated(self, old: JsonDict, new: JsonDict) -> None:
        self._claim_added(new, old)

    def _claim_deleted(self, pvc: JsonDict) -> None:
        self.claim_sync.forget(uid(pvc))
        self._claims_written.forget(object_key(pvc))
        if self.journal.knows_claim(object_key(pvc)):
            self.claim_queue.add(object_key(pvc))
        if self.clone_protection is not None:
            source = clone_source_key(pvc)
            if source is not None:
                self.clone_queue.add(source)
        if self.snapshot_protection is not None:
            self._snapshot_may_be_free(pvc)

    def _volume_added(self, pv: JsonDict) -> None:
        name = object_key(pv)
        self._volumes_written.observe(name, pv)
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
        self.volume_sync.forget(object_key(pv))
        self._volumes_written.forget(object_key(pv))

    def _attachment_deleted(self, va: JsonDict) -> None:
        pv_name = dig(va, "spec", "source", "persistentVolumeName")
        if isinstance(pv_name, str) and pv_name:
            self.volume_queue.add(pv_name)

    # -- running ----------------------------------------------------------------------------

    async def _load_journal(self) -> bool:
        """Read the journal, retrying with back-off; False when the role stops meanwhile."""
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ctx.stopping.wait(), min(0.5 * 2**failures, 30.0))
                if self.ctx.stopping.is_set():
                    return False
        for record in records:
            self.claim_queue.add(record.claim_key)
        return True

    async def lead(self) -> None:
        """Run the workers until the queues shut down (informers must be running and synced)."""
        if not await self._load_journal():
            return
        writer = asyncio.create_task(self.journal.run(), name="provisioner journal")
        try:
            await self._work()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _work(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.claim_queue.run(self.claim_sync.sync, self.worker_threads))
            tg.create_task(self.volume_queue.run(self.volume_sync.sync, self.worker_threads))
            if self.clone_protection is not None:
                tg.create_task(
                    self.clone_queue.run(self.clone_protection.sync, self.cloning_threads)
                )
            if self.capacity is not None:
                tg.create_task(self.capacity.run(self.ctx.stopping))
            protection = self.snapshot_protection
            if protection is not None:
                tg.create_task(self.snapshot_queue.run(protection.sync, 1))
                if self.sweep_interval > 0:
                    tg.create_task(
                        protection.sweep(
                            self.sweep_interval, self.snapshot_queue.add, self.ctx.stopping
                        )
                    )

    def idle(self) -> bool:
        """Whether no key is queued or being processed (for tests and benchmarks)."""
        if self.capacity is not None and not self.capacity.idle():
            return False
        return self.journal.idle() and all(
            len(q) == 0 and not q.processing
            for q in (self.claim_queue, self.volume_queue, self.clone_queue, self.snapshot_queue)
        )
