"""``csi-sidecars snapshotter`` on the testbed with the Go snapshot-controller and our driver.

Dynamic snapshots from a claim, a pre-provisioned content, deletion, and a crash (SIGKILL) in
the middle of a burst of creations and deletions: no snapshot may be left on the driver.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as snapi
from csi_sidecars.kube.objects import annotations_of, sanitize_name
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.process import free_port, poll_until
from csi_sidecars.snapshotter import names
from tests.e2e.provisioner_support import ProvDriver, start_driver, stop_driver

SNAP = "/apis/snapshot.storage.k8s.io/v1"
VSC_PATH = f"{SNAP}/volumesnapshotcontents"
CLASS_PATH = f"{SNAP}/volumesnapshotclasses"
PV_PATH = "/api/v1/persistentvolumes"
FAST = ("--retry-interval-start=200ms", "--retry-interval-max=2s", "--timeout=10s")


@pytest_asyncio.fixture(loop_scope="session")
async def snap_driver(control_plane: ControlPlane) -> AsyncIterator[tuple[ProvDriver, Connection]]:
    drv = await start_driver(control_plane, prefix="snap")
    conn = await connect(str(drv.socket), timeout=30)
    try:
        yield drv, conn
    finally:
        await conn.close()
        await stop_driver(control_plane, drv)


def snapshots(drv: ProvDriver) -> dict[str, Any]:
    """The driver's snapshots by name, as persisted."""
    return {s.name: s for s in load_state(drv.statedir).snapshots.values()}


async def claim(api_: RawApi, drv: ProvDriver, conn: Connection, ns: str, name: str) -> str:
    """A driver volume with a PV pre-bound to a new claim ``name``; the volume handle."""
    cap = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(
            mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
        ),
    )
    pv_name = f"{ns}-{name}"
    resp = await conn.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name=pv_name,
            volume_capabilities=[cap],
            capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 20),
        ),
        timeout=10,
    )
    handle = resp.volume.volume_id
    pv = {
        "metadata": {"name": pv_name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Mi"},
            "csi": {"driver": drv.name, "volumeHandle": handle},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": ns, "name": name},
        },
    }
    await api_.create(PV_PATH, pv)
    pvc = {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Mi"}},
        },
    }
    await api_.create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc)
    await api_.wait_for(
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
        lambda o: o.get("status", {}).get("phase") == "Bound",
        what=f"PVC {name} bound",
    )
    return str(handle)


async def snapshot_class(api_: RawApi, drv: ProvDriver, policy: str = "Delete") -> str:
    name = f"vsc-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": name},
        "driver": drv.name,
        "deletionPolicy": policy,
        "parameters": {"tier": "e2e"},
    }
    await api_.create(CLASS_PATH, body)
    return name


def volume_snapshot(name: str, *, pvc: str = "", content: str = "", cls: str = "") -> Any:
    source = {"persistentVolumeClaimName": pvc} if pvc else {"volumeSnapshotContentName": content}
    spec: dict[str, Any] = {"source": source}
    if cls:
        spec["volumeSnapshotClassName"] = cls
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": spec,
    }


async def ready(api_: RawApi, ns: str, name: str, timeout: float = 60.0) -> Any:
    return await api_.wait_for(
        f"{SNAP}/namespaces/{ns}/volumesnapshots/{name}",
        lambda o: (o.get("status") or {}).get("readyToUse") is True,
        timeout=timeout,
        what=f"VolumeSnapshot {name} ready",
    )


GROUP_GATE = "--feature-gates=CSIVolumeGroupSnapshot=true"


async def start_both(
    sidecar: Any, drv: ProvDriver, ns: str, *extra: str, controller: str = "go"
) -> Any:
    await sidecar(
        "snapshot-controller", *FAST[:2], GROUP_GATE, implementation=controller, verbosity=4
    )
    return await sidecar(
        "snapshotter",
        *FAST,
        "--leader-election",
        f"--leader-election-namespace={ns}",
        "--extra-create-metadata",
        GROUP_GATE,
        *extra,
        driver=drv.testbed_driver,
    )


