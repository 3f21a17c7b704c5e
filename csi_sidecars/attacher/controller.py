"""The attacher's controller: informers, event handlers, work queues and the reconciler.

:func:`setup` is the ``setup`` of :func:`csi_sidecars.controller.run_controller`: it declares

* a VolumeAttachment informer (slim, indexed by PV and node name, ``--resync``);
* a PersistentVolume informer (slim, ``--resync``);
* a CSINode informer (``spec.drivers`` only); like the other two it is synced before the first
  sync, so the first attaches after start-up do not fail with "CSINode not found";
* the queues ``csi-attacher-va`` and ``csi-attacher-pv`` (``--retry-interval-*``), each with
  ``--worker-threads`` workers;
* with ``LIST_VOLUMES_PUBLISHED_NODES``, the ListVolumes reconciler every ``--reconcile-sync``.

Handlers (Go's, filtered earlier): a VA of this driver is queued on add, on an update that
:func:`~csi_sidecars.attacher.pvs.should_enqueue_va_change` accepts, and on delete (its PV is
queued then too, its finalizer may be removable). A PV is queued when
:func:`~csi_sidecars.attacher.pvs.should_enqueue_pv` says so. A CSINode that gains or changes
this driver's entry re-queues the unattached VAs on that node (Go waits for their back-off).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import grpc

from csi_sidecars.attacher import names
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.executor import Executor
from csi_sidecars.attacher.objects import (
    IN_TREE_SOURCES,
    csinode_node_id,
    name_of,
    va_attached,
    va_attacher,
    va_node_name,
    va_pv_name,
)
from csi_sidecars.attacher.pvs import should_enqueue_pv, should_enqueue_va_change
from csi_sidecars.attacher.reconcile import published_nodes, reconcile
from csi_sidecars.controller import ControllerContext, Lead
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.resources import (
    CSI_NODES,
    PERSISTENT_VOLUMES,
    VOLUME_ATTACHMENTS,
    JsonDict,
    Resource,
)
from csi_sidecars.kube.workqueue import WorkQueue
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


def _by_pv(va: JsonDict) -> list[str]:
    pv = va_pv_name(va)
    return [pv] if pv else []


def _by_node(va: JsonDict) -> list[str]:
    node = va_node_name(va)
    return [node] if node else []


class AttacherController:
    """Wires the caches, queues, executor and reconciler of one attacher process."""

    def __init__(
        self,
        ctx: ControllerContext,
        cfg: AttacherConfig,
        *,
        resync: float,
        retry_start: float,
        retry_max: float,
        workers: int,
        timeout: float,
        reconcile_sync: float,
        max_entries: int,
    ) -> None:
        """Declare informers and queues on ``ctx`` and register the handlers."""
        self.ctx = ctx
        self.cfg = cfg
        self.workers = workers
        self.timeout = timeout
        self.reconcile_sync = reconcile_sync
        self.max_entries = max_entries
        self.vas: Informer = ctx.informer(
            VOLUME_ATTACHMENTS,
            fields=VA_FIELDS,
            resync=resync,
            indexers={BY_PV: _by_pv, BY_NODE: _by_node},
        )
        self.pvs: Informer = ctx.informer(PERSISTENT_VOLUMES, fields=PV_FIELDS, resync=resync)
        self.csinodes: Informer = ctx.informer(CSI_NODES, fields=CSINODE_FIELDS)
        self.va_queue: WorkQueue = ctx.queue(names.VA_QUEUE, start=retry_start, maximum=retry_max)
        self.pv_queue: WorkQueue = ctx.queue(names.PV_QUEUE, start=retry_start, maximum=retry_max)
        self.executor = Executor(
            cfg,
            ctx.port,
            ctx.conn,
            timeout=timeout,
            get_va=self.vas.store.get,
            get_pv=self.pvs.store.get,
            get_csinode=self.csinodes.store.get,
            vas_of_pv=lambda n: self.vas.store.by_index(BY_PV, n),
            csinode_synced=self.csinodes.has_synced,
            recorder=ctx.recorder,
            events_port=ctx.events_port,
        )
        #: Awaited before the workers start (the event permission checks).
        self.before_workers: asyncio.Future[None] | None = None
        self.vas.add_handlers(self._va_added, self._va_updated, self._va_deleted)
        if not cfg.trivial:
            self.pvs.add_handlers(
                self._pv_changed,
                lambda _, new: self._pv_changed(new),
                lambda pv: self.executor.written_pvs.forget(name_of(pv)),
            )
            self.csinodes.add_handlers(self._csinode_added, self._csinode_updated)

    # -- handlers ----------------------------------------------------------------------------

    def _ours(self, va: JsonDict) -> bool:
        return va_attacher(va) == self.cfg.driver_name

    def _va_added(self, va: JsonDict) -> None:
        self.executor.written_vas.observe(va)
        if self._ours(va):
            self.va_queue.add(name_of(va))

    def _va_updated(self, old: JsonDict, new: JsonDict) -> None:
        self.executor.written_vas.observe(new)
        if self._ours(new) and should_enqueue_va_change(old, new):
            self.va_queue.add(name_of(new))

    def _va_deleted(self, va: JsonDict) -> None:
        self.executor.written_vas.forget(name_of(va))
        if self._ours(va):
            self.va_queue.add(name_of(va))
        pv = va_pv_name(va)
        if pv and not self.cfg.trivial:
            self.pv_queue.add(pv)

    def _pv_changed(self, pv: JsonDict) -> None:
        self.executor.written_pvs.observe(pv)
        if should_enqueue_pv(pv, self.cfg):
            self.pv_queue.add(name_of(pv))

    def _csinode_added(self, node: JsonDict) -> None:
        if csinode_node_id(node, self.cfg.driver_name) is not None:
            self._requeue_unattached(name_of(node))

    def _csinode_updated(self, old: JsonDict, new: JsonDict) -> None:
        driver = self.cfg.driver_name
        if csinode_node_id(new, driver) not in (None, csinode_node_id(old, driver)):
            self._requeue_unattached(name_of(new))

    def _requeue_unattached(self, node: str) -> None:
        for va in self.vas.store.by_index(BY_NODE, node):
            if self._ours(va) and not va_attached(va):
                self.va_queue.add(name_of(va))

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers (and the reconciler) until the queues are shut down."""
        if self.before_workers is not None:
            await self.before_workers
        for name in list(self.executor.waiting_for_csinode):
            self.va_queue.add(name)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.va_queue.run(self._sync_va, self.workers))
            if not self.cfg.trivial:
                tg.create_task(self.pv_queue.run(self.executor.sync_pv, self.workers))
            if self.cfg.supports_list_published_nodes and self.reconcile_sync > 0:
                tg.create_task(self._reconcile_loop())
        await self.executor.close()

    async def _sync_va(self, name: str) -> bool:
        ok = await self.executor.sync_va(name)
        if name in self.executor.waiting_for_csinode:
            asyncio.get_running_loop().create_task(self._after_csinode_sync(name))
        return ok

    async def _after_csinode_sync(self, name: str) -> None:
        await self.csinodes.wait_for_sync()
        self.executor.waiting_for_csinode.discard(name)
        self.va_queue.add(name)

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
        for name, why in result.skipped:
            if rlog.v(4):
                log.info("Reconciliation skipped a VolumeAttachment", va=name, reason=why)
        for m in result.mismatches:
            log.info(
                "VolumeAttachment out of step with the driver, syncing it",
                va=m.va_name,
                attached=m.attached,
                published=m.published,
            )
            self.executor.force_sync.add(m.va_name)
            self.va_queue.add(m.va_name)
        return len(result.mismatches)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        return format_error(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return repr(exc)


SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", False, "SelfSubjectAccessReview"
)


