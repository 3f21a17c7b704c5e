"""Shared pieces of the cross-role snapshot e2e tests: both snapshot roles, objects, checks.

A :class:`SnapshotBed` is one test module's playground driver (a unique name, so the roles only
see their own classes and contents), our provisioner for its claims, and the two snapshot roles,
``snapshot-controller`` and ``snapshotter``, each ours or Go's. The checks at the end of a test
are the same everywhere: every backend snapshot belongs to a content that exists (nothing
leaked), and no object is stuck with a deletion timestamp.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.process import ManagedProcess, poll_until
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)

SNAP_API = "/apis/snapshot.storage.k8s.io/v1"
GROUP_API = "/apis/groupsnapshot.storage.k8s.io/v1"
VSCS = f"{SNAP_API}/volumesnapshotcontents"
VSCLASSES = f"{SNAP_API}/volumesnapshotclasses"
VGSCS = f"{GROUP_API}/volumegroupsnapshotcontents"
VGSCLASSES = f"{GROUP_API}/volumegroupsnapshotclasses"
GROUP_GATE = "--feature-gates=CSIVolumeGroupSnapshot=true"
DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
DEFAULT_GROUP_CLASS = "groupsnapshot.storage.kubernetes.io/is-default-class"
BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
BEING_CREATED = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
PVC_FINALIZER = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
VSC_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
VS_FINALIZERS = {
    "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
    "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection",
}
#: Fast retries for both roles, so a test does not wait for Go's 1 s .. 5 min back-off.
RETRY = ("--retry-interval-start=200ms", "--retry-interval-max=2s")
#: Short leases, so a SIGKILLed leader is replaced within seconds.
SHORT_LEASE = (
    "--leader-election-lease-duration=4s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=1s",
)


def snapshots_path(namespace: str) -> str:
    """The VolumeSnapshot collection of ``namespace``."""
    return f"{SNAP_API}/namespaces/{namespace}/volumesnapshots"


def groups_path(namespace: str) -> str:
    """The VolumeGroupSnapshot collection of ``namespace``."""
    return f"{GROUP_API}/namespaces/{namespace}/volumegroupsnapshots"


@dataclass
class SnapshotBed:
    """A driver with our provisioner and both snapshot roles, for one test module.

    Attributes:
        cp: the control plane.
        driver: the module's playground driver.
        lease_namespace: where both roles hold their Leases (a namespace of the module's own,
            so no Lease of another module's dead leader delays them).
        storage_class: an Immediate StorageClass of the driver.
        controller: the snapshot-controller process.
        snapshotter: the snapshotter process.
    """

    cp: ControlPlane
    driver: ProvDriver
    lease_namespace: str
    storage_class: str = ""
    controller: ManagedProcess | None = None
    snapshotter: ManagedProcess | None = None
    others: list[ManagedProcess] = field(default_factory=list)

    @property
    def api(self) -> RawApi:
        return self.cp.admin

    async def start_controller(self, impl: str = "python", *extra: str) -> ManagedProcess:
        """Start the snapshot-controller (ours or ``go``) with the group gate and leases."""
        self.controller = await self.cp.start_sidecar(
            "snapshot-controller",
            *RETRY,
            GROUP_GATE,
            "--leader-election",
            f"--leader-election-namespace={self.lease_namespace}",
            *extra,
            implementation=impl,
            verbosity=4,
        )
        return self.controller

    async def start_snapshotter(self, impl: str = "python", *extra: str) -> ManagedProcess:
        """Start the snapshotter (ours or ``go``) next to the driver, gate and leases on."""
        self.snapshotter = await self.cp.start_sidecar(
            "snapshotter",
            *RETRY,
            "--timeout=10s",
            GROUP_GATE,
            "--leader-election",
            f"--leader-election-namespace={self.lease_namespace}",
            *extra,
            implementation=impl,
            driver=self.driver.testbed_driver,
            verbosity=4,
        )
        return self.snapshotter

    async def stop_roles(self) -> None:
        """Stop both snapshot roles (not the provisioner)."""
        for proc in (self.snapshotter, self.controller):
            if proc is not None:
                await proc.stop(timeout=10)
        self.controller = self.snapshotter = None

    def backend(self) -> dict[str, Any]:
        """The driver's snapshots by ID, as persisted."""
        return dict(load_state(self.driver.statedir).snapshots)

    def backend_groups(self) -> dict[str, Any]:
        """The driver's group snapshots by ID."""
        return dict(load_state(self.driver.statedir).group_snapshots)

    async def claim(self, namespace: str, name: str, labels: dict[str, str] | None = None) -> Any:
        """A claim of the module's class, provisioned by our provisioner; the Bound claim."""
        body: dict[str, Any] = objects.pvc(name, self.storage_class, size="1Mi")
        if labels:
            body["metadata"]["labels"] = labels
        await self.api.create(claims_path(namespace), body)
        return await wait_bound(self.api, namespace, name)

    async def volume_handle(self, namespace: str, claim: str) -> str:
        """The CSI volume handle of a Bound claim."""
        pvc = await self.api.get(f"{claims_path(namespace)}/{claim}")
        pv = await self.api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
        return str(pv["spec"]["csi"]["volumeHandle"])

    async def contents(self) -> list[dict[str, Any]]:
        """The VolumeSnapshotContents of this driver."""
        items = (await self.api.get(VSCS))["items"]
        return [c for c in items if c["spec"]["driver"] == self.driver.name]

    async def assert_no_leak(self) -> None:
        """Every backend snapshot is the handle of an existing content of this driver."""
        handles = set()
        for c in await self.contents():
            handles.add((c.get("status") or {}).get("snapshotHandle"))
            handles.add(c["spec"]["source"].get("snapshotHandle"))
        leaked = set(self.backend()) - handles
        assert not leaked, f"backend snapshots without a content: {sorted(leaked)}"


async def start_bed(cp: ControlPlane, prefix: str, *driver_args: str) -> SnapshotBed:
    """A driver (``driver_args`` are its flags), its StorageClass and our provisioner; the
    snapshot roles are started later."""
    drv = await start_driver(cp, *driver_args, prefix=prefix)
    lease_ns = f"{prefix}-leases-{uuid.uuid4().hex[:6]}"
    await cp.create_namespace(lease_ns)
    bed = SnapshotBed(cp, drv, lease_ns)
    bed.storage_class = await make_class(cp.admin, drv.name)
    bed.others.append(
        await cp.start_sidecar(
            "provisioner", "--timeout=10s", "--retry-interval-max=2s", driver=drv.testbed_driver
        )
    )
    return bed


async def stop_bed(bed: SnapshotBed) -> None:
    """Stop everything :func:`start_bed` and the test started; remove the driver."""
    await bed.stop_roles()
    for proc in bed.others:
        await proc.stop(timeout=10)
    await bed.api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{bed.storage_class}")
    await bed.api.delete(f"/api/v1/namespaces/{bed.lease_namespace}")
    await stop_driver(bed.cp, bed.driver)


async def snapshot_class(
    api: RawApi,
    driver: str,
    *,
    policy: str = "Delete",
    default: bool = False,
    parameters: dict[str, str] | None = None,
) -> str:
    """A VolumeSnapshotClass of ``driver`` with a unique name; its name."""
    name = f"vsclass-{uuid.uuid4().hex[:8]}"
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT_CLASS: "true"}
    body: dict[str, Any] = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": meta,
        "driver": driver,
        "deletionPolicy": policy,
    }
    if parameters:
        body["parameters"] = parameters
    await api.create(VSCLASSES, body)
    return name