@pytest.mark.parametrize("controller", ["go", "python"])
async def test_dynamic_snapshot_and_delete(
    control_plane: ControlPlane,
    api: RawApi,
    namespace: str,
    sidecar: Any,
    snap_driver: tuple[ProvDriver, Connection],
    controller: str,
) -> None:
    drv, conn = snap_driver
    http = f"127.0.0.1:{free_port()}"
    await start_both(sidecar, drv, namespace, f"--http-endpoint={http}", controller=controller)
    handle = await claim(api, drv, conn, namespace, "data")
    cls = await snapshot_class(api, drv)
    ns_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots"
    await api.create(ns_path, volume_snapshot("snap-1", pvc="data", cls=cls))
    vs = await ready(api, namespace, "snap-1")
    content_name = vs["status"]["boundVolumeSnapshotContentName"]
    # The snapshotter writes the content's status (which makes the VolumeSnapshot ready) and
    # then, in a second write, drops its being-created annotation: wait for that one too.
    content = await api.wait_for(
        f"{VSC_PATH}/{content_name}",
        lambda o: snapi.ANN_VOLUME_SNAPSHOT_BEING_CREATED not in annotations_of(o),
        timeout=30,
        what=f"the being-created annotation removed from {content_name}",
    )
    snap = snapshots(drv)[f"snapshot-{vs['metadata']['uid']}"]
    assert snap.source_volume_id == handle
    assert snap.parameters == {
        "tier": "e2e",
        snapi.PREFIXED_VOLUME_SNAPSHOT_NAME_KEY: "snap-1",
        snapi.PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: namespace,
        snapi.PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY: content_name,
    }
    assert content["status"]["snapshotHandle"] == snap.snapshot_id
    assert content["status"]["restoreSize"] == 1 << 20
    assert vs["status"]["restoreSize"] == "1Mi"

    lease = await api.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
        f"{sanitize_name(names.lease_name(drv.name))}"
    )
    assert lease["spec"]["holderIdentity"]
    async with aiohttp.ClientSession() as http_client:
        async with http_client.get(f"http://{http}/metrics") as resp:
            metrics = await resp.text()
        async with http_client.get(f"http://{http}/healthz/leader-election") as resp:
            assert resp.status == 200
    assert 'workqueue_adds_total{name="csi-snapshotter-content"}' in metrics
    assert (
        f'csi_sidecar_operations_seconds_count{{driver_name="{drv.name}",grpc_status_code="OK",'
        'method_name="/csi.v1.Controller/CreateSnapshot"}'
    ) in metrics

    await api.delete(f"{ns_path}/snap-1")
    await api.wait_deleted(f"{ns_path}/snap-1", 60)
    await api.wait_deleted(f"{VSC_PATH}/{content_name}", 60)
    assert snapshots(drv) == {}


async def test_pre_provisioned_content(
    control_plane: ControlPlane,
    api: RawApi,
    namespace: str,
    sidecar: Any,
    snap_driver: tuple[ProvDriver, Connection],
) -> None:
    drv, conn = snap_driver
    await start_both(sidecar, drv, namespace)
    handle = await claim(api, drv, conn, namespace, "src")
    made = await conn.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name=f"backup-{namespace}", source_volume_id=handle),
        timeout=10,
    )
    snap_id = made.snapshot.snapshot_id
    content_name = f"static-{namespace}"
    content = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": content_name},
        "spec": {
            "driver": drv.name,
            "deletionPolicy": "Delete",
            "source": {"snapshotHandle": snap_id},
            "volumeSnapshotRef": {"name": "restored", "namespace": namespace},
        },
    }
    await api.create(VSC_PATH, content)
    ns_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots"
    await api.create(ns_path, volume_snapshot("restored", content=content_name))
    vs = await ready(api, namespace, "restored")
    assert vs["status"]["boundVolumeSnapshotContentName"] == content_name
    got = await api.get(f"{VSC_PATH}/{content_name}")
    assert got["status"]["snapshotHandle"] == snap_id
    await api.delete(f"{ns_path}/restored")
    await api.wait_deleted(f"{VSC_PATH}/{content_name}", 60)
    assert snap_id not in {s.snapshot_id for s in snapshots(drv).values()}


BURST = 16