async def allowed(port: Any, verb: str, resource: str, namespace: str = "") -> bool:
    """Whether we may ``verb`` ``resource`` (core group); True when the review itself fails."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}
        },
    }
    try:
        answer = await port.create(SELF_SUBJECT_ACCESS_REVIEWS, review)
    except Exception as exc:
        if rlog.v(4):
            log.info("Access review failed", verb=verb, resource=resource, error=repr(exc))
        return True
    return bool((answer.get("status") or {}).get("allowed", True))


async def check_event_permissions(port: Any, executor: Executor) -> None:
    """With only the Go attacher's RBAC: no events, and no pod lookups for them."""
    events_ok, pods_ok = await asyncio.gather(
        allowed(port, "create", "events", "default"), allowed(port, "list", "pods")
    )
    if not events_ok:
        log.info("Not allowed to create events: attach/detach events are not recorded")
        executor.recorder = None
    elif not pods_ok:
        log.info("Not allowed to list pods: events go on VolumeAttachments only")
        executor.pods_forbidden = True


def make_setup(flags: Any, gates: Mapping[str, bool]) -> Any:
    """The ``setup`` for :func:`~csi_sidecars.controller.run_controller` from parsed flags."""

    async def setup(ctx: ControllerContext) -> Lead:
        cfg = AttacherConfig.from_capabilities(
            ctx.driver.name,
            ctx.driver.plugin_capabilities,
            ctx.driver.controller_capabilities,
            default_fstype=flags.default_fstype,
            feature_gates=gates,
        )
        if cfg.trivial:
            log.info("Driver cannot ControllerPublish: using the trivial handler")
        else:
            log.info(
                "Using the CSI handler",
                publish_readonly=cfg.supports_publish_readonly,
                single_node_multi_writer=cfg.supports_single_node_multi_writer,
                list_volumes_published_nodes=cfg.supports_list_published_nodes,
            )
        controller = AttacherController(
            ctx,
            cfg,
            resync=flags.resync,
            retry_start=flags.retry_interval_start,
            retry_max=flags.retry_interval_max,
            workers=flags.worker_threads,
            timeout=flags.timeout,
            reconcile_sync=flags.reconcile_sync,
            max_entries=flags.max_entries,
        )
        if not cfg.trivial:
            # Asked while the caches sync (both reviews at once); the workers start after.
            controller.before_workers = asyncio.ensure_future(
                check_event_permissions(ctx.events_port, controller.executor)
            )
        return controller.run

    return setup
