"""The resizer's controller: caches, the one work queue, and the sync of a claim.

:func:`make_setup` is the ``setup`` of :func:`csi_sidecars.controller.run_controller`. It reads
what the driver can do (controller EXPAND_VOLUME, else node EXPAND_VOLUME for node-only
expansion; controller MODIFY_VOLUME), refuses a driver that can do neither with a clear message
(Go crashes with a fatal log, #179), and declares:

* a PVC informer and a PV informer (slim: the fields the decisions read, ``--resync-period``);
* with modification, a VolumeAttributesClass informer (its additions re-queue the claims that
  wait ``Pending`` for it; Go waits for the next resync);
* no Pod informer: the in-use check lists one namespace's pods only after the driver said
  FailedPrecondition (Go caches every pod of the cluster by default, #211);
* one queue ``<driver>-pvc`` for both expansion and modification, so the two never run at the
  same time for one claim (Go runs two controllers whose queues share that name).

A claim's sync decides and performs its expansion, then its modification, each with
:func:`~csi_sidecars.controller.perform.run_sync` on a shared
:class:`~csi_sidecars.controller.perform.Performer` (read-your-writes across both).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from csi_sidecars.controller import ControllerContext, Lead, StartupError
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.csi import rpc
from csi_sidecars.csi.codes import format_error, is_grpc_code
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.objects import JsonDict, name
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    VOLUME_ATTRIBUTES_CLASSES,
    ApiError,
    object_key,
)
from csi_sidecars.kube.workqueue import After, Result
from csi_sidecars.resizer import claims as c
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.expand import ExpandSettings, decide_expansion
from csi_sidecars.resizer.memory import Memory, Recall, watch_calls
from csi_sidecars.resizer.modify import ModifySettings, decide_modification, infeasible_target
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.featuregates import FeatureGates

log = rlog.get_logger("resizer")

PVC_FIELDS = (
    "metadata.uid",
    "metadata.annotations",
    "spec.volumeName",
    "spec.resources.requests",
    "spec.volumeAttributesClassName",
    "status",
)
PV_FIELDS = (
    "metadata.annotations",
    "spec.capacity",
    "spec.csi",
    "spec.claimRef.namespace",
    "spec.claimRef.name",
    "spec.claimRef.uid",
    "spec.volumeMode",
    "spec.accessModes",
    "spec.mountOptions",
    "spec.volumeAttributesClassName",
)
VAC_FIELDS = ("driverName", "parameters")
BY_CLASS = "vac"

RPC = csi_pb2.ControllerServiceCapability.RPC
NODE_RPC = csi_pb2.NodeServiceCapability.RPC


@dataclass(frozen=True, slots=True)
class ResizerConfig:
    """The resizer's own settings (from its flags)."""

    timeout: float = 10.0
    resync: float = 600.0
    workers: int = 10
    retry_start: float = 1.0
    retry_max: float = 300.0
    extra_modify_metadata: bool = False
    handle_in_use: bool = True


def rfc3339(seconds: float) -> str:
    """A condition timestamp (seconds precision, as metav1.Time)."""
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _size_changed(old: JsonDict, new: JsonDict, recover: bool) -> bool:
    old_req = c.zero_if_none(c.size(c.request(old)))
    new_req = c.zero_if_none(c.size(c.request(new)))
    return new_req > old_req or (recover and new_req != old_req)


def should_enqueue(
    old: JsonDict, new: JsonDict, *, recover: bool, modify: bool, has_pv: Callable[[str], bool]
) -> bool:
    """Go's two update filters, either of which queues the claim."""
    ann = n.RESIZER_ANNOTATION
    if _size_changed(old, new, recover):
        return True
    if (old.get("metadata", {}).get("annotations") or {}).get(ann) != (
        new.get("metadata", {}).get("annotations") or {}
    ).get(ann):
        return True
    if old.get("metadata", {}).get("resourceVersion") == new.get("metadata", {}).get(
        "resourceVersion"
    ):
        return True
    if c.zero_if_none(c.size(c.capacity(new))) > c.zero_if_none(c.size(c.capacity(old))):
        return True
    if recover and c.resize_status(old) != c.resize_status(new):
        return True
    if modify and c.is_bound(new):
        changed = c.spec_vac(old) != c.spec_vac(new) or c.modify_status(new) is None
        if changed and has_pv(c.volume_name(old)):
            return True
    return False


def combine(first: Result, second: Result) -> Result:
    """One queue result for two syncs: a failure wins, then the sooner re-check."""
    if first is False or second is False:
        return False
    waits = [r.seconds for r in (first, second) if isinstance(r, After)]
    return After(min(waits)) if waits else True


