"""cluster-driver-registrar with --owner-cluster-role against a fake driver and the kube fake."""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import CLUSTER_ROLES, CSI_DRIVERS
from csi_sidecars.registrar.cluster import ClusterConfig, run_cluster_registrar
from csi_sidecars.runtime import logging as rlog
from tests.support.fake_driver import FakeDriver
from tests.support.poll import poll

NAME = "fake.csi.example.com"
ROLE = "csi-cluster-driver-registrar"


@pytest.fixture
def socket_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="cdo-")
    try:
        yield f"{d}/csi.sock"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def driver(socket_path: str) -> AsyncIterator[FakeDriver]:
    drv = FakeDriver(socket_path)
    drv.state.controller_caps = [csi_pb2.ControllerServiceCapability.RPC.PUBLISH_UNPUBLISH_VOLUME]
    await drv.start()
    try:
        yield drv
    finally:
        await drv.stop()


async def test_the_csidriver_is_owned_by_the_cluster_role(
    driver: FakeDriver, socket_path: str
) -> None:
    kube = FakeKube()
    role = await kube.create(
        CLUSTER_ROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": ROLE},
            "rules": [],
        },
    )
    config = ClusterConfig(csi_address=socket_path, owner_cluster_role=ROLE, reapply_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(run_cluster_registrar(config, KubeOptions(), stop, port=kube))
    try:
        await poll(lambda: kube.peek(CSI_DRIVERS, NAME) is not None, what="the CSIDriver")
        obj = kube.peek(CSI_DRIVERS, NAME)
        assert obj is not None
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "name": ROLE,
                "uid": role["metadata"]["uid"],
            }
        ]
        # someone drops the reference: it comes back at the next check
        await kube.patch(CSI_DRIVERS, NAME, {"metadata": {"ownerReferences": None}})

        def owned() -> bool:
            now = kube.peek(CSI_DRIVERS, NAME)
            return bool(now and now["metadata"].get("ownerReferences"))

        await poll(owned, what="the ownerReference restored")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_a_missing_owner_is_a_clear_start_up_error(
    driver: FakeDriver, socket_path: str
) -> None:
    kube = FakeKube()
    config = ClusterConfig(csi_address=socket_path, owner_cluster_role=ROLE)
    logs = io.StringIO()
    rlog.configure(0, "text", stream=logs)
    try:
        code = await asyncio.wait_for(
            run_cluster_registrar(config, KubeOptions(), asyncio.Event(), port=kube), 10
        )
    finally:
        rlog.configure()
    assert code == 1
    assert kube.peek(CSI_DRIVERS, NAME) is None
    assert f"Cannot read the owner ClusterRole '{ROLE}' of --owner-cluster-role: 404" in (
        logs.getvalue()
    )
