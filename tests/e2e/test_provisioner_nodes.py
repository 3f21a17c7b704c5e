"""Distributed provisioning on the testbed: three nodes, a playground driver on each (its own
socket and state, ``--nodeid`` = the node), and three of our provisioners with
``--node-deployment`` and ``NODE_NAME``, next to the real scheduler and controller-manager.

Each WaitForFirstConsumer claim is provisioned on the node the scheduler picked, by that node's
provisioner, once; an Immediate claim is taken by exactly one node. With ``--enable-capacity``
each node publishes the capacity of its own segment (``managed-by:
external-provisioner-<node>``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from csi_sidecars.kube.quantity import quantity_to_bytes
from csi_sidecars.playground import binaries, objects
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, poll_until
from csi_sidecars.provisioner.decide import strings
from tests.e2e.conftest import require
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NS = "nodes"
NODES = ["node-1", "node-2", "node-3"]
MIB = 1 << 20


class Bed:
    def __init__(
        self, cp: ControlPlane, drivers: dict[str, ProvDriver], procs: list[ManagedProcess]
    ) -> None:
        self.cp = cp
        self.drivers = drivers
        self.procs = procs

    def holders(self, volume_name: str) -> list[str]:
        """The nodes whose driver has a volume called ``volume_name``."""
        return [n for n, d in self.drivers.items() if volume_name in d.volume_names()]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bed() -> AsyncIterator[Bed]:
    require(*binaries.CONTROL_PLANE_BINARIES)
    async with ControlPlane(nodes=3) as cp:
        await cp.create_namespace(NS)
        name = "nodes.csi.test"
        drivers = {
            node: await start_driver(cp, "--capacity=local=64Mi", node=node, name=name)
            for node in NODES
        }
        procs = []
        for node, drv in drivers.items():
            procs.append(
                await cp.start_sidecar(
                    "provisioner",
                    "--node-deployment",
                    "--node-deployment-base-delay=200ms",
                    "--node-deployment-max-delay=1s",
                    "--retry-interval-start=200ms",
                    "--enable-capacity",
                    "--capacity-ownerref-level=-1",
                    driver=drv.testbed_driver,
                    env={"NODE_NAME": node, "NAMESPACE": NS},
                )
            )
        try:
            yield Bed(cp, drivers, procs)
        finally:
            for proc in procs:
                await proc.stop(timeout=10)
                if proc.returncode not in (0, None):
                    print(f"----- provisioner exit {proc.returncode} -----\n{proc.log_tail(60)}")
            for drv in drivers.values():
                await stop_driver(cp, drv)


async def test_each_claim_is_provisioned_by_its_nodes_provisioner_once(bed: Bed) -> None:
    api = bed.cp.admin
    sc = await make_class(api, "nodes.csi.test", binding_mode="WaitForFirstConsumer",
                          parameters={"kind": "local"})  # fmt: skip
    for node in NODES:
        await api.create(claims_path(NS), objects.pvc(f"data-{node}", sc, size="4Mi"))
        pod = objects.pod(f"app-{node}", [f"data-{node}"])
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
        await api.create(f"/api/v1/namespaces/{NS}/pods", pod)
    for node in NODES:
        pvc = await wait_bound(api, NS, f"data-{node}")
        assert pvc["metadata"]["annotations"][strings.ANN_SELECTED_NODE] == node
        volume = pvc["spec"]["volumeName"]
        assert bed.holders(volume) == [node]
        pv = await api.get(f"/api/v1/persistentvolumes/{volume}")
        identity = pv["spec"]["csi"]["volumeAttributes"][strings.PROVISIONER_IDENTITY_KEY]
        assert identity.endswith(f"-nodes.csi.test-{node}")


async def test_an_immediate_claim_is_taken_by_exactly_one_node(bed: Bed) -> None:
    api = bed.cp.admin
    sc = await make_class(api, "nodes.csi.test", parameters={"kind": "local"})
    await api.create(claims_path(NS), objects.pvc("now", sc, size="2Mi"))
    pvc = await wait_bound(api, NS, "now")
    owner = pvc["metadata"]["annotations"][strings.ANN_SELECTED_NODE]
    assert owner in NODES
    assert bed.holders(pvc["spec"]["volumeName"]) == [owner]


async def test_each_node_publishes_its_own_capacity(bed: Bed) -> None:
    api = bed.cp.admin
    sc = await make_class(api, "nodes.csi.test", binding_mode="WaitForFirstConsumer",
                          parameters={"kind": "local"})  # fmt: skip
    path = f"/apis/storage.k8s.io/v1/namespaces/{NS}/csistoragecapacities"

    async def published() -> dict[str, tuple[str, int]] | None:
        out = {}
        for obj in (await api.get(path))["items"]:
            if obj["storageClassName"] == sc:
                node = obj["nodeTopology"]["matchLabels"][objects.TOPOLOGY_KEY]
                managed = obj["metadata"]["labels"]["csi.storage.k8s.io/managed-by"]
                out[node] = (managed, quantity_to_bytes(obj["capacity"]))
        return out if len(out) == 3 else None

    def expected_free(node: str) -> int:
        # 64Mi less what this node's own driver holds.
        return 64 * MIB - sum(v.capacity_bytes for v in bed.drivers[node].volumes().values())

    async def settled() -> dict[str, tuple[str, int]] | None:
        found = await published()
        if found is None or any(free != expected_free(n) for n, (_, free) in found.items()):
            return None
        return found

    found = await poll_until(settled, 30, "three capacity objects, current", interval=0.3)
    assert {n: m for n, (m, _) in found.items()} == {n: f"external-provisioner-{n}" for n in NODES}
