"""Capacity tracking through the controller: fake kube, the in-process playground driver standing
in for three nodes with per-node capacity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import LossPolicy, connect
from csi_sidecars.kube.quantity import quantity_to_bytes
from csi_sidecars.kube.resources import (
    CSI_NODES,
    CSI_STORAGE_CAPACITIES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    STORAGE_CLASSES,
    JsonDict,
    Resource,
)
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.provisioner.command import run_provisioner
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.runtime.metrics import render
from tests.component.provisioner.harness import (
    DRIVER,
    Env,
    environment,
    poll,
    provisioner_config,
)

NS = "kube-system"
GIB = 1 << 30
ENV = {"NAMESPACE": NS}
MANAGED = {"csi.storage.k8s.io/drivername": DRIVER, "csi.storage.k8s.io/managed-by":
           "external-provisioner"}  # fmt: skip


@asynccontextmanager
async def three_nodes(tmp_path: Path) -> AsyncIterator[Env]:
    async with environment(
        tmp_path,
        known_nodes=["*"],
        capacity={"local": 4 * GIB},
        node_capacity={"node-2": {"local": 10 * GIB}},
        add_capabilities=["GET_CAPACITY"],
    ) as env:
        await env.add_node("node-2")
        await env.add_node("node-3")
        yield env


def capacities(env: Env) -> dict[tuple[str, str], JsonDict]:
    """Our objects by (class, node)."""
    out = {}
    for obj in env.kube.objects(CSI_STORAGE_CAPACITIES):
        node = obj["nodeTopology"]["matchLabels"].get(TOPOLOGY_KEY, "")
        out[(obj["storageClassName"], node)] = obj
    return out


def free(env: Env, sc: str, node: str) -> int | None:
    obj = capacities(env).get((sc, node))
    return None if obj is None else quantity_to_bytes(obj["capacity"])


async def start(env: Env, **kw: Any) -> None:
    kw.setdefault("capacity_ownerref_level", -1)
    kw.setdefault("capacity_poll_interval", 3600.0)  # only events may refresh
    await env.start(enable_capacity=True, environ=kw.pop("environ", ENV), **kw)


LATE = {"volumeBindingMode": "WaitForFirstConsumer", "parameters": {"kind": "local"}}


async def test_one_object_per_node_and_late_class(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        await env.add_class("now", parameters={"kind": "local"})  # Immediate: not tracked
        await start(env)
        await poll(lambda: len(capacities(env)) == 3, what="three objects")
        objs = capacities(env)
        assert set(objs) == {("late", "node-1"), ("late", "node-2"), ("late", "node-3")}
        node2 = objs[("late", "node-2")]
        assert node2["metadata"]["namespace"] == NS
        assert node2["metadata"]["name"].startswith("csisc-")
        assert node2["metadata"]["labels"] == MANAGED
        assert node2["capacity"] == "10Gi" and node2["maximumVolumeSize"] == "10Gi"
        assert "ownerReferences" not in node2["metadata"]
        assert free(env, "late", "node-1") == 4 * GIB
        calls = env.driver.calls_of("GetCapacity")
        assert {c.accessible_topology.segments[TOPOLOGY_KEY] for c in calls} == {
            "node-1", "node-2", "node-3"
        }  # fmt: skip
        assert all(dict(c.parameters) == {"kind": "local"} for c in calls)


async def test_immediate_classes_with_the_flag(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("now", parameters={"kind": "local"})
        await start(env, capacity_for_immediate_binding=True)
        await poll(lambda: len(capacities(env)) == 3, what="objects of the Immediate class")


async def test_capacity_follows_volumes_without_waiting_for_the_poll(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        await start(env)
        await poll(lambda: free(env, "late", "node-2") == 10 * GIB, what="node-2 object")
        pvc = await env.add_claim(
            "data", storage="3Gi", sc="late", annotations={strings.ANN_SELECTED_NODE: "node-2"}
        )
        pv = await poll(lambda: env.pv_of(pvc), what="PV")
        await poll(lambda: free(env, "late", "node-2") == 7 * GIB, what="node-2 shrinks")
        assert free(env, "late", "node-1") == 4 * GIB
        await env.bind("data")
        await env.kube.delete(PERSISTENT_VOLUME_CLAIMS, "data", "default")
        await env.release(pv["metadata"]["name"])
        await poll(lambda: free(env, "late", "node-2") == 10 * GIB, what="node-2 grows back")


async def test_objects_follow_classes_and_nodes(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        await start(env)
        await poll(lambda: len(capacities(env)) == 3, what="three objects")
        await env.add_class("other", volumeBindingMode="WaitForFirstConsumer")
        await poll(lambda: len(capacities(env)) == 6, what="objects of the new class")
        assert free(env, "other", "node-1") == 0  # no kind: nothing to offer
        await env.kube.delete(STORAGE_CLASSES, "other")
        await poll(lambda: len(capacities(env)) == 3, what="its objects gone")
        # A node loses the topology label: its segment and object go.
        node3 = env.kube.peek(NODES, "node-3")
        assert node3 is not None
        node3["metadata"]["labels"] = {}
        await env.kube.replace(NODES, node3)
        await poll(lambda: ("late", "node-3") not in capacities(env), what="node-3 object gone")
        await env.add_node("node-4")
        await poll(lambda: ("late", "node-4") in capacities(env), what="node-4 object")
        await env.kube.delete(CSI_NODES, "node-4")
        await poll(lambda: ("late", "node-4") not in capacities(env), what="node-4 object gone")


async def test_foreign_deleted_and_duplicate_objects_are_repaired(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        stray = {"metadata": {"name": "stray", "namespace": NS, "labels": dict(MANAGED)},
                 "storageClassName": "gone", "nodeTopology": {"matchLabels": {}},
                 "capacity": "1Gi"}  # fmt: skip
        dup = {"metadata": {"name": "dup-a", "namespace": NS, "labels": dict(MANAGED)},
               "storageClassName": "late", "capacity": "1",
               "nodeTopology": {"matchLabels": {TOPOLOGY_KEY: "node-1"}}}  # fmt: skip
        other = {**stray, "metadata": {"name": "not-ours", "namespace": NS, "labels": {}}}
        for body in (stray, dup, {**dup, "metadata": {**dup["metadata"], "name": "dup-b"}}, other):
            await env.kube.create(CSI_STORAGE_CAPACITIES, body, NS)
        await start(env)

        def repaired() -> bool:
            names = {o["metadata"]["name"] for o in env.kube.objects(CSI_STORAGE_CAPACITIES)}
            return "stray" not in names and len(names & {"dup-a", "dup-b"}) == 1

        await poll(repaired, what="stray and duplicate deleted")
        assert env.kube.peek(CSI_STORAGE_CAPACITIES, "not-ours", NS) is not None  # not managed
        # The adopted duplicate is brought up to date, not replaced.
        await poll(lambda: free(env, "late", "node-1") == 4 * GIB, what="adopted one updated")
        victim = capacities(env)[("late", "node-2")]["metadata"]["name"]
        await env.kube.delete(CSI_STORAGE_CAPACITIES, victim, NS)

        def recreated() -> bool:
            obj = capacities(env).get(("late", "node-2"))
            return obj is not None and obj["metadata"]["name"] != victim

        await poll(recreated, what="the deleted object created again")


async def test_one_queue_entry_per_item_however_many_events(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        ctrl = await env.start(enable_capacity=True, environ=ENV, capacity_ownerref_level=-1,
                               capacity_poll_interval=3600.0)  # fmt: skip
        await poll(lambda: len(capacities(env)) == 3, what="three objects")
        await env.idle()
        tracker = ctrl.capacity
        assert tracker is not None
        # Handlers run without yielding to the workers: 600 events, at most one entry per item.
        for _ in range(200):
            tracker.refresh(None, "late")
            tracker.queue.add(next(iter(tracker.items)).key)
        assert len(tracker.queue) <= 3


async def test_owner_is_the_deployment_at_level_2(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        await env.kube.create(
            _res("apps", "deployments", "Deployment"),
            {"metadata": {"name": "prov", "namespace": NS, "uid": "deploy-uid"}}, NS,
        )  # fmt: skip
        await env.kube.create(
            _res("apps", "replicasets", "ReplicaSet"),
            {"metadata": {"name": "prov-7d", "namespace": NS, "uid": "rs-uid", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prov",
                 "uid": "deploy-uid", "controller": True}]}}, NS,
        )  # fmt: skip
        await env.kube.create(
            _res("", "pods", "Pod"),
            {"metadata": {"name": "prov-7d-x", "namespace": NS, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "prov-7d",
                 "uid": "rs-uid", "controller": True}]}}, NS,
        )  # fmt: skip
        await start(env, capacity_ownerref_level=2, environ={**ENV, "POD_NAME": "prov-7d-x"})
        await poll(lambda: len(capacities(env)) == 3, what="objects")
        for obj in capacities(env).values():
            assert obj["metadata"]["ownerReferences"] == [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prov",
                 "uid": "deploy-uid", "controller": True}
            ]  # fmt: skip


def _res(group: str, plural: str, kind: str) -> Resource:
    return Resource(group, "v1", plural, True, kind)


async def test_metrics(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        await env.add_class("late", **LATE)
        ctrl = await env.start(enable_capacity=True, environ=ENV, capacity_ownerref_level=-1)
        await poll(lambda: len(capacities(env)) == 3, what="objects")
        await env.idle()
        text = render(ctrl.ctx.registry).decode()
        assert "csistoragecapacities_desired_goal 3.0" in text
        assert "csistoragecapacities_desired_current 3.0" in text
        assert "csistoragecapacities_obsolete 0.0" in text
        assert 'workqueue_adds_total{name="csistoragecapacity"}' in text


async def test_missing_environment_stops_the_start(tmp_path: Path) -> None:
    async with three_nodes(tmp_path) as env:
        for environ in ({}, {"NAMESPACE": NS}):
            conn = await connect(env.driver.endpoint, timeout=5, on_lost=LossPolicy.RECONNECT)
            try:
                config = provisioner_config(enable_capacity=True)
                code = await asyncio.wait_for(
                    run_provisioner(config, asyncio.Event(), port=env.kube, conn=conn,
                                    env=environ), 10)  # fmt: skip
            finally:
                await conn.close()
            assert code == 1
