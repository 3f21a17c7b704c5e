"""Helpers of the resizer's e2e tests: a driver per test, bound claims, waits.

Each test runs its own playground driver under its own driver name (ControllerModifyVolume on,
``iops`` and ``throughput`` accepted, faults from a file), so resizers of different tests never
see each other's claims. Claims are static: a driver volume, a PV pre-bound to the claim, both in
a StorageClass that allows expansion (the API server's resize admission requires one).
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state, write_faults_file
from csi_sidecars.playground.process import ManagedProcess, poll_until

PV_PATH = "/api/v1/persistentvolumes"
VAC_PATH = "/apis/storage.k8s.io/v1/volumeattributesclasses"
SC_PATH = "/apis/storage.k8s.io/v1/storageclasses"
FAST = ("--retry-interval-start=200ms", "--retry-interval-max=3s", "--timeout=10s")
GIB = 1024**3


@dataclass
class ResizeDriver:
    """One playground driver process, registered on the first node."""

    name: str
    node: str
    socket: Path
    statedir: Path
    faults_file: Path
    process: ManagedProcess
    conn: Connection

    @property
    def storage_class(self) -> str:
        return f"sc-{self.name.split('.')[0]}"

    def faults(self, rules: list[Mapping[str, Any]]) -> None:
        """Replace the driver's scripted faults."""
        write_faults_file(self.faults_file, rules)

    def volume(self, handle: str) -> Any:
        """The driver's record of a volume."""
        return load_state(self.statedir).volumes[handle]

    async def create_volume(self, name: str, size: int = GIB) -> str:
        """CreateVolume in the driver; returns the handle."""
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        resp = await self.conn.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            ),
            timeout=10,
        )
        return str(resp.volume.volume_id)

    async def close(self) -> None:
        """Close the test's connection and stop the driver."""
        await self.conn.close()
        await self.process.stop(timeout=5)


async def start_driver(
    cp: ControlPlane, tmp_path: Path, *args: str, name: str | None = None
) -> ResizeDriver:
    """Start a playground driver (default: controller and node expansion, modify on)."""
    name = name or f"rsz-{uuid.uuid4().hex[:6]}.csi.test"
    node = cp.node_names[0]
    sock, statedir, faults_file = tmp_path / "csi.sock", tmp_path / "state", tmp_path / "f.json"
    write_faults_file(faults_file, [])
    argv = [
        sys.executable,
        "-m",
        "csi_sidecars.playground.driver",
        f"--endpoint=unix://{sock}",
        f"--nodeid={node}",
        f"--drivername={name}",
        f"--statedir={statedir}",
        f"--faults-file={faults_file}",
        "--enable-controller-modify-volume",
        "--accepted-mutable-parameter-names=iops,throughput",
        *args,
    ]
    process = await cp.start_process(f"driver-{name}", argv)
    conn = await connect(str(sock), timeout=30)
    await cp.admin.ensure(
        "/apis/storage.k8s.io/v1/csidrivers", objects.csidriver(name, attach_required=False)
    )
    drv = ResizeDriver(name, node, sock, statedir, faults_file, process, conn)
    await cp.admin.ensure(SC_PATH, objects.storage_class(drv.storage_class, name))
    return drv


def claim_path(namespace: str, claim: str) -> str:
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"


async def bound_claim(
    api: RawApi, drv: ResizeDriver, namespace: str, claim: str, *, vac: str | None = None
) -> tuple[str, str]:
    """A 1Gi driver volume, its PV and a PVC bound to it; returns (PV name, handle)."""
    pv_name = f"{namespace}-{claim}"
    handle = await drv.create_volume(pv_name)
    pv: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "csi": {"driver": drv.name, "volumeHandle": handle, "fsType": "ext4"},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": drv.storage_class,
            "volumeMode": "Filesystem",
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": drv.storage_class,
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    if vac is not None:
        pv["spec"]["volumeAttributesClassName"] = vac
        pvc["spec"]["volumeAttributesClassName"] = vac
    await api.create(PV_PATH, pv)
    await api.create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", pvc)
    await api.wait_for(
        claim_path(namespace, claim),
        lambda o: o.get("status", {}).get("phase") == "Bound",
        what=f"PVC {claim} to bind",
    )
    return pv_name, handle


async def request(api: RawApi, namespace: str, claim: str, size: str) -> None:
    """The user edits the storage request."""
    await api.patch(
        claim_path(namespace, claim), {"spec": {"resources": {"requests": {"storage": size}}}}
    )


async def set_class(api: RawApi, namespace: str, claim: str, vac: str | None) -> None:
    """The user edits the VolumeAttributesClass."""
    await api.patch(claim_path(namespace, claim), {"spec": {"volumeAttributesClassName": vac}})


async def ensure_class(api: RawApi, name: str, driver: str, **params: str) -> None:
    """A VolumeAttributesClass of ``driver``."""
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttributesClass",
        "metadata": {"name": name},
        "driverName": driver,
        "parameters": dict(params),
    }
    await api.ensure(VAC_PATH, body)


async def wait_claim(
    api: RawApi,
    namespace: str,
    claim: str,
    condition: Callable[[dict[str, Any]], Any],
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the claim until ``condition(pvc)`` is truthy; the timeout error shows the claim."""
    last: list[Any] = [None]

    async def check() -> dict[str, Any] | None:
        pvc = await api.get(claim_path(namespace, claim))
        last[0] = pvc
        return dict(pvc) if condition(pvc) else None

    try:
        return await poll_until(check, timeout, what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen: {json.dumps(last[0])[:2000]}") from None


def resize_state(pvc: Mapping[str, Any]) -> str:
    """``status.allocatedResourceStatuses.storage``."""
    return str(
        ((pvc.get("status") or {}).get("allocatedResourceStatuses") or {}).get("storage", "")
    )


def modify_state(pvc: Mapping[str, Any]) -> str:
    """``status.modifyVolumeStatus.status`` ("" when unset)."""
    return str(((pvc.get("status") or {}).get("modifyVolumeStatus") or {}).get("status", ""))


async def events(api: RawApi, namespace: str, claim: str) -> list[dict[str, Any]]:
    """The events of the claim."""
    items = (await api.get(f"/api/v1/namespaces/{namespace}/events"))["items"]
    return [e for e in items if e["involvedObject"].get("name") == claim]


async def wait_events(
    api: RawApi,
    namespace: str,
    claim: str,
    condition: Callable[[list[dict[str, Any]]], bool],
    what: str,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Poll the events of the claim until ``condition`` holds for them; return them.

    Events are written after the status that announces them (by a recorder of their own, in Go
    and here), so a test that saw the status polls for the event.
    """

    async def check() -> list[dict[str, Any]] | None:
        found = await events(api, namespace, claim)
        return found if condition(found) else None

    return await poll_until(check, timeout, what)
