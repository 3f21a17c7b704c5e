"""The snapshotter's controller: informers, handlers, queues, and the sync of one key.

:func:`make_setup` is the ``setup`` of :func:`csi_sidecars.controller.run_controller`. It
checks the driver (``CREATE_DELETE_SNAPSHOT`` or exit 1, as in Go; the GroupController
capability only warns), reads the capabilities once into the decisions'
:class:`~.view.Config`, and declares

* VolumeSnapshotContent and VolumeSnapshotClass informers (slim, ``--resync-period``; under
  ``--node-deployment`` the contents are filtered by the label
  ``snapshot.storage.kubernetes.io/managed-by=$NODE_NAME``);
* with ``CSIVolumeGroupSnapshot``, the VolumeGroupSnapshotContent and class informers, unless
  the group snapshot CRDs are not installed (then a warning and no group snapshots for this
  run, instead of informers that never sync and block every snapshot);
* the queues ``csi-snapshotter-content`` and ``csi-snapshotter-groupsnapshotcontent``, each
  with ``--worker-threads`` workers and ``--retry-interval-*`` back-off.

Handlers queue a content of this driver on add and resync only when it may need work, and on
updates that :func:`~.objects.should_enqueue_change` accepts. A sync decides from the cache,
or from the object our last write returned when the cache has not caught up
(``performer.written``), and performs the plan with the one
:class:`~csi_sidecars.controller.perform.Performer`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from csi_sidecars.controller import ControllerContext, Lead, StartupError
from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.objects import name
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import ApiError, JsonDict, Resource
from csi_sidecars.kube.workqueue import Result, WorkQueue
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.snapshotter import content, group, names
from csi_sidecars.snapshotter.flags import SnapshotterFlags
from csi_sidecars.snapshotter.objects import (
    CLASS_FIELDS,
    CONTENT_FIELDS,
    driver_matches,
    needs_work,
    should_enqueue_change,
)
from csi_sidecars.snapshotter.view import POLL_MAX, Config, View

log = rlog.get_logger(names.ROLE)

Ctl = csi_pb2.ControllerServiceCapability.RPC
GroupCtl = csi_pb2.GroupControllerServiceCapability.RPC


def config_for(flags: SnapshotterFlags, ctx: ControllerContext) -> Config:
    """The decisions' settings: flags plus the capabilities read at start-up."""
    driver = ctx.driver
    return Config(
        driver=driver.name,
        snapshot_name_prefix=flags.snapshot_name_prefix,
        snapshot_name_uuid_length=flags.snapshot_name_uuid_length,
        group_name_prefix=flags.groupsnapshot_name_prefix,
        group_name_uuid_length=flags.groupsnapshot_name_uuid_length,
        extra_create_metadata=flags.extra_create_metadata,
        list_snapshots=driver.has_controller(Ctl.LIST_SNAPSHOTS),
        get_snapshot=driver.has_controller(Ctl.GET_SNAPSHOT),
        poll_start=flags.retry.start,
        poll_max=min(POLL_MAX, flags.retry.maximum),
    )


async def group_api_installed(port: KubePort) -> bool:
    """Whether the VolumeGroupSnapshotContent API is served (a 404 means no CRD)."""
    try:
        await port.list(api.VOLUME_GROUP_SNAPSHOT_CONTENTS, limit=1)
    except ApiError as exc:
        if exc.not_found:
            return False
        log.warning("Cannot check for the group snapshot API", error=str(exc))
    return True


