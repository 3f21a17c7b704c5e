"""Distributed provisioning through the controller: one fake kube, three nodes, each with its own
in-process playground driver and its own provisioner (``--node-deployment``, ``NODE_NAME``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, LossPolicy, connect
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.quantity import quantity_to_bytes
from csi_sidecars.kube.resources import (
    CSI_NODES,
    LEASES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    JsonDict,
)
from csi_sidecars.playground.driver import Driver, run_driver
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.provisioner.command import run_provisioner
from csi_sidecars.provisioner.controller import ProvisionerController
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.journal import journal_name
from tests.component.provisioner.harness import (
    DRIVER,
    NS,
    claim,
    poll,
    provisioner_config,
    storage_class,
)

NODE_NAMES = ("node-1", "node-2", "node-3")
SEL = strings.ANN_SELECTED_NODE


@dataclass
class NodeRun:
    name: str
    driver: Driver
    conn: Connection | None = None
    task: asyncio.Task[int] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ctrl: ProvisionerController | None = None

    def created(self) -> list[str]:
        return [c.name for c in self.driver.calls_of("CreateVolume")]


@dataclass
class Cluster:
    kube: FakeKube
    nodes: dict[str, NodeRun]

    def pvc(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUME_CLAIMS, name, NS)

    async def add_claim(self, name: str, **kw: Any) -> JsonDict:
        body = claim(name, **kw)
        body["metadata"]["uid"] = str(uuid.uuid4())
        return await self.kube.create(PERSISTENT_VOLUME_CLAIMS, body, NS)

    def pv_of(self, pvc: JsonDict) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUMES, f"pvc-{pvc['metadata']['uid']}")


async def _start(run: NodeRun, kube: FakeKube, **overrides: Any) -> None:
    env = overrides.pop("environ", {"NODE_NAME": run.name})
    config = provisioner_config(node_deployment=True, **overrides)
    run.conn = await connect(run.driver.endpoint, timeout=5, on_lost=LossPolicy.RECONNECT)
    declared: list[ProvisionerController] = []
    run.task = asyncio.create_task(
        run_provisioner(
            config, run.stop, port=kube, conn=run.conn, on_setup=declared.append, env=env
        )
    )
    task = run.task

    def ready() -> ProvisionerController | None:
        assert not task.done(), f"provisioner of {run.name} exited with {task.result()}"
        return declared[0] if declared else None

    run.ctrl = await poll(ready, what=f"the provisioner of {run.name}")


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, capacities: dict[str, str] | None = None, **overrides: Any
) -> AsyncIterator[Cluster]:
    kube = FakeKube()
    async with contextlib.AsyncExitStack() as stack:
        runs = {}
        for node in NODE_NAMES:
            options: dict[str, Any] = {"driver_name": DRIVER, "node_id": node}
            if capacities:
                options["capacity"] = {"local": quantity_to_bytes(capacities[node])}
            drv = await stack.enter_async_context(run_driver(tmp_path / node, **options))
            runs[node] = NodeRun(node, drv)
            await kube.create(NODES, {"metadata": {"name": node, "labels": {TOPOLOGY_KEY: node}}})
            drivers = [{"name": DRIVER, "nodeID": node, "topologyKeys": [TOPOLOGY_KEY]}]
            await kube.create(CSI_NODES, {"metadata": {"name": node}, "spec": {"drivers": drivers}})
        try:
            for run in runs.values():
                await _start(run, kube, **overrides)
            yield Cluster(kube, runs)
        finally:
            for run in runs.values():
                if run.task is not None:
                    run.stop.set()
                    assert await asyncio.wait_for(run.task, 20) == 0
                if run.conn is not None:
                    await run.conn.close()


async def test_each_claim_is_provisioned_by_its_node_once(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        await c.kube.create(
            STORAGE_CLASSES, storage_class(volumeBindingMode="WaitForFirstConsumer")
        )
        claims = {node: await c.add_claim(f"data-{node}", annotations={SEL: node})
                  for node in NODE_NAMES}  # fmt: skip
        for node, pvc in claims.items():
            pv = await poll(lambda p=pvc: c.pv_of(p), what=f"PV of {node}")
            assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
                {"matchExpressions": [{"key": TOPOLOGY_KEY, "operator": "In", "values": [node]}]}
            ]
            attrs = pv["spec"]["csi"]["volumeAttributes"]
            assert attrs[strings.PROVISIONER_IDENTITY_KEY].endswith(f"-{node}")
        for node, run in c.nodes.items():
            assert run.created() == [f"pvc-{claims[node]['metadata']['uid']}"]
            # Each node keeps a journal of its own.
            assert c.kube.peek(LEASES, journal_name(DRIVER, node), NS) is not None


async def test_an_immediate_claim_is_owned_by_one_node(tmp_path: Path) -> None:
    async with cluster(tmp_path, node_deployment_base_delay=0.05,
                       node_deployment_max_delay=0.2) as c:  # fmt: skip
        await c.kube.create(STORAGE_CLASSES, storage_class())
        pvc = await c.add_claim("now")
        pv = await poll(lambda: c.pv_of(pvc), what="PV")
        current = c.pvc("now")
        assert current is not None
        owner = current["metadata"]["annotations"][SEL]
        assert owner in NODE_NAMES
        name = f"pvc-{pvc['metadata']['uid']}"
        assert {n: r.created() for n, r in c.nodes.items()} == {
            n: [name] if n == owner else [] for n in NODE_NAMES
        }
        assert pv["spec"]["csi"]["volumeAttributes"][strings.PROVISIONER_IDENTITY_KEY].endswith(
            owner
        )


async def test_the_node_with_room_wins(tmp_path: Path) -> None:
    sizes = {"node-1": "1Mi", "node-2": "1Gi", "node-3": "2Mi"}
    async with cluster(tmp_path, capacities=sizes, node_deployment_base_delay=0.05,
                       node_deployment_max_delay=0.2) as c:  # fmt: skip
        await c.kube.create(STORAGE_CLASSES, storage_class(parameters={"kind": "local"}))
        pvc = await c.add_claim("big", storage="100Mi")
        await poll(lambda: c.pv_of(pvc), what="PV")
        current = c.pvc("big")
        assert current is not None and current["metadata"]["annotations"][SEL] == "node-2"
        assert not c.nodes["node-1"].created() and not c.nodes["node-3"].created()


async def test_immediate_claims_are_left_alone_without_immediate_binding(tmp_path: Path) -> None:
    async with cluster(tmp_path, node_deployment_immediate_binding=False,
                       node_deployment_base_delay=0.01) as c:  # fmt: skip
        await c.kube.create(STORAGE_CLASSES, storage_class())
        await c.add_claim("now")
        for run in c.nodes.values():
            ctrl = run.ctrl
            assert ctrl is not None
            await poll(ctrl.idle, what="idle")
        current = c.pvc("now")
        assert current is not None and SEL not in current["metadata"]["annotations"]
        assert not any(r.created() for r in c.nodes.values())


async def test_only_the_owning_node_deletes(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        await c.kube.create(
            STORAGE_CLASSES, storage_class(volumeBindingMode="WaitForFirstConsumer")
        )
        pvc = await c.add_claim("data", annotations={SEL: "node-2"})
        pv = await poll(lambda: c.pv_of(pvc), what="PV")
        await c.kube.patch(PERSISTENT_VOLUMES, pv["metadata"]["name"],
                           {"status": {"phase": "Released"}}, subresource="status")  # fmt: skip
        await poll(lambda: c.kube.peek(PERSISTENT_VOLUMES, pv["metadata"]["name"]) is None,
                   what="PV deleted")  # fmt: skip
        deletes = {n: len(r.driver.calls_of("DeleteVolume")) for n, r in c.nodes.items()}
        assert deletes == {"node-1": 0, "node-2": 1, "node-3": 0}


async def test_missing_node_name_stops_the_start(tmp_path: Path) -> None:
    kube = FakeKube()
    async with run_driver(tmp_path, driver_name=DRIVER) as drv:
        conn = await connect(drv.endpoint, timeout=5, on_lost=LossPolicy.RECONNECT)
        try:
            code = await asyncio.wait_for(
                run_provisioner(provisioner_config(node_deployment=True), asyncio.Event(),
                                port=kube, conn=conn, env={}), 10)  # fmt: skip
        finally:
            await conn.close()
        assert code == 1
