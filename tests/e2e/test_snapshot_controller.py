"""csi-sidecars snapshot-controller on the testbed, next to the Go csi-snapshotter.

Our controller runs as a subprocess through the CLI with the snapshot-controller RBAC identity
(``--leader-election``, metrics endpoint); volumes come from our provisioner and a playground
driver of the module's own; the Go csi-snapshotter v8.6 talks to the driver. Every snapshot the
controller handles is real: the driver's state shows the backend snapshot come and go.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from tests.e2e.conftest import require
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    events_of,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SNAP_API = "/apis/snapshot.storage.k8s.io/v1"
VSCLASSES = f"{SNAP_API}/volumesnapshotclasses"
VSCS = f"{SNAP_API}/volumesnapshotcontents"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
PVC_FINALIZER = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
VSC_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"


class Running:
    """The module's driver, provisioner, Go csi-snapshotter and our snapshot-controller."""

    def __init__(self, driver: ProvDriver, controller: ManagedProcess, port: int) -> None:
        self.driver = driver
        self.controller = controller
        self.port = port

    def backend_snapshots(self) -> set[str]:
        return set(load_state(self.driver.statedir).snapshots)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(control_plane: ControlPlane) -> AsyncIterator[Running]:
    require("csi-snapshotter")
    drv = await start_driver(control_plane, prefix="snap")
    procs = [
        await control_plane.start_sidecar(
            "provisioner", "--timeout=10s", "--retry-interval-max=2s", driver=drv.testbed_driver
        ),
        await control_plane.start_sidecar(
            "snapshotter",
            "--timeout=10s",
            "--retry-interval-max=2s",
            implementation="go",
            driver=drv.testbed_driver,
        ),
    ]
    port = free_port()
    controller = await control_plane.start_sidecar(
        "snapshot-controller",
        "--leader-election",
        "--leader-election-namespace=default",
        "--retry-interval-start=200ms",
        "--retry-interval-max=2s",
        "--retry-crd-interval-max=10s",
        f"--http-endpoint=127.0.0.1:{port}",
    )
    procs.append(controller)
    try:
        yield Running(drv, controller, port)
    finally:
        for proc in reversed(procs):
            await proc.stop(timeout=10)
            if proc.returncode not in (0, -15):
                print(f"----- {proc.name} exit {proc.returncode} -----\n{proc.log_tail(80)}")
        await stop_driver(control_plane, drv)


def snapshots_path(namespace: str) -> str:
    return f"{SNAP_API}/namespaces/{namespace}/volumesnapshots"


async def make_snapshot_class(
    api: RawApi, driver: str, *, policy: str = "Delete", default: bool = False
) -> str:
    name = f"vsc-{uuid.uuid4().hex[:8]}"
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"snapshot.storage.kubernetes.io/is-default-class": "true"}
    await api.create(
        VSCLASSES,
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": meta,
            "driver": driver,
            "deletionPolicy": policy,
        },
    )
    return name


def snapshot(name: str, claim: str, cls: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim}}
    if cls is not None:
        spec["volumeSnapshotClassName"] = cls
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": spec,
    }


async def bound_claim(api: RawApi, namespace: str, driver: str, name: str = "data") -> Any:
    from csi_sidecars.playground import objects

    sc = await make_class(api, driver)
    await api.create(claims_path(namespace), objects.pvc(name, sc, size="2Mi"))
    return await wait_bound(api, namespace, name)


async def wait_ready(api: RawApi, namespace: str, name: str) -> Any:
    return await api.wait_for(
        f"{snapshots_path(namespace)}/{name}",
        lambda o: o.get("status", {}).get("readyToUse") is True,
        timeout=60,
        what=f"snapshot {name} ready",
    )


async def claim_finalizers(api: RawApi, namespace: str, name: str) -> list[str]:
    claim = await api.get(f"{claims_path(namespace)}/{name}")
    return list(claim["metadata"].get("finalizers") or [])