class _Kind:
    """The informer, queue and decision of one content kind."""

    def __init__(
        self,
        ctl: SnapshotterController,
        resource: Resource,
        queue_name: str,
        decide: Callable[[JsonDict, View], a.Plan],
        class_lookup: Callable[[str], JsonDict | None],
        *,
        selector: str | None,
        group: bool,
    ) -> None:
        ctx, flags = ctl.ctx, ctl.flags
        self.ctl = ctl
        self.resource = resource
        self.decide = decide
        self.class_lookup = class_lookup
        self.group = group
        self.informer: Informer = ctx.informer(
            resource, fields=CONTENT_FIELDS, resync=flags.resync_period, label_selector=selector
        )
        self.queue: WorkQueue = ctx.queue(
            queue_name, start=flags.retry.start, maximum=flags.retry.maximum
        )
        self.informer.add_handlers(self._added, self._updated, self._deleted)

    def _ours(self, obj: JsonDict) -> bool:
        return driver_matches(obj, self.ctl.config.driver, self.class_lookup, group=self.group)

    def _written(self) -> Any:
        return self.ctl.performer.written[self.resource.plural]

    def _added(self, obj: JsonDict) -> None:
        self._written().observe(name(obj), obj)
        if self._ours(obj) and needs_work(obj):
            self.queue.add(name(obj))

    def _updated(self, old: JsonDict, new: JsonDict) -> None:
        self._written().observe(name(new), new)
        if self._ours(new) and should_enqueue_change(old, new):
            self.queue.add(name(new))

    def _deleted(self, obj: JsonDict) -> None:
        self._written().forget(name(obj))

    def current(self, key: str) -> JsonDict | None:
        """The newest copy of ``key``: the cache's, or our last write's if that is newer."""
        return self._written().newest(key, self.informer.store.get(key))  # type: ignore[no-any-return]

    async def sync(self, key: str) -> Result:
        """Decide and perform for one content."""
        view = self.ctl.view()

        def plan() -> a.Plan:
            obj = self.current(key)
            if obj is None or not self._ours(obj):
                return (a.Done(),)
            return self.decide(obj, view)

        return await run_sync(plan, self.ctl.performer, key)

    async def run(self) -> None:
        await self.queue.run(self.sync, self.ctl.flags.worker_threads)


class SnapshotterController:
    """Wires the caches, queues and the performer of one snapshotter process."""

    def __init__(
        self,
        ctx: ControllerContext,
        flags: SnapshotterFlags,
        config: Config,
        *,
        node: str = "",
        groups: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Declare informers and queues on ``ctx`` and register the handlers."""
        self.ctx = ctx
        self.flags = flags
        self.config = config
        self.clock = clock
        self.performer = Performer(
            ctx.port, ctx.conn, ctx.recorder, timeout=flags.csi.timeout, role=names.ROLE
        )
        selector = f"{api.VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL}={node}" if node else None
        resync = flags.resync_period
        self.classes = ctx.informer(api.VOLUME_SNAPSHOT_CLASSES, fields=CLASS_FIELDS, resync=resync)
        self.contents = _Kind(
            self,
            api.VOLUME_SNAPSHOT_CONTENTS,
            names.CONTENT_QUEUE,
            content.decide,
            self._snapshot_class,
            selector=selector,
            group=False,
        )
        self.group_classes: Informer | None = None
        self.group_contents: _Kind | None = None
        if groups:
            self.group_classes = ctx.informer(
                api.VOLUME_GROUP_SNAPSHOT_CLASSES, fields=CLASS_FIELDS, resync=resync
            )
            self.group_contents = _Kind(
                self,
                api.VOLUME_GROUP_SNAPSHOT_CONTENTS,
                names.GROUP_CONTENT_QUEUE,
                group.decide,
                self._group_class,
                selector=selector,
                group=True,
            )

    def _snapshot_class(self, key: str) -> JsonDict | None:
        return self.classes.store.get(key)

    def _group_class(self, key: str) -> JsonDict | None:
        return self.group_classes.store.get(key) if self.group_classes is not None else None

    def view(self) -> View:
        """The decisions' view of the caches, now."""
        return View(self.config, self._snapshot_class, self._group_class, self.clock)

    async def run(self) -> None:
        """Run the workers until the queues are shut down."""
        log.info("Starting CSI snapshotter", driver=self.config.driver)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.contents.run())
            if self.group_contents is not None:
                tg.create_task(self.group_contents.run())


def make_setup(flags: SnapshotterFlags, node: str = "") -> Any:
    """The ``setup`` for :func:`~csi_sidecars.controller.run_controller`."""

    async def setup(ctx: ControllerContext) -> Lead:
        driver = ctx.driver
        if not driver.has_controller(Ctl.CREATE_DELETE_SNAPSHOT):
            raise StartupError(
                f"CSI driver {driver.name} does not support ControllerCreateSnapshot"
            )
        ctx.recorder.component = names.event_component(driver.name)
        groups = flags.group_snapshots
        if groups and not driver.has_group_controller(
            GroupCtl.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT
        ):
            log.warning(
                f"CSI driver {driver.name} does not support "
                "GroupControllerCreateVolumeGroupSnapshot when the "
                "--feature-gates=CSIVolumeGroupSnapshot=true flag is set"
            )
        if groups and not await group_api_installed(ctx.port):
            log.warning(
                "The VolumeGroupSnapshotContent API is not installed: group snapshots are "
                "disabled until the snapshotter restarts"
            )
            groups = False
        ctl = SnapshotterController(ctx, flags, config_for(flags, ctx), node=node, groups=groups)
        return ctl.run

    return setup
