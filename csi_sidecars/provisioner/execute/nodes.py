"""Distributed provisioning, the I/O half: owning claims for this node.

:meth:`NodeOwnership.claim` runs before a claim is provisioned (:mod:`.provision`) and says
whether this node's provisioner handles it (:func:`~..decide.nodes.check_node`). For an
``Immediate`` claim no node has taken yet it races, without holding a worker: the first sync
waits the jittered delay (the queue's ``After``); an update of the claim meanwhile (another node
took it) ends the wait early; then GetCapacity for the claim's request on this node (not enough
room: look again after ``--node-deployment-max-delay``; a failed check does not stop the
attempt, as in Go), then the PVC Update writing this node as the selected node. A lost race
(conflict) waits a longer delay; success or someone else's win forgets the claim's delays.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import JsonDict, annotations_of, meta, name, namespace, uid
from csi_sidecars.kube.workqueue import After, Result
from csi_sidecars.provisioner.decide import nodes, strings
from csi_sidecars.provisioner.decide.claims import update_claim
from csi_sidecars.provisioner.decide.states import ProvisionError
from csi_sidecars.provisioner.decide.topology import accessibility_requirements
from csi_sidecars.provisioner.execute.context import DONE, Context
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

SELECTED = "selected this node"


@dataclass(frozen=True)
class NodeSettings:
    """This node, as ``NODE_NAME`` and the driver's ``NodeGetInfo`` describe it.

    Attributes:
        name: the Node's name.
        node_id: the driver's node ID.
        segments: the driver's accessible topology (None: it reports none).
        immediate_binding: ``--node-deployment-immediate-binding``.
        base_delay: ``--node-deployment-base-delay`` (seconds).
        max_delay: ``--node-deployment-max-delay`` (seconds).
    """

    name: str
    node_id: str
    segments: Mapping[str, str] | None = None
    immediate_binding: bool = True
    base_delay: float = 20.0
    max_delay: float = 60.0


class NodeOwnership:
    """Which claims this node's provisioner handles, and the race for Immediate ones."""

    def __init__(
        self,
        ctx: Context,
        settings: NodeSettings,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.rand = rand
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}

    def _next_delay(self, pvc_uid: str) -> float:
        failures = self._failures.get(pvc_uid, 0)
        self._failures[pvc_uid] = failures + 1
        s = self.settings
        return nodes.owner_delay(failures, s.base_delay, s.max_delay, self.rand())

    def forget(self, pvc_uid: str) -> None:
        """Drop the delays of a claim (won, lost, or gone)."""
        self._failures.pop(pvc_uid, None)
        self._due.pop(pvc_uid, None)

    async def claim(self, pvc: JsonDict, sc: Mapping[str, Any] | None) -> Result | None:
        """None when this node provisions ``pvc`` now; otherwise the sync's result."""
        s = self.settings
        check = nodes.check_node(pvc, sc, s.name, s.immediate_binding)
        if check == nodes.NodeCheck.MINE:
            self.forget(uid(pvc))
            return None
        if check == nodes.NodeCheck.OTHER or sc is None:
            self.forget(uid(pvc))
            self.ctx.pins.drop(uid(pvc))
            return DONE
        if not self._admits(pvc, sc):
            return DONE
        pvc_uid, now = uid(pvc), self.ctx.monotonic()
        due = self._due.get(pvc_uid)
        if due is None:
            due = now + self._next_delay(pvc_uid)
            self._due[pvc_uid] = due
        if now < due:
            return After(due - now)
        self._due.pop(pvc_uid, None)
        return await self._become_owner(pvc, sc)

    def _admits(self, pvc: Mapping[str, Any], sc: Mapping[str, Any]) -> bool:
        """Whether the StorageClass ``allowedTopologies`` admit this node."""
        ctx = self.ctx
        if not sc.get("allowedTopologies") or not ctx.opts.supports_topology:
            return True
        try:
            accessibility_requirements(
                driver=ctx.opts.driver_name,
                pvc_uid=uid(pvc),
                pvc_name=name(pvc),
                allowed_topologies=sc.get("allowedTopologies"),
                selected_node=self.settings.name,
                strict=ctx.settings.strict_topology,
                immediate=ctx.settings.immediate_topology,
                csinodes=ctx.caches.csinode_map,
                nodes=ctx.caches.node_map,
            )
        except ProvisionError as err:
            if rlog.v(5):
                log.info("Ignoring claim: allowed topologies exclude this node", error=str(err))
            return False
        return True

    async def _has_capacity(self, pvc: Mapping[str, Any], sc: Mapping[str, Any]) -> bool:
        """Go's ``checkCapacity``: GetCapacity for the request on this node (errors: True)."""
        ctx = self.ctx
        ann = {**annotations_of(pvc), strings.ANN_SELECTED_NODE: self.settings.name}
        here = {**pvc, "metadata": {**meta(pvc), "annotations": ann}}
        try:
            plan, req = await ctx.build_request(here, sc)
        except ProvisionError as err:
            log.info("Capacity check failed, trying to own the claim anyway", error=str(err))
            return True
        if plan.required_bytes == 0:
            return True
        requisite: list[csi_pb2.Topology | None] = [*req.accessibility_requirements.requisite] or [
            None
        ]
        for topology in requisite:
            query = csi_pb2.GetCapacityRequest(
                volume_capabilities=list(req.volume_capabilities), parameters=dict(req.parameters)
            )
            if topology is not None:
                query.accessible_topology.CopyFrom(topology)
            try:
                resp = await ctx.csi.GetCapacity(query, timeout=ctx.settings.timeout)
            except Exception as exc:
                log.info("Capacity check failed, trying to own the claim anyway", error=str(exc))
                return True
            if plan.required_bytes <= resp.available_capacity:
                return True
        return False

    async def _become_owner(self, pvc: JsonDict, sc: Mapping[str, Any]) -> Result:
        ctx, node = self.ctx, self.settings.name
        ref = f"{namespace(pvc)}/{name(pvc)}"
        if not await self._has_capacity(pvc, sc):
            if rlog.v(5):
                log.info("Not enough capacity on this node for claim", claim=ref)
            return After(self.settings.max_delay)
        change = update_claim(
            pvc, lambda c: nodes.with_selected_node(c, node), done=a.Done(SELECTED)
        )
        outcome = await ctx.perform(change)
        if isinstance(outcome, a.Done):
            if outcome.reason == SELECTED:
                log.info("Selected this node for claim", claim=ref, node=node)
            self.forget(uid(pvc))  # ours now, or another node's
            return DONE
        # Lost a race or the write failed: try again after a longer delay.
        delay = self._next_delay(uid(pvc))
        self._due[uid(pvc)] = ctx.monotonic() + delay
        log.info("Could not select this node for claim", claim=ref, error=outcome.reason)
        return After(max(delay, 0.001))
