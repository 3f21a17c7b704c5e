"""Shared pieces of the provisioner e2e tests: a driver of their own, objects, waits.

Each provisioner test module runs its own playground driver under a unique name (so the
provisioner only sees its own classes and claims), registered in CSINode with the hostpath
topology key, with a faults file the test can rewrite.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.controlplane import ControlPlane, Driver
from csi_sidecars.playground.driver import load_state, write_faults_file
from csi_sidecars.playground.process import ManagedProcess, poll_until

PV = "/api/v1/persistentvolumes"
SC = "/apis/storage.k8s.io/v1/storageclasses"
CSINODES = "/apis/storage.k8s.io/v1/csinodes"
CSIDRIVERS = "/apis/storage.k8s.io/v1/csidrivers"


@dataclass
class ProvDriver:
    """A playground driver of one test module."""

    name: str
    node: str
    base: Path
    process: ManagedProcess
    #: the nodes it stands in for (registered in their CSINodes)
    nodes: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.base / "csi.sock"

    @property
    def statedir(self) -> Path:
        return self.base / "state"

    @property
    def faults_file(self) -> Path:
        return self.base / "faults.json"

    @property
    def testbed_driver(self) -> Driver:
        """The form ``start_sidecar(driver=...)`` takes."""
        return Driver(self.node, self.name, self.socket, self.statedir, self.process)

    def faults(self, rules: list[Mapping[str, Any]]) -> None:
        """Replace the driver's scripted faults."""
        write_faults_file(self.faults_file, rules)

    def volumes(self) -> dict[str, Any]:
        """The driver's volumes by ID, as persisted."""
        return dict(load_state(self.statedir).volumes)

    def volume_names(self) -> set[str]:
        """Names of the driver's volumes."""
        return {v.name for v in self.volumes().values()}


async def start_driver(
    cp: ControlPlane,
    *args: str,
    prefix: str = "prov",
    nodes: list[str] | None = None,
    storage_capacity: bool = False,
    node: str | None = None,
    name: str | None = None,
) -> ProvDriver:
    """Start a playground driver with a unique name on the first node, register it.

    With ``nodes``, it stands in for each of them (``--known-node``) and is registered in each
    CSINode; ``storage_capacity`` sets the CSIDriver's ``storageCapacity``. ``node`` and
    ``name`` start it on another node under a given name (one driver per node).
    """
    name = name or f"{prefix}-{uuid.uuid4().hex[:6]}.csi.test"
    node = node or cp.node_names[0]
    extra = [f"--known-node={n}" for n in nodes or [] if n != node]
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    (base / "state").mkdir()
    write_faults_file(base / "faults.json", [])
    argv = [
        sys.executable,
        "-m",
        "csi_sidecars.playground.driver",
        f"--endpoint=unix://{base / 'csi.sock'}",
        f"--nodeid={node}",
        f"--drivername={name}",
        f"--statedir={base / 'state'}",
        f"--faults-file={base / 'faults.json'}",
        *extra,
        *args,
    ]
    process = await cp.start_process(f"driver-{name}-{node}", argv)
    drv = ProvDriver(name, node, base, process)

    async def listening() -> bool:
        assert process.running, process.log_tail()
        return drv.socket.exists()

    await poll_until(listening, 30, "the driver socket", fatal=(AssertionError,))
    await cp.admin.ensure(
        CSIDRIVERS,
        objects.csidriver(name, attach_required=False, storage_capacity=storage_capacity),
    )
    for each in nodes or [node]:
        await cp.register_driver(each, driver_name=name)
    drv.nodes = list(nodes or [node])
    return drv


async def stop_driver(cp: ControlPlane, drv: ProvDriver) -> None:
    """Stop the driver and remove its registration and files."""
    await drv.process.stop(timeout=5)
    await cp.admin.delete(f"{CSIDRIVERS}/{drv.name}")
    for node in drv.nodes or [drv.node]:
        path = f"{CSINODES}/{node}"
        for _ in range(10):
            current = await cp.admin.get(path)
            drivers = [d for d in current["spec"].get("drivers") or [] if d["name"] != drv.name]
            current["spec"]["drivers"] = drivers
            try:
                await cp.admin.replace(path, current)
                break
            except ApiError as exc:
                if exc.status != 409:
                    raise
    shutil.rmtree(drv.base, ignore_errors=True)


async def make_class(api: RawApi, driver: str, **kwargs: Any) -> str:
    """Create a StorageClass for ``driver`` with a unique name; extra keys go into the object."""
    name = f"sc-{uuid.uuid4().hex[:8]}"
    body = objects.storage_class(
        name,
        driver,
        binding_mode=kwargs.pop("binding_mode", "Immediate"),
        reclaim_policy=kwargs.pop("reclaim_policy", "Delete"),
        parameters=kwargs.pop("parameters", None),
    )
    body.update(kwargs)
    await api.create(SC, body)
    return name


