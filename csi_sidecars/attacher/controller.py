"""The attacher's controller: informers, event handlers, work queues, the syncs and the reconciler.

:class:`AttacherController` (built by the ``setup`` of :mod:`csi_sidecars.attacher.setup`)
declares

* a VolumeAttachment informer (slim, indexed by PV and node name, ``--resync``);
* a PersistentVolume informer (slim, ``--resync``);
* a CSINode informer (``spec.drivers`` only); like the other two it is synced before the first
  sync, so the first attaches after start-up do not fail with "CSINode not found";
* the queues ``csi-attacher-va`` and ``csi-attacher-pv`` (``--retry-interval-*``), each with
  ``--worker-threads`` workers;
* with ``LIST_VOLUMES_PUBLISHED_NODES``, the ListVolumes reconciler every ``--reconcile-sync``.

The syncs are thin: read the caches (and the objects our own writes returned, which the
:class:`~csi_sidecars.controller.perform.Performer` keeps until the informers catch up), call the
pure decision (:func:`~csi_sidecars.attacher.decide.decide_va`,
:func:`~csi_sidecars.attacher.pvs.decide_pv`) and hand its plan to
:func:`~csi_sidecars.controller.perform.run_sync`. When a guarded write found our copy stale,
the plan ends in ``Redecide``; the next round reads the objects from the API server, not the
cache, and decides again (a few times at most).

Handlers (Go's, filtered earlier): a VA of this driver is queued on add, on an update that
:func:`~csi_sidecars.attacher.pvs.should_enqueue_va_change` accepts, and on delete (its PV is
queued then too, its finalizer may be removable). A PV is queued when
:func:`~csi_sidecars.attacher.pvs.should_enqueue_pv` says so. A CSINode that gains or changes
this driver's entry re-queues the unattached VAs on that node (Go waits for their back-off).
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from csi_sidecars.attacher import names
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import decide_va
from csi_sidecars.attacher.flags import AttacherFlags
from csi_sidecars.attacher.objects import (
    IN_TREE_SOURCES,
    csinode_node_id,
    va_attached,
    va_attacher,
    va_node_name,
    va_pv_name,
)
from csi_sidecars.attacher.plans import api_message, utcnow
from csi_sidecars.attacher.pvs import decide_pv, should_enqueue_pv, should_enqueue_va_change
from csi_sidecars.attacher.reconcile import published_nodes, reconcile
from csi_sidecars.controller import ControllerContext
from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.objects import name, va_pv_index
from csi_sidecars.kube.resources import (
    CSI_NODES,
    PERSISTENT_VOLUMES,
    VOLUME_ATTACHMENTS,
    ApiError,
    JsonDict,
    Resource,
)
from csi_sidecars.kube.workqueue import Result, WorkQueue
from csi_sidecars.kube.written import WrittenCache
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("attacher")

VA_FIELDS = (
    "metadata.uid",
    "metadata.deletionTimestamp",
    "metadata.finalizers",
    "metadata.annotations",
    "spec",
    "status",
)
PV_FIELDS = (
    "metadata.uid",
    "metadata.deletionTimestamp",
    "metadata.finalizers",
    "metadata.annotations",
    "spec.csi",
    "spec.volumeMode",
    "spec.accessModes",
    "spec.mountOptions",
    "spec.claimRef.namespace",
    "spec.claimRef.name",
    *(f"spec.{key}" for key in IN_TREE_SOURCES),
)
CSINODE_FIELDS = ("spec.drivers",)

BY_PV = "pv"
BY_NODE = "node"


def _by_node(va: JsonDict) -> list[str]:
    node = va_node_name(va)
    return [node] if node else []


class AttacherController:
    """Wires the caches, queues, performer and reconciler of one attacher process."""

    def __init__(self, ctx: ControllerContext, cfg: AttacherConfig, flags: AttacherFlags) -> None:
        """Declare informers and queues on ``ctx`` and register the handlers."""
        self.ctx = ctx
        self.cfg = cfg
        self.workers = flags.worker_threads
        self.timeout = flags.csi.timeout
        self.reconcile_sync = flags.reconcile_sync
        self.max_entries = flags.max_entries
        self.clock = utcnow
        self.vas: Informer = ctx.informer(
            VOLUME_ATTACHMENTS,
            fields=VA_FIELDS,
            resync=flags.resync,
            indexers={BY_PV: va_pv_index, BY_NODE: _by_node},
        )
        self.pvs: Informer = ctx.informer(PERSISTENT_VOLUMES, fields=PV_FIELDS, resync=flags.resync)
        self.csinodes: Informer = ctx.informer(CSI_NODES, fields=CSINODE_FIELDS)
        retry = flags.retry
        self.va_queue: WorkQueue = ctx.queue(
            names.VA_QUEUE, start=retry.start, maximum=retry.maximum
        )
        self.pv_queue: WorkQueue = ctx.queue(
            names.PV_QUEUE, start=retry.start, maximum=retry.maximum
        )
        self.performer = Performer(
            ctx.port,
            ctx.conn,
            ctx.recorder,
            timeout=self.timeout,
            role="attacher",
            events_port=ctx.events_port,
        )
        #: VA names the ListVolumes reconciler found out of step (consumed by the next sync).
        self.force_sync: set[str] = set()
        #: Awaited before the workers start (the event permission checks).
        self.before_workers: asyncio.Future[None] | None = None
        self.vas.add_handlers(self._va_added, self._va_updated, self._va_deleted)
        if not cfg.trivial:
            self.pvs.add_handlers(
                self._pv_changed,
                lambda _, new: self._pv_changed(new),
                lambda pv: self.written_pvs.forget(name(pv)),
            )
            self.csinodes.add_handlers(self._csinode_added, self._csinode_updated)

    @property
    def written_vas(self) -> WrittenCache:
        """The VolumeAttachments our writes returned, newer than the cache for a moment."""
        return self.performer.written[VOLUME_ATTACHMENTS.plural]

    @property
    def written_pvs(self) -> WrittenCache:
        """The PersistentVolumes our writes returned."""
        return self.performer.written[PERSISTENT_VOLUMES.plural]

    # -- handlers ----------------------------------------------------------------------------

    def _ours(self, va: JsonDict) -> bool:
        return va_attacher(va) == self.cfg.driver_name

    def _va_added(self, va: JsonDict) -> None:
        self.written_vas.observe(name(va), va)
        if self._ours(va):
            self.va_queue.add(name(va))

    def _va_updated(self, old: JsonDict, new: JsonDict) -> None:
        self.written_vas.observe(name(new), new)
        if self._ours(new) and should_enqueue_va_change(old, new):
            self.va_queue.add(name(new))

    def _va_deleted(self, va: JsonDict) -> None:
        self.written_vas.forget(name(va))
        if self._ours(va):
            self.va_queue.add(name(va))
        pv = va_pv_name(va)
        if pv and not self.cfg.trivial:
            self.pv_queue.add(pv)

    def _pv_changed(self, pv: JsonDict) -> None:
        self.written_pvs.observe(name(pv), pv)
        if should_enqueue_pv(pv, self.cfg):
            self.pv_queue.add(name(pv))

    def _csinode_added(self, node: JsonDict) -> None:
        if csinode_node_id(node, self.cfg.driver_name) is not None:
            self._requeue_unattached(name(node))

    def _csinode_updated(self, old: JsonDict, new: JsonDict) -> None:
        driver = self.cfg.driver_name
        if csinode_node_id(new, driver) not in (None, csinode_node_id(old, driver)):
            self._requeue_unattached(name(new))

    def _requeue_unattached(self, node: str) -> None:
        for va in self.vas.store.by_index(BY_NODE, node):
            if self._ours(va) and not va_attached(va):
                self.va_queue.add(name(va))

    # -- syncs -------------------------------------------------------------------------------

    async def _fresh(self, resource: Resource, key: str) -> JsonDict | None:
        """``key`` from the API server (None: gone), remembered as newer than the cache."""
        try:
            obj = await self.ctx.port.get(resource, key)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        self.performer.written[resource.plural].remember(key, obj)
        return obj

    async def sync_va(self, key: str) -> Result:
        """One sync of VolumeAttachment ``key``: decide from the caches, perform the plan."""
        force = key in self.force_sync
        self.force_sync.discard(key)
        rounds = 0

        async def decide() -> a.Plan:
            nonlocal rounds
            rounds += 1
            try:
                if rounds == 1:
                    va = self.written_vas.newest(key, self.vas.store.get(key))
                    pv_name = va_pv_name(va) if va is not None else None
                    pv = (
                        self.written_pvs.newest(pv_name, self.pvs.store.get(pv_name))
                        if pv_name
                        else None
                    )
                else:
                    va = await self._fresh(VOLUME_ATTACHMENTS, key)
                    pv_name = va_pv_name(va) if va is not None else None
                    pv = await self._fresh(PERSISTENT_VOLUMES, pv_name) if pv_name else None
            except ApiError as exc:
                return (a.Retry(f"could not read the objects again: {api_message(exc)}"),)
            if va is None:
                self.written_vas.forget(key)
                return (a.Done("VolumeAttachment is gone"),)
            plan = decide_va(
                va,
                cfg=self.cfg,
                pv=pv,
                csinode=self.csinodes.store.get(va_node_name(va)),
                clock=self.clock,
                csinode_synced=self.csinodes.has_synced(),
                force_sync=force,
            )
            if rlog.v(4):
                log.info("Plan", va=key, actions=[type(x).__name__ for x in plan])
            return plan

        return await run_sync(decide, self.performer, key)

    async def sync_pv(self, key: str) -> Result:
        """Remove the attacher finalizer from PV ``key`` when nothing needs it any more."""
        rounds = 0

        async def decide() -> a.Plan:
            nonlocal rounds
            rounds += 1
            if rounds == 1:
                pv = self.written_pvs.newest(key, self.pvs.store.get(key))
            else:
                try:
                    pv = await self._fresh(PERSISTENT_VOLUMES, key)
                except ApiError as exc:
                    return (a.Retry(f"could not read the PersistentVolume again: {exc}"),)
            if pv is None:
                return (a.Done("PersistentVolume is gone"),)
            return decide_pv(pv, cfg=self.cfg, vas=self.vas.store.by_index(BY_PV, key))

        return await run_sync(decide, self.performer, key)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers (and the reconciler) until the queues are shut down."""
        if self.before_workers is not None:
            await self.before_workers
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.va_queue.run(self.sync_va, self.workers))
            if not self.cfg.trivial:
                tg.create_task(self.pv_queue.run(self.sync_pv, self.workers))
            if self.cfg.list_published_nodes and self.reconcile_sync > 0:
                tg.create_task(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        stopping = self.ctx.stopping
        while not stopping.is_set():
            try:
                await self.reconcile_once()
            except Exception as exc:
                log.error("ListVolumes reconciliation failed", error=_describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.reconcile_sync)

    async def reconcile_once(self) -> int:
        """One ListVolumes pass (bounded by ``--timeout``); returns how many VAs were queued."""
        published: dict[str, list[str]] = {}
        async with asyncio.timeout(self.timeout):
            token = ""
            while True:
                req = csi_pb2.ListVolumesRequest(max_entries=self.max_entries, starting_token=token)
                resp = await self.ctx.conn.controller.ListVolumes(req)
                published_nodes(resp.entries, published)
                token = resp.next_token
                if not token:
                    break
        result = reconcile(
            self.vas.store.list(),
            published,
            cfg=self.cfg,
            get_pv=self.pvs.store.get,
            get_csinode=self.csinodes.store.get,
        )
        for va_name, why in result.skipped:
            if rlog.v(4):
                log.info("Reconciliation skipped a VolumeAttachment", va=va_name, reason=why)
        for m in result.mismatches:
            log.info(
                "VolumeAttachment out of step with the driver, syncing it",
                va=m.va_name,
                attached=m.attached,
                published=m.published,
            )
            self.force_sync.add(m.va_name)
            self.va_queue.add(m.va_name)
        return len(result.mismatches)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        return format_error(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return repr(exc)
