"""The snapshot-controller's wiring on the shared runner: CRD probe, informers, queues, handlers.

:func:`make_setup` returns the ``setup(ctx)`` of :func:`csi_sidecars.controller.run_controller`
(run with ``needs_driver=False``: the controller makes no CSI call). It

1. waits for the snapshot CRDs (``List(limit=1)`` of VolumeSnapshots, VolumeSnapshotClasses and
   VolumeSnapshotContents, back-off 100 ms x1.5 for at most ``--retry-crd-interval-max``; still
   missing: exit 1) and, with ``CSIVolumeGroupSnapshot``, the group ones (missing: a warning and
   group snapshots are off for this run, not an exit);
2. declares the informers (VolumeSnapshots, contents, classes, claims, PVs; Nodes with
   ``--enable-distributed-snapshotting``; the group kinds) with slim fields and the indexes of
   :mod:`.view`, and the queues ``snapshot-controller-snapshot``, ``-content``,
   ``-group-snapshot``, ``-group-content`` and ours, ``-claim``, each with ``--worker-threads``
   workers and the ``--retry-interval-*`` back-off;
3. connects the handlers: every change of an object queues it; a content that moved ahead of
   its snapshot queues the snapshot; a gone snapshot queues its content, the recorded one and
   the one made for it (``snapcontent-<uid>``: it may not be recorded yet), and the reverse; a
   claim's change queues its snapshots; snapshots' and claims' changes queue the claim while it
   carries ``pvc-as-source-protection``; the operation metrics follow the transitions.

At start-up, snapshots and contents that look settled go to a backlog (:mod:`.backlog`) fed
into their queue only while it is short: a new snapshot is not cut after every settled one.

Resyncs (``--resync-period``) re-queue only objects that are not settled: at 30,000 ready
snapshots Go re-syncs all of them every 15 minutes and lists every snapshot of the namespace for
each (external-snapshotter #1148); here a settled snapshot costs nothing at resync and every
lookup is an index.

Each sync is :func:`~csi_sidecars.controller.perform.run_sync` of the kind's pure decision with
the one :class:`~csi_sidecars.controller.perform.Performer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from csi_sidecars.controller import ControllerContext, Lead, StartupError
from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.resources import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    JsonDict,
    Resource,
    split_key,
)
from csi_sidecars.kube.snapshots import (
    PVC_FINALIZER,
    VGS_BOUND_FINALIZER,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.kube.store import Store
from csi_sidecars.kube.workqueue import Result, WorkQueue
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.backlog import Backlog
from csi_sidecars.snapshotcontroller.content import decide_content, decide_group_content
from csi_sidecars.snapshotcontroller.group import decide_group_snapshot
from csi_sidecars.snapshotcontroller.metrics import OperationMetrics
from csi_sidecars.snapshotcontroller.plans import Decide, Settings
from csi_sidecars.snapshotcontroller.protection import decide_claim, in_flight
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from csi_sidecars.snapshotcontroller.startup import GROUP_CRDS, SNAPSHOT_CRDS, probe_crds
from csi_sidecars.snapshotcontroller.status import group_needs_update, needs_update
from csi_sidecars.snapshotcontroller.view import FIELDS, INDEXERS, View

log = rlog.get_logger(names.ROLE)


Decision = Callable[[JsonDict | None, Decide], a.Plan]


@dataclass(frozen=True, slots=True)
class Config:
    """The flags the controller needs."""

    resync: float = 900.0
    workers: int = 10
    retry_start: float = 1.0
    retry_max: float = 300.0
    retry_crd_max: float = 30.0
    groups: bool = False
    distributed: bool = False
    prevent_volume_mode_conversion: bool = True


def _settled_snapshot(vs: JsonDict) -> bool:
    return (
        so.is_ready(vs)
        and bool(so.bound_content(vs))
        and not o.is_deleting(vs)
        and VS_AS_SOURCE_FINALIZER in o.finalizers(vs)
        and so.error_message(vs) is None
    )


def _settled_content(content: JsonDict, finalizer: str, ref: str) -> bool:
    return (
        bool(so.ref(content, ref).get("uid"))
        and finalizer in o.finalizers(content)
        and not o.is_deleting(content)
    )


def _settled_group(vgs: JsonDict) -> bool:
    return (
        so.is_ready(vgs)
        and bool(so.bound_group_content(vgs))
        and not o.is_deleting(vgs)
        and VGS_BOUND_FINALIZER in o.finalizers(vgs)
    )


def _resync(old: JsonDict, new: JsonDict) -> bool:
    return o.resource_version(old) == o.resource_version(new)


class SnapshotController:
    """The informers, queues and syncs of one snapshot-controller."""

    def __init__(self, ctx: ControllerContext, config: Config) -> None:
        """Declare everything on ``ctx`` (the informers start once leading)."""
        self.ctx = ctx
        self.config = config
        self.settings = Settings(
            prevent_volume_mode_conversion=config.prevent_volume_mode_conversion,
            distributed=config.distributed,
            groups=config.groups,
        )
        self.performer = Performer(ctx.port, None, ctx.recorder, timeout=60.0, role=names.ROLE)
        self.metrics = OperationMetrics(ctx.registry)
        self.informers: dict[str, Informer] = {}
        kinds = [
            VOLUME_SNAPSHOTS,
            VOLUME_SNAPSHOT_CONTENTS,
            VOLUME_SNAPSHOT_CLASSES,
            PERSISTENT_VOLUME_CLAIMS,
            PERSISTENT_VOLUMES,
        ]
        if config.distributed:
            kinds.append(NODES)
        if config.groups:
            kinds += list(GROUP_CRDS)
        for res in kinds:
            self.informers[res.plural] = ctx.informer(
                res,
                fields=FIELDS[res.plural],
                resync=config.resync,
                indexers=INDEXERS.get(res.plural),
            )
        stores: Mapping[str, Store] = {p: inf.store for p, inf in self.informers.items()}
        self.view = View(stores, self.performer.written)

        def queue(name: str) -> WorkQueue:
            return ctx.queue(name, start=config.retry_start, maximum=config.retry_max)

        self.snapshots = queue(names.SNAPSHOT_QUEUE)
        self.contents = queue(names.CONTENT_QUEUE)
        water = 4 * config.workers
        self.backlogs = (Backlog(self.snapshots, water), Backlog(self.contents, water))
        self.claims = queue(names.CLAIM_QUEUE)
        self.work: list[tuple[WorkQueue, Callable[[str], Awaitable[Result]]]] = [
            (self.snapshots, self._syncer(VOLUME_SNAPSHOTS, decide_snapshot)),
            (self.contents, self._syncer(VOLUME_SNAPSHOT_CONTENTS, decide_content)),
            (self.claims, self._syncer(PERSISTENT_VOLUME_CLAIMS, decide_claim)),
        ]
        if config.groups:
            self.groups = queue(names.GROUP_SNAPSHOT_QUEUE)
            self.group_contents = queue(names.GROUP_CONTENT_QUEUE)
            self.work += [
                (self.groups, self._syncer(VOLUME_GROUP_SNAPSHOTS, decide_group_snapshot)),
                (
                    self.group_contents,
                    self._syncer(VOLUME_GROUP_SNAPSHOT_CONTENTS, decide_group_content),
                ),
            ]
        self._connect()

    # -- syncs -------------------------------------------------------------------------------

    def decide(self) -> Decide:
        """The inputs of a decision made now."""
        return Decide(self.view, self.settings, Decide.stamp())

    def _syncer(self, resource: Resource, decision: Decision) -> Callable[[str], Awaitable[Result]]:
        async def sync(key: str) -> Result:
            ns, name = split_key(key)

            def decide() -> a.Plan:
                return decision(self.view.get(resource, name, ns), self.decide())

            return await run_sync(decide, self.performer, key)

        return sync

    async def lead(self) -> None:
        """Run every queue's workers until the queues shut down."""
        log.info(
            "Starting snapshot controller", workers=self.config.workers, groups=self.config.groups
        )
        async with asyncio.TaskGroup() as tg:
            for q, handler in self.work:
                tg.create_task(q.run(handler, workers=self.config.workers))
            for backlog in self.backlogs:
                tg.create_task(backlog.feed())

    def backlog_size(self) -> int:
        """Keys still waiting in the start-up backlogs."""
        return sum(len(b) for b in self.backlogs)

    # -- handlers ----------------------------------------------------------------------------

    def _connect(self) -> None:
        inf = self.informers
        inf[VOLUME_SNAPSHOTS.plural].add_handlers(
            on_add=lambda vs: self._snapshot_changed(None, vs),
            on_update=self._snapshot_changed,
            on_delete=self._snapshot_deleted,
        )
        inf[VOLUME_SNAPSHOT_CONTENTS.plural].add_handlers(
            on_add=lambda c: self._content_changed(None, c),
            on_update=self._content_changed,
            on_delete=self._content_deleted,
        )
        inf[PERSISTENT_VOLUME_CLAIMS.plural].add_handlers(
            on_add=lambda c: self._claim_changed(None, c),
            on_update=self._claim_changed,
        )
        if self.config.groups:
            inf[VOLUME_GROUP_SNAPSHOTS.plural].add_handlers(
                on_add=lambda g: self._group_changed(None, g),
                on_update=self._group_changed,
                on_delete=self._group_deleted,
            )
            inf[VOLUME_GROUP_SNAPSHOT_CONTENTS.plural].add_handlers(
                on_add=lambda c: self._group_content_changed(None, c),
                on_update=self._group_content_changed,
                on_delete=self._group_content_deleted,
            )

    def _driver_of(self, vs: JsonDict) -> str:
        content_name = so.source_content(vs)
        if content_name:
            content = self.view.content(content_name)
            if content is not None and so.driver(content):
                return so.driver(content)
        cls = self.view.snapshot_class(so.class_name(vs) or "")
        return so.driver(cls) if cls is not None else ""

    def _group_driver_of(self, vgs: JsonDict) -> str:
        content_name = so.group_source_content(vgs)
        if content_name:
            content = self.view.group_content(content_name)
            if content is not None and so.driver(content):
                return so.driver(content)
        cls = self.view.group_class(so.group_class_name(vgs) or "")
        return so.driver(cls) if cls is not None else ""

    def _queue_claim(self, namespace: str, claim: str | None) -> None:
        if not claim:
            return
        cached = self.view.claim(namespace, claim)
        if cached is not None and PVC_FINALIZER in o.finalizers(cached):
            self.claims.add(f"{namespace}/{claim}")

    def _snapshot_changed(self, old: JsonDict | None, vs: JsonDict) -> None:
        self.performer.written[VOLUME_SNAPSHOTS.plural].observe(so.key(vs), vs)
        self.metrics.observe(old, vs, self._driver_of(vs))
        if old is not None and _resync(old, vs) and _settled_snapshot(vs):
            return
        if old is None and _settled_snapshot(vs):
            self.backlogs[0].defer(so.key(vs))
        else:
            self.snapshots.add(so.key(vs))
        self._queue_claim(o.namespace(vs), so.source_claim(vs))

    def _snapshot_deleted(self, vs: JsonDict) -> None:
        self.performer.written[VOLUME_SNAPSHOTS.plural].forget(so.key(vs))
        self.metrics.deleted(vs, self._driver_of(vs))
        if so.bound_content(vs):
            self.contents.add(so.bound_content(vs))
        if so.source_claim(vs) is not None and o.uid(vs):
            # Deleted before it recorded its content: the one made for it goes too.
            self.contents.add(names.content_name(o.uid(vs)))
        self._queue_claim(o.namespace(vs), so.source_claim(vs))

    def _content_changed(self, old: JsonDict | None, content: JsonDict) -> None:
        self.performer.written[VOLUME_SNAPSHOT_CONTENTS.plural].observe(o.name(content), content)
        settled = _settled_content(content, VSC_FINALIZER, "volumeSnapshotRef")
        if old is None and settled:
            self.backlogs[1].defer(o.name(content))
        elif old is None or not _resync(old, content) or not settled:
            self.contents.add(o.name(content))
        ref = so.ref(content)
        vs = self.view.snapshot(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        if vs is not None and o.uid(vs) == ref.get("uid") and needs_update(vs, content):
            self.snapshots.add(so.key(vs))

    def _content_deleted(self, content: JsonDict) -> None:
        self.performer.written[VOLUME_SNAPSHOT_CONTENTS.plural].forget(o.name(content))
        key = so.ref_key(content)
        if key:
            self.snapshots.add(key)

    def _claim_changed(self, old: JsonDict | None, claim: JsonDict) -> None:
        ns, name = o.namespace(claim), o.name(claim)
        self.performer.written[PERSISTENT_VOLUME_CLAIMS.plural].observe(f"{ns}/{name}", claim)
        if PVC_FINALIZER in o.finalizers(claim):
            self.claims.add(f"{ns}/{name}")
        if old is None or _resync(old, claim):
            return
        # Bound now, or the protection just went: the claim's snapshots look again (the
        # in-flight ones put the finalizer back), and a finished restore frees its snapshot.
        if o.status(old).get("phase") != o.status(claim).get("phase") or (
            PVC_FINALIZER in o.finalizers(old) and PVC_FINALIZER not in o.finalizers(claim)
        ):
            d = self.decide()
            for vs in self.view.snapshots_of_claim(ns, name):
                if not _settled_snapshot(vs) or in_flight(vs, d):
                    self.snapshots.add(so.key(vs))
            source = o.dig(claim, "spec", "dataSource", "name")
            if isinstance(source, str) and source:
                self.snapshots.add(f"{ns}/{source}")

    def _group_changed(self, old: JsonDict | None, vgs: JsonDict) -> None:
        self.performer.written[VOLUME_GROUP_SNAPSHOTS.plural].observe(so.key(vgs), vgs)
        self.metrics.observe(old, vgs, self._group_driver_of(vgs), group=True)
        if old is not None and _resync(old, vgs) and _settled_group(vgs):
            return
        self.groups.add(so.key(vgs))

    def _group_deleted(self, vgs: JsonDict) -> None:
        self.performer.written[VOLUME_GROUP_SNAPSHOTS.plural].forget(so.key(vgs))
        self.metrics.deleted(vgs, self._group_driver_of(vgs), group=True)
        if so.bound_group_content(vgs):
            self.group_contents.add(so.bound_group_content(vgs))
        if so.group_source_content(vgs) is None and o.uid(vgs):
            self.group_contents.add(names.group_content_name(o.uid(vgs)))
        # Members may now drop their in-group finalizer.
        for member in self.view.group_members(o.namespace(vgs), o.name(vgs)):
            self.snapshots.add(so.key(member))

    def _group_content_changed(self, old: JsonDict | None, content: JsonDict) -> None:
        written = self.performer.written[VOLUME_GROUP_SNAPSHOT_CONTENTS.plural]
        written.observe(o.name(content), content)
        if (
            old is None
            or not _resync(old, content)
            or not _settled_content(content, VGSC_FINALIZER, "volumeGroupSnapshotRef")
        ):
            self.group_contents.add(o.name(content))
        ref = so.ref(content, "volumeGroupSnapshotRef")
        vgs = self.view.group_snapshot(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        if vgs is None or o.uid(vgs) != ref.get("uid"):
            return
        if group_needs_update(vgs, content) or (
            old is not None and o.status(old) != o.status(content)
        ):
            self.groups.add(so.key(vgs))

    def _group_content_deleted(self, content: JsonDict) -> None:
        self.performer.written[VOLUME_GROUP_SNAPSHOT_CONTENTS.plural].forget(o.name(content))
        key = so.ref_key(content, "volumeGroupSnapshotRef")
        if key:
            self.groups.add(key)


async def _nothing() -> None:
    return None


def make_setup(config: Config) -> Callable[[ControllerContext], Awaitable[Lead]]:
    """The ``setup`` of the runner for ``config``."""

    async def setup(ctx: ControllerContext) -> Lead:
        error = await probe_crds(ctx.port, SNAPSHOT_CRDS, config.retry_crd_max, ctx.stop)
        if error is not None and ctx.stop.is_set():
            return _nothing  # SIGTERM while waiting for the CRDs: a clean stop, exit 0
        if error is not None:
            raise StartupError(
                f"Exiting due to failure to ensure CRDs exist during startup: {error}"
            )
        groups = config.groups
        if groups:
            error = await probe_crds(ctx.port, GROUP_CRDS, config.retry_crd_max, ctx.stop)
            if error is not None:
                log.warning(
                    "Group snapshot CRDs missing: group snapshots are disabled for this run",
                    error=error,
                )
                groups = False
        controller = SnapshotController(ctx, replace(config, groups=groups))
        return controller.lead

    return setup