def claims_path(namespace: str) -> str:
    """The PVC collection of ``namespace``."""
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"


async def wait_bound(api: RawApi, namespace: str, name: str, timeout: float = 60) -> Any:
    """Wait until the claim is Bound; return it."""
    return await api.wait_for(
        f"{claims_path(namespace)}/{name}",
        lambda o: o.get("status", {}).get("phase") == "Bound",
        timeout=timeout,
        what=f"claim {name} to be Bound",
    )


async def events_of(api: RawApi, namespace: str, name: str, reason: str) -> list[Any]:
    """Events about ``name`` with ``reason`` in ``namespace``."""
    listed = await api.get(
        f"/api/v1/namespaces/{namespace}/events",
        fieldSelector=f"involvedObject.name={name},reason={reason}",
    )
    return list(listed["items"])


async def wait_event(
    api: RawApi, namespace: str, name: str, reason: str, timeout: float = 30
) -> list[Any]:
    """Wait for at least one event ``reason`` about ``name``; return them all."""

    async def found() -> list[Any] | None:
        items = await events_of(api, namespace, name, reason)
        return items or None

    return await poll_until(found, timeout, f"a {reason} event for {name}")


# -- snapshots, made by hand (the snapshot roles do not run in these tests) -------------------

SNAPSHOT_API = "/apis/snapshot.storage.k8s.io/v1"


async def driver_snapshot(drv: ProvDriver, size: int = 1 << 20) -> str:
    """A snapshot of a fresh volume, cut through the driver socket; returns its ID."""
    conn = await connect(f"unix://{drv.socket}", timeout=10)
    try:
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=1),
        )
        tag = uuid.uuid4().hex[:8]
        vol = await conn.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=f"source-{tag}",
                capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                volume_capabilities=[cap],
            ),
            timeout=10,
        )
        snap = await conn.controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(
                name=f"snap-{tag}", source_volume_id=vol.volume.volume_id
            ),
            timeout=10,
        )
        return str(snap.snapshot.snapshot_id)
    finally:
        await conn.close()


async def static_snapshot(
    api: RawApi,
    namespace: str,
    name: str,
    *,
    driver: str,
    handle: str,
    restore_size: int = 1 << 20,
    ready: bool = True,
    volume_mode: str = "Filesystem",
) -> dict[str, Any]:
    """A pre-provisioned VolumeSnapshotContent and a VolumeSnapshot bound to it, with the
    statuses the snapshot controller and sidecar would write; returns the VolumeSnapshot."""
    content_name = f"content-{namespace}-{name}"
    vs_path = f"{SNAPSHOT_API}/namespaces/{namespace}/volumesnapshots"
    vs = await api.create(
        vs_path,
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
         "metadata": {"name": name},
         "spec": {"source": {"volumeSnapshotContentName": content_name}}},
    )  # fmt: skip
    await api.create(
        f"{SNAPSHOT_API}/volumesnapshotcontents",
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
         "metadata": {"name": content_name},
         "spec": {"driver": driver, "deletionPolicy": "Retain",
                  "source": {"snapshotHandle": handle}, "sourceVolumeMode": volume_mode,
                  "volumeSnapshotRef": {"name": name, "namespace": namespace,
                                        "uid": vs["metadata"]["uid"]}}},
    )  # fmt: skip
    await api.patch(
        f"{SNAPSHOT_API}/volumesnapshotcontents/{content_name}/status",
        {"status": {"snapshotHandle": handle, "readyToUse": ready, "restoreSize": restore_size}},
    )
    return await set_snapshot_status(api, namespace, name, ready=ready, restore_size=restore_size,
                                     content_name=content_name)  # fmt: skip


async def set_snapshot_status(
    api: RawApi,
    namespace: str,
    name: str,
    *,
    ready: bool,
    restore_size: int = 1 << 20,
    content_name: str | None = None,
) -> dict[str, Any]:
    """Write a VolumeSnapshot's status as the snapshot controller copies it from the content."""
    status: dict[str, Any] = {"readyToUse": ready, "restoreSize": str(restore_size)}
    if content_name is not None:
        status["boundVolumeSnapshotContentName"] = content_name
    path = f"{SNAPSHOT_API}/namespaces/{namespace}/volumesnapshots/{name}/status"
    return dict(await api.patch(path, {"status": status}))


async def delete_contents(api: RawApi, drivers: set[str]) -> None:
    """Delete the (cluster-scoped) VolumeSnapshotContents of ``drivers`` a test left."""
    listed = await api.get(f"{SNAPSHOT_API}/volumesnapshotcontents")
    for item in listed["items"]:
        if item["spec"].get("driver") in drivers:
            await api.delete(f"{SNAPSHOT_API}/volumesnapshotcontents/{item['metadata']['name']}")