class ResizerController:
    """Wires caches, queue, memory and performer of one resizer process."""

    def __init__(
        self,
        ctx: ControllerContext,
        cfg: ResizerConfig,
        expand: ExpandSettings | None,
        modify: ModifySettings | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Declare informers and the queue on ``ctx`` and register the handlers."""
        self.ctx, self.cfg, self.expand, self.modify = ctx, cfg, expand, modify
        self.clock, self.wall = clock, wall
        self.pvcs: Informer = ctx.informer(
            PERSISTENT_VOLUME_CLAIMS,
            fields=PVC_FIELDS,
            resync=cfg.resync,
            indexers={BY_CLASS: lambda pvc: [v] if (v := c.spec_vac(pvc)) else []},
        )
        self.pvs: Informer = ctx.informer(PERSISTENT_VOLUMES, fields=PV_FIELDS, resync=cfg.resync)
        self.vacs: Informer | None = None
        if modify is not None:
            self.vacs = ctx.informer(VOLUME_ATTRIBUTES_CLASSES, fields=VAC_FIELDS)
            self.vacs.add_handlers(self._class_seen, lambda _, new: self._class_seen(new))
        self.queue = ctx.queue(
            n.queue_name(ctx.driver.name), start=cfg.retry_start, maximum=cfg.retry_max
        )
        self.memory = Memory(hold=cfg.retry_max)
        self.performer = Performer(
            ctx.port, ctx.conn, ctx.recorder, timeout=cfg.timeout, role="resizer"
        )
        self.pvcs.add_handlers(self._added, self._updated, self._deleted)
        self.pvs.add_handlers(
            lambda pv: self._written_pvs.observe(object_key(pv), pv),
            lambda _, pv: self._written_pvs.observe(object_key(pv), pv),
            lambda pv: self._written_pvs.forget(object_key(pv)),
        )

    @property
    def _written_pvcs(self) -> Any:
        return self.performer.written[PERSISTENT_VOLUME_CLAIMS.plural]

    @property
    def _written_pvs(self) -> Any:
        return self.performer.written[PERSISTENT_VOLUMES.plural]

    # -- handlers ----------------------------------------------------------------------------

    def _added(self, pvc: JsonDict) -> None:
        self._written_pvcs.observe(object_key(pvc), pvc)
        self.queue.add(object_key(pvc))

    def _updated(self, old: JsonDict, new: JsonDict) -> None:
        key = object_key(new)
        self._written_pvcs.observe(key, new)
        recover = self.expand is not None and self.expand.recover
        if should_enqueue(
            old,
            new,
            recover=recover,
            modify=self.modify is not None,
            has_pv=lambda pv: self.pvs.store.get(pv) is not None,
        ):
            self.queue.add(key)

    def _deleted(self, pvc: JsonDict) -> None:
        key = object_key(pvc)
        self._written_pvcs.forget(key)
        self.memory.forget(key)
        self.queue.forget(key)

    def _class_seen(self, vac: JsonDict) -> None:
        for pvc in self.pvcs.store.by_index(BY_CLASS, name(vac)):
            st = c.modify_status(pvc)
            if st is not None and st.get("status") == n.MODIFY_PENDING:
                self.queue.add(object_key(pvc))

    # -- syncing -----------------------------------------------------------------------------

    def _objects(self, key: str) -> tuple[JsonDict | None, JsonDict | None]:
        pvc = self._written_pvcs.newest(key, self.pvcs.store.get(key))
        if pvc is None:
            return None, None
        volume = c.volume_name(pvc)
        pv = self._written_pvs.newest(volume, self.pvs.store.get(volume)) if volume else None
        return pvc, pv

    def _expand_recall(self, key: str, pvc: JsonDict | None) -> Recall:
        infeasible = pvc is not None and c.resize_status(pvc) == n.CONTROLLER_RESIZE_INFEASIBLE
        return self.memory.observe(key, expand_infeasible=infeasible, now=self.clock())

    def _modify_recall(self, key: str, pvc: JsonDict | None) -> Recall:
        infeasible = pvc is not None and infeasible_target(pvc)
        return self.memory.observe(key, modify_infeasible=infeasible, now=self.clock())

    def _note(self, key: str) -> Callable[[Any, BaseException | None], None]:
        return lambda call, err: self.memory.answered(key, call.method, call.request, err)

    def decide_expansion(self, key: str) -> Any:
        """The expansion plan of ``key`` from the caches (what the sync performs)."""
        assert self.expand is not None
        pvc, pv = self._objects(key)
        plan = decide_expansion(
            pvc, pv, self.expand, self._expand_recall(key, pvc), rfc3339(self.wall())
        )
        return watch_calls(plan, self._note(key))

    def decide_modification(self, key: str) -> Any:
        """The modification plan of ``key`` from the caches."""
        assert self.modify is not None and self.vacs is not None
        pvc, pv = self._objects(key)
        plan = decide_modification(
            pvc,
            pv,
            self.vacs.store.get,
            self.modify,
            self._modify_recall(key, pvc),
            rfc3339(self.wall()),
        )
        return watch_calls(plan, self._note(key))

    async def sync(self, key: str) -> Result:
        """Expansion, then modification, of one claim."""
        first: Result = True
        if self.expand is not None:
            first = await run_sync(lambda: self.decide_expansion(key), self.performer, key)
        second: Result = True
        if self.modify is not None:
            second = await run_sync(lambda: self.decide_modification(key), self.performer, key)
        return combine(first, second)

    async def run(self) -> None:
        """Run the workers until the queue shuts down."""
        log.info(
            "Starting external resizer",
            driver=self.ctx.driver.name,
            expansion=_mode(self.expand),
            modification=self.modify is not None,
        )
        await self.queue.run(self.sync, self.cfg.workers)


def _mode(expand: ExpandSettings | None) -> str:
    if expand is None:
        return "off"
    return "controller" if expand.controller_expansion else "node only"


async def _vac_served(ctx: ControllerContext) -> bool | None:
    """Whether storage.k8s.io/v1 VolumeAttributesClass is served (None: cannot tell)."""
    try:
        await ctx.port.list(VOLUME_ATTRIBUTES_CLASSES, limit=1)
    except ApiError as exc:
        if exc.not_found:
            return False
        log.error("Failed to check VolumeAttributesClass V1 API availability", error=str(exc))
        return None
    except Exception as exc:
        log.error("Failed to check VolumeAttributesClass V1 API availability", error=repr(exc))
        return None
    return True


async def _node_capabilities(ctx: ControllerContext, timeout: float) -> set[Any]:
    """NodeGetCapabilities; a driver without a Node service (Unimplemented) has none."""
    try:
        return set(await rpc.get_node_capabilities(ctx.conn, timeout))
    except grpc.RpcError as exc:
        if is_grpc_code(exc, grpc.StatusCode.UNIMPLEMENTED):
            return set()
        raise StartupError(
            f"failed to check if plugin supports node resize: {format_error(exc)}"
        ) from None
    except TimeoutError:
        raise StartupError(
            "failed to check if plugin supports node resize: context deadline exceeded"
        ) from None


def make_setup(cfg: ResizerConfig, gates: FeatureGates) -> Callable[[ControllerContext], Any]:
    """The ``setup`` for :func:`~csi_sidecars.controller.run_controller`."""

    async def setup(ctx: ControllerContext) -> Lead:
        driver = ctx.driver
        ctx.recorder.component = n.event_component(driver.name)
        expand: ExpandSettings | None = None
        snmw = driver.has_controller(RPC.SINGLE_NODE_MULTI_WRITER)
        if driver.has_controller(RPC.EXPAND_VOLUME):
            expand = ExpandSettings(
                driver.name,
                True,
                snmw,
                gates[n.GATE_ANNOTATE_FS_RESIZE],
                gates[n.GATE_RECOVER],
                cfg.handle_in_use,
            )
        else:
            node_caps = await _node_capabilities(ctx, cfg.timeout)
            if NODE_RPC.EXPAND_VOLUME in node_caps:
                log.info(
                    "The CSI driver supports node resize only, using trivial resizer to handle "
                    "resize requests"
                )
                expand = ExpandSettings(
                    driver.name,
                    False,
                    snmw,
                    gates[n.GATE_ANNOTATE_FS_RESIZE],
                    gates[n.GATE_RECOVER],
                    cfg.handle_in_use,
                )
            else:
                log.info(
                    "Resize not supported: CSI driver neither supports controller resize "
                    "nor node resize"
                )
        modify: ModifySettings | None = None
        vac_on = gates[n.GATE_VAC]
        if vac_on and not gates.set_explicitly(n.GATE_VAC):
            served = await _vac_served(ctx)
            if served is False:
                log.info(
                    "Disabling VolumeAttributesClass feature gate because the "
                    "VolumeAttributesClass v1 API is not available"
                )
                vac_on = False
        if not driver.has_controller(RPC.MODIFY_VOLUME):
            log.info("Modify not supported: CSI driver does not support controller modify")
        elif vac_on:
            modify = ModifySettings(driver.name, cfg.extra_modify_metadata)
        else:
            log.info("Modify supported, but the VolumeAttributesClass feature gate is off")
        if expand is None and modify is None:
            raise StartupError(
                f"CSI driver {driver.name} supports neither volume expansion (controller or "
                "node EXPAND_VOLUME) nor volume modification (controller MODIFY_VOLUME with the "
                "VolumeAttributesClass API); the resizer has nothing to do"
            )
        controller = ResizerController(ctx, cfg, expand, modify)
        return controller.run

    return setup