async def test_sigkill_mid_burst_leaves_no_snapshot(
    control_plane: ControlPlane,
    api: RawApi,
    namespace: str,
    sidecar: Any,
    snap_driver: tuple[ProvDriver, Connection],
) -> None:
    drv, conn = snap_driver
    # Slow snapshots, so that calls are in flight when the sidecar dies.
    drv.faults([{"method": "CreateSnapshot", "delay": 2.0}])
    ours = await start_both(sidecar, drv, namespace)
    await claim(api, drv, conn, namespace, "burst")
    cls = await snapshot_class(api, drv)
    ns_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots"
    for i in range(BURST):
        await api.create(ns_path, volume_snapshot(f"b-{i}", pvc="burst", cls=cls))

    async def in_flight() -> int:
        items = (await api.get(VSC_PATH))["items"]
        marked = [
            c
            for c in items
            if snapi.ANN_VOLUME_SNAPSHOT_BEING_CREATED in c["metadata"].get("annotations", {})
        ]
        return len(marked) >= 3 and len(marked)

    await poll_until(in_flight, 60, "CreateSnapshot calls in flight")
    for i in range(BURST // 2):
        await api.delete(f"{ns_path}/b-{i}")
    contents = [c for c in (await api.get(VSC_PATH))["items"] if c["spec"]["driver"] == drv.name]
    unfinished = [c for c in contents if not (c.get("status") or {}).get("readyToUse")]
    ours.signal(signal.SIGKILL)
    print(f"killed with {len(unfinished)} of {len(contents)} contents not ready")
    await ours.wait(10)
    await sidecar(
        "snapshotter",
        *FAST,
        "--leader-election",
        f"--leader-election-namespace={namespace}",
        driver=drv.testbed_driver,
    )
    for i in range(BURST // 2, BURST):
        await api.delete(f"{ns_path}/b-{i}")

    async def all_gone() -> bool:
        left = (await api.get(ns_path))["items"]
        contents = [
            c for c in (await api.get(VSC_PATH))["items"] if c["spec"]["driver"] == drv.name
        ]
        return not left and not contents

    await poll_until(all_gone, 120, "every VolumeSnapshot and content gone")
    assert snapshots(drv) == {}
    drv.faults([])


GROUP = "/apis/groupsnapshot.storage.k8s.io/v1"


async def test_volume_group_snapshot(
    control_plane: ControlPlane,
    api: RawApi,
    namespace: str,
    sidecar: Any,
    snap_driver: tuple[ProvDriver, Connection],
) -> None:
    drv, conn = snap_driver
    await start_both(sidecar, drv, namespace)
    for name in ("g1", "g2"):
        await claim(api, drv, conn, namespace, name)
        await api.patch(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}",
            {"metadata": {"labels": {"group": "e2e"}}},
        )
    cls = f"vgsc-{uuid.uuid4().hex[:8]}"
    await api.create(
        f"{GROUP}/volumegroupsnapshotclasses",
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {"name": cls},
            "driver": drv.name,
            "deletionPolicy": "Delete",
        },
    )
    path = f"{GROUP}/namespaces/{namespace}/volumegroupsnapshots"
    vgs = {
        "apiVersion": "groupsnapshot.storage.k8s.io/v1",
        "kind": "VolumeGroupSnapshot",
        "metadata": {"name": "group"},
        "spec": {
            "volumeGroupSnapshotClassName": cls,
            "source": {"selector": {"matchLabels": {"group": "e2e"}}},
        },
    }
    await api.create(path, vgs)
    got = await api.wait_for(
        f"{path}/group",
        lambda o: (o.get("status") or {}).get("readyToUse") is True,
        timeout=60,
        what="VolumeGroupSnapshot ready",
    )
    content = await api.get(
        f"{GROUP}/volumegroupsnapshotcontents/{got['status']['boundVolumeGroupSnapshotContentName']}"
    )
    infos = content["status"]["volumeSnapshotInfoList"]
    assert len(infos) == 2
    state = load_state(drv.statedir)
    assert [g.name for g in state.group_snapshots.values()] == [
        f"groupsnapshot-{got['metadata']['uid']}"
    ]
    # The snapshot-controller made one member VolumeSnapshot per volume; they become ready.
    members = await api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots")
    assert len(members["items"]) == 2
    for member in members["items"]:
        await ready(api, namespace, member["metadata"]["name"])
    await api.delete(f"{path}/group")
    await api.wait_deleted(f"{path}/group", 60)

    async def backend_empty() -> bool:
        state = load_state(drv.statedir)
        return not state.group_snapshots and not state.snapshots

    await poll_until(backend_empty, 60, "group snapshot deleted on the driver")

    async def members_gone() -> bool:
        return not (await api.get(f"{SNAP}/namespaces/{namespace}/volumesnapshots"))["items"]

    await poll_until(members_gone, 60, "member VolumeSnapshots gone")


async def test_switching_between_the_go_sidecar_and_ours(
    control_plane: ControlPlane,
    api: RawApi,
    namespace: str,
    sidecar: Any,
    snap_driver: tuple[ProvDriver, Connection],
) -> None:
    drv, conn = snap_driver
    await sidecar("snapshot-controller", *FAST[:2], GROUP_GATE, implementation="go", verbosity=4)
    side_args = (*FAST, "--leader-election", f"--leader-election-namespace={namespace}")
    go = await sidecar(
        "snapshotter", *side_args, implementation="go", driver=drv.testbed_driver, verbosity=4
    )
    await claim(api, drv, conn, namespace, "sw")
    cls = await snapshot_class(api, drv)
    ns_path = f"{SNAP}/namespaces/{namespace}/volumesnapshots"
    await api.create(ns_path, volume_snapshot("by-go", pvc="sw", cls=cls))
    by_go = await ready(api, namespace, "by-go")
    await go.stop(timeout=10)

    ours = await sidecar("snapshotter", *side_args, driver=drv.testbed_driver)
    await api.create(ns_path, volume_snapshot("by-us", pvc="sw", cls=cls))
    by_us = await ready(api, namespace, "by-us")
    # The same deterministic names, so either sidecar finds the other's snapshots.
    assert set(snapshots(drv)) == {
        f"snapshot-{by_go['metadata']['uid']}",
        f"snapshot-{by_us['metadata']['uid']}",
    }
    await api.delete(f"{ns_path}/by-go")
    await api.wait_deleted(f"{ns_path}/by-go", 60)
    assert set(snapshots(drv)) == {f"snapshot-{by_us['metadata']['uid']}"}
    await ours.stop(timeout=10)

    await sidecar(
        "snapshotter", *side_args, implementation="go", driver=drv.testbed_driver, verbosity=4
    )
    await api.delete(f"{ns_path}/by-us")
    await api.wait_deleted(f"{ns_path}/by-us", 90)
    assert snapshots(drv) == {}
