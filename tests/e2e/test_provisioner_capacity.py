"""Capacity tracking on the testbed: three nodes, the playground driver standing in for all of
them with per-node capacity, our provisioner with ``--enable-capacity``, the real scheduler.

The CSIDriver has ``storageCapacity: true``, so kube-scheduler places WaitForFirstConsumer pods
only where a CSIStorageCapacity object says the claim fits: a pod lands on the node with room,
a claim bigger than any node stays Pending with the scheduler's message, and the objects follow
the volumes (the poll interval is 10 minutes: only the refresh after CreateVolume explains the
change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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

NS = "capacity"
MIB = 1 << 20
NODES = ["node-1", "node-2", "node-3"]
CAPACITIES = f"/apis/storage.k8s.io/v1/namespaces/{NS}/csistoragecapacities"


class Bed:
    """A three-node control plane, the driver and our provisioner."""

    def __init__(self, cp: ControlPlane, drv: ProvDriver, proc: ManagedProcess) -> None:
        self.cp = cp
        self.drv = drv
        self.proc = proc


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bed() -> AsyncIterator[Bed]:
    require(*binaries.CONTROL_PLANE_BINARIES)
    async with ControlPlane(nodes=3) as cp:
        await cp.create_namespace(NS)
        drv = await start_driver(
            cp,
            "--capacity=local=16Mi",
            "--node-capacity=node-2:local=64Mi",
            prefix="cap",
            nodes=NODES,
            storage_capacity=True,
        )
        proc = await cp.start_sidecar(
            "provisioner",
            "--enable-capacity",
            "--capacity-ownerref-level=-1",
            "--capacity-poll-interval=10m",
            "--retry-interval-start=200ms",
            driver=drv.testbed_driver,
            env={"NAMESPACE": NS},
        )
        try:
            yield Bed(cp, drv, proc)
        finally:
            await proc.stop(timeout=10)
            if proc.returncode not in (0, None):
                print(f"----- provisioner exit {proc.returncode} -----\n{proc.log_tail(80)}")
            await stop_driver(cp, drv)


async def _free(bed: Bed, sc: str) -> dict[str, int]:
    listed = await bed.cp.admin.get(CAPACITIES)
    out = {}
    for obj in listed["items"]:
        if obj["storageClassName"] == sc:
            node = obj["nodeTopology"]["matchLabels"][objects.TOPOLOGY_KEY]
            out[node] = quantity_to_bytes(obj["capacity"])
    return out


async def _wait_free(bed: Bed, sc: str, expected: dict[str, int]) -> None:
    async def matches() -> bool:
        return await _free(bed, sc) == expected

    try:
        await poll_until(matches, 30, f"capacities {expected}", interval=0.3)
    except TimeoutError:
        raise AssertionError(f"capacities are {await _free(bed, sc)}, not {expected}") from None


async def _claim_and_pod(bed: Bed, ns: str, name: str, sc: str, size: str) -> None:
    api = bed.cp.admin
    await api.create(claims_path(ns), objects.pvc(name, sc, size=size))
    await api.create(f"/api/v1/namespaces/{ns}/pods", objects.pod(f"{name}-pod", [name]))


async def test_objects_per_node_and_the_pod_lands_where_there_is_room(bed: Bed) -> None:
    api = bed.cp.admin
    sc = await make_class(api, bed.drv.name, binding_mode="WaitForFirstConsumer",
                          parameters={"kind": "local"})  # fmt: skip
    await _wait_free(bed, sc, {"node-1": 16 * MIB, "node-2": 64 * MIB, "node-3": 16 * MIB})
    await _claim_and_pod(bed, NS, "big", sc, "40Mi")
    pvc = await wait_bound(api, NS, "big")
    assert pvc["metadata"]["annotations"][strings.ANN_SELECTED_NODE] == "node-2"

    async def placed() -> Any:
        pod = await api.get(f"/api/v1/namespaces/{NS}/pods/big-pod")
        return pod["spec"].get("nodeName")

    assert await poll_until(placed, 30, "the pod to be placed") == "node-2"
    volume = next(v for v in bed.drv.volumes().values() if v.name == pvc["spec"]["volumeName"])
    assert volume.topology == [{objects.TOPOLOGY_KEY: "node-2"}]
    # The object of node-2 follows the volume long before the 10 minute poll.
    await _wait_free(bed, sc, {"node-1": 16 * MIB, "node-2": 24 * MIB, "node-3": 16 * MIB})


async def test_a_claim_bigger_than_any_node_stays_pending(bed: Bed) -> None:
    api = bed.cp.admin
    sc = await make_class(api, bed.drv.name, binding_mode="WaitForFirstConsumer",
                          parameters={"kind": "local"})  # fmt: skip
    await _wait_free(bed, sc, {"node-1": 16 * MIB, "node-2": 24 * MIB, "node-3": 16 * MIB})
    await _claim_and_pod(bed, NS, "huge", sc, "100Mi")

    async def unschedulable() -> str | None:
        # The scheduler may first report the claim as not found (its informer has not seen
        # it yet) and retries; wait for the verdict on storage.
        pod = await api.get(f"/api/v1/namespaces/{NS}/pods/huge-pod")
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                message = str(cond.get("message", ""))
                return message if "did not have enough free storage" in message else None
        return None

    message = await poll_until(unschedulable, 90, "the scheduler's storage verdict", interval=0.5)
    assert "did not have enough free storage" in message
    pvc = await api.get(f"{claims_path(NS)}/huge")
    assert pvc["status"]["phase"] == "Pending"
    assert strings.ANN_SELECTED_NODE not in (pvc["metadata"].get("annotations") or {})
    assert not [v for v in bed.drv.volumes().values() if v.capacity_bytes == 100 * MIB]