async def test_dynamic_snapshot_with_the_default_class_then_delete(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    cls = await make_snapshot_class(api, drv.name, default=True)
    try:
        claim = await bound_claim(api, namespace, drv.name)
        before = running.backend_snapshots()
        await api.create(snapshots_path(namespace), snapshot("snap", "data"))
        vs = await wait_ready(api, namespace, "snap")
        assert vs["spec"]["volumeSnapshotClassName"] == cls
        content_name = f"snapcontent-{vs['metadata']['uid']}"
        assert vs["status"]["boundVolumeSnapshotContentName"] == content_name
        assert vs["status"]["restoreSize"]
        assert vs["status"]["creationTime"]
        content = await api.get(f"{VSCS}/{content_name}")
        assert VSC_FINALIZER in content["metadata"]["finalizers"]
        assert content["spec"]["driver"] == drv.name
        assert content["spec"]["deletionPolicy"] == "Delete"
        assert content["spec"]["sourceVolumeMode"] == "Filesystem"
        pv = await api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
        assert content["spec"]["source"]["volumeHandle"] == pv["spec"]["csi"]["volumeHandle"]
        new = running.backend_snapshots() - before
        assert new == {content["status"]["snapshotHandle"]}
        for reason in ("CreatingSnapshot", "SnapshotCreated", "SnapshotReady"):
            assert await events_of(api, namespace, "snap", reason), reason

        async def released() -> bool:
            return PVC_FINALIZER not in await claim_finalizers(api, namespace, "data")

        await poll_until(released, 30, "the claim's protection to go once the snapshot is ready")
        await api.delete(f"{snapshots_path(namespace)}/snap")
        await api.wait_deleted(f"{snapshots_path(namespace)}/snap", timeout=60)
        await api.wait_deleted(f"{VSCS}/{content_name}", timeout=60)
        assert running.backend_snapshots() == before
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_retain_keeps_content_and_backend_snapshot(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    cls = await make_snapshot_class(api, drv.name, policy="Retain")
    try:
        await bound_claim(api, namespace, drv.name)
        await api.create(snapshots_path(namespace), snapshot("kept", "data", cls))
        vs = await wait_ready(api, namespace, "kept")
        content_name = vs["status"]["boundVolumeSnapshotContentName"]
        content = await api.get(f"{VSCS}/{content_name}")
        handle = content["status"]["snapshotHandle"]
        await api.delete(f"{snapshots_path(namespace)}/kept")
        await api.wait_deleted(f"{snapshots_path(namespace)}/kept", timeout=60)
        content = await api.get(f"{VSCS}/{content_name}")
        assert content["metadata"]["annotations"][BEING_DELETED] == "yes"
        assert not content["metadata"].get("deletionTimestamp")
        assert handle in running.backend_snapshots()
        # clean up: Delete policy, then the sidecar deletes the backend snapshot
        await api.patch(f"{VSCS}/{content_name}", {"spec": {"deletionPolicy": "Delete"}})
        await api.delete(f"{VSCS}/{content_name}")
        await api.wait_deleted(f"{VSCS}/{content_name}", timeout=60)
        assert handle not in running.backend_snapshots()
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_snapshot_of_a_missing_claim_is_an_error_not_a_crash(
    api: RawApi, namespace: str, running: Running
) -> None:
    cls = await make_snapshot_class(api, running.driver.name)
    try:
        await api.create(snapshots_path(namespace), snapshot("orphan", "no-such-claim", cls))
        vs = await api.wait_for(
            f"{snapshots_path(namespace)}/orphan",
            lambda o: bool(o.get("status", {}).get("error")),
            timeout=30,
            what="an error on the snapshot",
        )
        assert "no-such-claim" in vs["status"]["error"]["message"]
        assert vs["status"]["readyToUse"] is False
        assert await events_of(api, namespace, "orphan", "SnapshotContentCreationFailed")
        assert running.controller.running
        contents = await api.get(VSCS)
        assert f"snapcontent-{vs['metadata']['uid']}" not in {
            c["metadata"]["name"] for c in contents["items"]
        }
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_lease_metrics_and_health(api: RawApi, running: Running) -> None:
    lease = await api.get(f"{LEASES}/snapshot-controller-leader")
    assert lease["spec"]["holderIdentity"]
    base = f"http://127.0.0.1:{running.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/healthz/leader-election") as resp:
            assert resp.status == 200
        async with s.get(f"{base}/metrics") as resp:
            text = await resp.text()
    assert "snapshot_controller_operation_total_seconds" in text
    assert 'workqueue_depth{name="snapshot-controller-snapshot"}' in text