def volume_snapshot(
    name: str, *, claim: str = "", content: str = "", cls: str | None = None
) -> dict[str, Any]:
    """A VolumeSnapshot of a claim (dynamic) or of a named content (pre-provisioned)."""
    source = (
        {"persistentVolumeClaimName": claim} if claim else {"volumeSnapshotContentName": content}
    )
    spec: dict[str, Any] = {"source": source}
    if cls is not None:
        spec["volumeSnapshotClassName"] = cls
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": spec,
    }


def static_content(
    name: str, driver: str, handle: str, namespace: str, snapshot: str, policy: str = "Delete"
) -> dict[str, Any]:
    """A pre-provisioned VolumeSnapshotContent of backend snapshot ``handle``."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": {
            "driver": driver,
            "deletionPolicy": policy,
            "source": {"snapshotHandle": handle},
            "volumeSnapshotRef": {"name": snapshot, "namespace": namespace},
        },
    }


async def wait_ready(api: RawApi, namespace: str, name: str, timeout: float = 60) -> Any:
    """Wait until the VolumeSnapshot is ready to use; return it."""
    return await api.wait_for(
        f"{snapshots_path(namespace)}/{name}",
        lambda o: (o.get("status") or {}).get("readyToUse") is True,
        timeout=timeout,
        what=f"VolumeSnapshot {name} ready",
    )


async def claim_finalizers(api: RawApi, namespace: str, name: str) -> list[str]:
    """The finalizers of a claim."""
    claim = await api.get(f"{claims_path(namespace)}/{name}")
    return list(claim["metadata"].get("finalizers") or [])


async def wait_claim_released(api: RawApi, namespace: str, name: str, timeout: float = 30) -> None:
    """Wait until the claim no longer carries ``pvc-as-source-protection``."""

    async def released() -> bool:
        return PVC_FINALIZER not in await claim_finalizers(api, namespace, name)

    await poll_until(released, timeout, f"{PVC_FINALIZER} to leave claim {name}")


async def terminating(api: RawApi, paths: Sequence[str]) -> list[str]:
    """Names of the objects under ``paths`` that have a deletion timestamp (stuck, if it lasts)."""
    stuck = []
    for path in paths:
        for item in (await api.get(path))["items"]:
            if item["metadata"].get("deletionTimestamp"):
                fins = item["metadata"].get("finalizers")
                stuck.append(f"{path.rsplit('/', 1)[-1]}/{item['metadata']['name']} {fins}")
    return stuck
