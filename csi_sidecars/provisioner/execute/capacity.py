"""Capacity tracking: the CSIStorageCapacity objects of the driver, kept current.

:class:`CapacityTracker` holds the wanted items (:class:`~..decide.capacity.Item`: segment x
StorageClass) and the object each one has, and two queues:

* ``csistoragecapacity``: the key of an item (:attr:`Item.key`; one entry per item however
  many events arrive, external-provisioner #1161) or ``delete/<name>`` for an obsolete object.
  An item's sync asks the driver (GetCapacity with ``--timeout``) and has
  :func:`~..decide.capacity.write_plan` create, update or keep its object.
* ``csitopology``: one key; its sync recomputes the segments from the CSINode and Node caches
  (or keeps the node deployment's fixed one) and adds or removes items.

Items are queued when a StorageClass or a segment appears, every ``--capacity-poll-interval``,
and right after a CreateVolume or DeleteVolume on a segment (:meth:`refresh`: the items of the
PV's node-affinity segments, else those of its StorageClass), so the scheduler sees the new
free space without waiting for the poll. Objects are read through a namespace- and
label-selected informer; one that matches no item, or duplicates one, is deleted; one deleted
by someone else is created again. Writes go through their own client
(``--kube-api-capacity-qps`` / ``--kube-api-capacity-burst``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import ControllerContext
from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, to_result
from csi_sidecars.csi.codes import format_error
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.objects import JsonDict, name, namespace, spec
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import CSI_STORAGE_CAPACITIES
from csi_sidecars.kube.workqueue import Result, WorkQueue
from csi_sidecars.provisioner.decide import capacity as cap
from csi_sidecars.provisioner.decide.capacity import Item, Segment
from csi_sidecars.provisioner.execute.caches import Caches
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.metrics import GaugeFamily

log = rlog.get_logger("provisioner")

DELETE_PREFIX = "delete/"


@dataclass(frozen=True)
class CapacitySettings:
    """What capacity tracking was configured with.

    Attributes:
        driver: the driver name.
        namespace: where the objects live (``NAMESPACE``).
        managed_by: the ``csi.storage.k8s.io/managed-by`` value.
        owner: the owner reference of every object (None: ``--capacity-ownerref-level=-1``).
        immediate_binding: ``--capacity-for-immediate-binding``.
        poll_interval: ``--capacity-poll-interval`` (seconds).
        workers: ``--capacity-threads``.
        fixed_segment: node deployment: the one segment; None: from CSINodes and Nodes.
    """

    driver: str
    namespace: str
    managed_by: str = cap.MANAGED_BY
    owner: Mapping[str, Any] | None = None
    immediate_binding: bool = False
    poll_interval: float = 60.0
    workers: int = 1
    fixed_segment: Segment | None = None


class CapacityTracker:
    """Maintains the CSIStorageCapacity objects of one provisioner.

    Args:
        settings: the flags and environment.
        caches: StorageClasses, and CSINodes and Nodes for the segments.
        objects: the informer of our CSIStorageCapacity objects.
        performer: performs GetCapacity and the writes (the capacity client).
        queue: ``csistoragecapacity``.
        topology_queue: ``csitopology``.
    """

    def __init__(
        self,
        settings: CapacitySettings,
        *,
        caches: Caches,
        objects: Informer,
        performer: Performer,
        queue: WorkQueue,
        topology_queue: WorkQueue,
    ) -> None:
        self.settings = settings
        self.caches = caches
        self.objects = objects
        self.performer = performer
        self.queue = queue
        self.topology_queue = topology_queue
        #: wanted item -> the name of its object (None: none known yet), and the reverse
        self.items: dict[Item, str | None] = {}
        self._by_name: dict[str, Item] = {}
        self.segments: list[Segment] = []
        self.ready = False
        caches.classes.add_handlers(self._class_changed, lambda _, n: self._class_changed(n),
                                    self._class_deleted)  # fmt: skip
        if settings.fixed_segment is None:
            for inf in (caches.csinodes, caches.nodes):
                if inf is not None:
                    inf.add_handlers(
                        self._topology_hint, self._topology_update, self._topology_hint
                    )
        objects.add_handlers(self._object_seen, lambda _, n: self._object_seen(n),
                             self._object_deleted)  # fmt: skip

    # -- handlers ---------------------------------------------------------------------------

    def _topology_hint(self, _: JsonDict) -> None:
        self.topology_queue.add("")

    def _topology_update(self, old: JsonDict, new: JsonDict) -> None:
        if old.get("metadata", {}).get("labels") != new.get("metadata", {}).get("labels") or spec(
            old
        ).get("drivers") != spec(new).get("drivers"):
            self.topology_queue.add("")

    def _class_changed(self, sc: JsonDict) -> None:
        if self.ready:
            self._reconcile(classes=[name(sc)])

    def _class_deleted(self, sc: JsonDict) -> None:
        if self.ready:
            self._reconcile(classes=[name(sc)])

    def _object_seen(self, obj: JsonDict) -> None:
        if self.ready:
            self._adopt(obj)

    def _object_deleted(self, obj: JsonDict) -> None:
        item = self._by_name.get(name(obj))
        if item is not None:
            self._bind(item, None)
            self.queue.add(item.key)  # someone else deleted it: create it again

    def _bind(self, item: Item, obj_name: str | None) -> None:
        old = self.items.get(item)
        if old is not None:
            self._by_name.pop(old, None)
        self.items[item] = obj_name
        if obj_name is not None:
            self._by_name[obj_name] = item

    # -- bookkeeping ------------------------------------------------------------------------

    def _wanted(self, classes: Iterable[str] | None = None) -> set[Item]:
        scs = self.caches.classes.store.list()
        if classes is not None:
            chosen = set(classes)
            scs = [sc for sc in scs if name(sc) in chosen]
        s = self.settings
        return cap.wanted_items(self.segments, scs, s.driver, s.immediate_binding)

    def _reconcile(self, classes: Iterable[str] | None = None) -> None:
        """Add the wanted items (of ``classes``) that are missing, drop the others."""
        scope = None if classes is None else set(classes)
        wanted = self._wanted(scope)
        for item in list(self.items):
            if (scope is None or item.storage_class in scope) and item not in wanted:
                obj_name = self.items.pop(item)
                if obj_name is not None:
                    self._by_name.pop(obj_name, None)
                    self.queue.add(DELETE_PREFIX + obj_name)
        for item in sorted(wanted):
            if item not in self.items:
                self.items[item] = None
                self.queue.add(item.key)

    def _adopt(self, obj: JsonDict) -> None:
        """Bind an object to its item, or queue it for deletion when no item wants it."""
        obj_name = name(obj)
        if obj_name in self._by_name:
            return
        item = cap.item_of(obj)
        if item is not None and item in self.items and self.items[item] is None:
            self._bind(item, obj_name)
            return
        self.queue.add(DELETE_PREFIX + obj_name)

    def _object(self, obj_name: str) -> JsonDict | None:
        key = f"{self.settings.namespace}/{obj_name}"
        written = self.performer.written[CSI_STORAGE_CAPACITIES.plural]
        return written.newest(key, self.objects.store.get(key))

    def start(self) -> None:
        """Compute the items, adopt the existing objects, queue everything (caches synced)."""
        self.sync_topology_now()
        self.ready = True
        self._reconcile()
        for obj in self.objects.store.list():
            self._adopt(obj)
        for item in self.items:
            self.queue.add(item.key)

    def sync_topology_now(self) -> None:
        """Recompute the segments; add and drop items for the change."""
        fixed = self.settings.fixed_segment
        if fixed is not None:
            segments = [fixed]
        else:
            nodes = self.caches.node_map
            segments = cap.node_segments(
                self.settings.driver, self.caches.csinode_map.values(), nodes
            )
        if segments != self.segments:
            log.info(
                "Capacity topology changed",
                added=[dict(s) for s in segments if s not in self.segments],
                removed=[dict(s) for s in self.segments if s not in segments],
            )
            self.segments = segments
            if self.ready:
                self._reconcile()

    def refresh(self, pv: Mapping[str, Any] | None, storage_class: str = "") -> None:
        """Queue the items a CreateVolume or DeleteVolume changed: those of the PV's segments,
        else those of ``storage_class``."""
        segments = cap.affinity_segments(pv) if pv is not None else None
        for item in self.items:
            if (segments and item.segment in segments) or (
                not segments and item.storage_class == storage_class
            ):
                self.queue.add(item.key)

    # -- syncs ------------------------------------------------------------------------------

    async def sync_topology(self, _: str) -> Result:
        """The ``csitopology`` queue's sync."""
        self.sync_topology_now()
        return True

    async def sync(self, key: str) -> Result:
        """The ``csistoragecapacity`` queue's sync: one item, or one obsolete object."""
        if key.startswith(DELETE_PREFIX):
            return await self._delete(key[len(DELETE_PREFIX) :])
        try:
            item = Item.from_key(key)
        except ValueError:
            return True
        if item not in self.items:
            return True  # obsolete meanwhile
        sc = self.caches.storage_class(item.storage_class)
        if sc is None:
            return True
        s = self.settings
        segment: Segment | None = item.segment
        if s.fixed_segment is not None and not item.segment:
            segment = None  # node deployment without topology: no accessible_topology

        def then(resp: Any) -> a.Plan:
            current = self.items.get(item)
            existing = self._object(current) if current else None
            return cap.write_plan(
                item,
                cap.reported(resp),
                existing,
                namespace=s.namespace,
                driver=s.driver,
                managed_by=s.managed_by,
                owner=s.owner,
            )

        plan = (
            a.Call(
                "controller",
                "GetCapacity",
                cap.capacity_request(sc, segment),
                then=then,
                on_error=lambda exc: (a.Retry(f"CSI GetCapacity for {item}: {format_error(exc)}"),),
            ),
        )
        outcome = await self.performer.perform(plan, key)
        if isinstance(outcome, cap.Written):
            if item in self.items:
                self._bind(item, outcome.name)
            if rlog.v(5):
                log.info("Capacity written", item=str(item), result=outcome.reason)
        elif isinstance(outcome, a.Retry | a.Redecide):
            log.error("Capacity update failed", item=str(item), error=outcome.reason)
        return to_result(outcome)

    async def _delete(self, obj_name: str) -> Result:
        if obj_name in self._by_name:
            return True  # adopted again meanwhile
        plan = (a.Delete(CSI_STORAGE_CAPACITIES, obj_name, self.settings.namespace),)
        outcome = await self.performer.perform(plan, DELETE_PREFIX + obj_name)
        if isinstance(outcome, a.Done):
            log.info("Deleted obsolete CSIStorageCapacity", name=obj_name)
        return to_result(outcome)

    async def run(self, stopping: asyncio.Event) -> None:
        """Start (:meth:`start`), then run the queues and the poll until they shut down."""
        self.start()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.queue.run(self.sync, self.settings.workers))
            if self.settings.fixed_segment is None:
                tg.create_task(self.topology_queue.run(self.sync_topology, 1))
            tg.create_task(self.poll(stopping))

    def idle(self) -> bool:
        """Whether nothing is queued or being processed."""
        return all(len(q) == 0 and not q.processing for q in (self.queue, self.topology_queue))

    async def poll(self, stopping: asyncio.Event) -> None:
        """Queue every item every ``--capacity-poll-interval``, until ``stopping``."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.poll_interval)
            for item in list(self.items):
                self.queue.add(item.key)

    # -- metrics ----------------------------------------------------------------------------

    def obsolete(self) -> int:
        """Managed objects that no item wants (they are being deleted)."""
        s = self.settings
        return sum(
            1
            for obj in self.objects.store.list()
            if cap.is_managed(obj, s.driver, s.managed_by)
            and namespace(obj) == s.namespace
            and cap.item_of(obj) not in self.items
        )


class CapacityMetrics:
    """Go's gauges: ``csistoragecapacities_desired_goal``, ``_desired_current``, ``_obsolete``."""

    def __init__(self, tracker: CapacityTracker) -> None:
        self.tracker = tracker

    def collect(self) -> Iterator[GaugeFamily]:
        """The three gauges, computed when scraped."""
        items = self.tracker.items
        yield GaugeFamily(
            "csistoragecapacities_desired_goal",
            "Number of CSIStorageCapacity objects that are supposed to be managed automatically.",
            value=len(items),
        )
        yield GaugeFamily(
            "csistoragecapacities_desired_current",
            "Number of CSIStorageCapacity objects that exist and are supposed to be managed "
            "automatically.",
            value=sum(1 for v in items.values() if v is not None),
        )
        yield GaugeFamily(
            "csistoragecapacities_obsolete",
            "Number of CSIStorageCapacity objects that exist and will be deleted automatically. "
            "Objects that exist and may need an update are not considered obsolete and "
            "therefore not included in this value.",
            value=self.tracker.obsolete(),
        )


def declare(
    ctx: ControllerContext,
    caches: Caches,
    settings: CapacitySettings,
    port: KubePort,
    *,
    retry_start: float,
    retry_max: float,
    timeout: float,
) -> CapacityTracker:
    """Declare the capacity informer, queues and metrics on the runner's context."""
    selector = (
        f"{cap.DRIVER_NAME_LABEL}={settings.driver},{cap.MANAGED_BY_LABEL}={settings.managed_by}"
    )
    objects = ctx.informer(
        CSI_STORAGE_CAPACITIES, namespace=settings.namespace, label_selector=selector
    )
    tracker = CapacityTracker(
        settings,
        caches=caches,
        objects=objects,
        performer=Performer(port, ctx.conn, None, timeout=timeout, role="provisioner"),
        queue=ctx.queue("csistoragecapacity", start=retry_start, maximum=retry_max),
        topology_queue=ctx.queue("csitopology", start=retry_start, maximum=retry_max),
    )
    ctx.registry.register(CapacityMetrics(tracker))
    return tracker
