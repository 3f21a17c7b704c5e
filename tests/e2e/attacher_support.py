"""Helpers of the attacher's e2e tests: a driver per test, static volumes, VA lookups.

Each test runs its own playground driver under its own driver name, so attachers of different
tests (and the session's driver) never see each other's VolumeAttachments.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state, write_faults_file
from csi_sidecars.playground.process import ManagedProcess, poll_until

VA_PATH = "/apis/storage.k8s.io/v1/volumeattachments"
PV_PATH = "/api/v1/persistentvolumes"
OUR_ANNOTATION_PREFIX = "attacher.csi-sidecars.io/"
FAST_RETRIES = ("--retry-interval-start=200ms", "--retry-interval-max=2s", "--timeout=10s")


def finalizer(driver: str) -> str:
    """The attacher finalizer for ``driver``."""
    return "external-attacher/" + "".join(c if c.isalnum() or c == "-" else "-" for c in driver)


@dataclass
class AttachDriver:
    """One playground driver process with attach enabled, registered on one node."""

    name: str
    node: str
    socket: Path
    statedir: Path
    faults_file: Path
    process: ManagedProcess
    conn: Connection

    def attached(self, handle: str) -> dict[str, bool]:
        """Node ID -> readonly for the volume's controller publications."""
        vol = load_state(self.statedir).volumes.get(handle)
        return dict(vol.attached) if vol is not None else {}

    def faults(self, rules: list[Mapping[str, Any]]) -> None:
        """Replace the driver's scripted faults."""
        write_faults_file(self.faults_file, rules)

    async def create_volume(self, name: str) -> str:
        """CreateVolume in the driver; returns the handle."""
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        resp = await self.conn.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[cap]), timeout=10
        )
        return str(resp.volume.volume_id)

    async def close(self) -> None:
        """Close the test's connection and stop the driver."""
        await self.conn.close()
        await self.process.stop(timeout=5)


async def start_driver(
    cp: ControlPlane,
    tmp_path: Path,
    *args: str,
    attach_required: bool = True,
    name: str | None = None,
) -> AttachDriver:
    """Start a playground driver named ``name`` (default random) on the first node."""
    name = name or f"att-{uuid.uuid4().hex[:6]}.csi.test"
    node = cp.node_names[0]
    sock = tmp_path / "csi.sock"
    statedir = tmp_path / "state"
    faults_file = tmp_path / "faults.json"
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
        "--enable-attach",
        *args,
    ]
    process = await cp.start_process(f"driver-{name}", argv)
    conn = await connect(str(sock), timeout=30)
    await cp.admin.ensure(
        "/apis/storage.k8s.io/v1/csidrivers",
        objects.csidriver(name, attach_required=attach_required),
    )
    await cp.register_driver(node, topology=False, driver_name=name)
    return AttachDriver(name, node, sock, statedir, faults_file, process, conn)


def pv_body(
    name: str, driver: str, handle: str, claim: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A static CSI PV (Retain), optionally pre-bound to ``claim`` (namespace, name)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Mi"},
        "csi": {"driver": driver, "volumeHandle": handle, "fsType": "ext4"},
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "volumeMode": "Filesystem",
    }
    if claim is not None:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": spec,
    }


def va_body(name: str, driver: str, pv: str, node: str) -> dict[str, Any]:
    """A VolumeAttachment as kube-controller-manager would create it."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": name},
        "spec": {"attacher": driver, "nodeName": node, "source": {"persistentVolumeName": pv}},
    }


async def static_volume(api: RawApi, drv: AttachDriver, name: str) -> tuple[str, str]:
    """A driver volume and its PV (no claim); returns (PV name, handle)."""
    handle = await drv.create_volume(name)
    await api.create(PV_PATH, pv_body(name, drv.name, handle))
    return name, handle


async def static_claim(
    api: RawApi, drv: AttachDriver, namespace: str, claim: str
) -> tuple[str, str]:
    """A driver volume, a PV pre-bound to a new PVC ``claim``; returns (PV name, handle)."""
    pv_name = f"{namespace}-{claim}"
    handle = await drv.create_volume(pv_name)
    await api.create(PV_PATH, pv_body(pv_name, drv.name, handle, (namespace, claim)))
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv_name,
            "resources": {"requests": {"storage": "1Mi"}},
        },
    }
    await api.create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", pvc)
    await api.wait_for(
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}",
        lambda o: o.get("status", {}).get("phase") == "Bound",
        what=f"PVC {claim} to bind",
    )
    return pv_name, handle


async def va_for_pv(api: RawApi, pv_name: str) -> dict[str, Any] | None:
    """The VolumeAttachment whose source is ``pv_name``, if any."""
    for va in (await api.get(VA_PATH))["items"]:
        if va["spec"]["source"].get("persistentVolumeName") == pv_name:
            return dict(va)
    return None


async def wait_va(
    api: RawApi, pv_name: str, condition: Any, timeout: float = 30.0, what: str = ""
) -> dict[str, Any]:
    """Poll until the VA of ``pv_name`` exists and ``condition(va)`` holds."""
    last: list[Any] = [None]

    async def check() -> dict[str, Any] | None:
        va = await va_for_pv(api, pv_name)
        last[0] = va
        return va if va is not None and condition(va) else None

    try:
        return await poll_until(check, timeout, what or f"VolumeAttachment of {pv_name}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen: {json.dumps(last[0])[:1500]}") from None


def attached(va: dict[str, Any]) -> bool:
    """``status.attached``."""
    return bool(va.get("status", {}).get("attached"))


async def wait_gone(api: RawApi, path: str, timeout: float = 30.0) -> None:
    """Poll until ``path`` is 404."""
    await api.wait_deleted(path, timeout)


async def force_delete(api: RawApi, path: str) -> None:
    """Delete with grace period 0 (there is no kubelet to confirm a pod's end)."""
    status, body = await api.call("DELETE", path, params={"gracePeriodSeconds": "0"})
    if status >= 300 and status != 404:
        raise ApiError("DELETE", path, status, body)


def comparable(obj: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The attacher-owned fields of a VA or PV, with names replaced and times dropped.

    Our own ``attacher.csi-sidecars.io/*`` annotations are left out (the Go attacher does not
    write them), and so is ``detachError.errorCode`` (Go does not write it).
    """
    text = json.dumps(
        {
            "finalizers": obj["metadata"].get("finalizers"),
            "annotations": {
                k: v
                for k, v in (obj["metadata"].get("annotations") or {}).items()
                if not k.startswith(OUR_ANNOTATION_PREFIX) and not k.startswith("pv.kubernetes.io/")
            },
            "status": obj.get("status") if "attacher" in obj.get("spec", {}) else None,
        },
        sort_keys=True,
    )
    for old, new in names.items():
        text = text.replace(old, new)
    out: dict[str, Any] = json.loads(text)
    status = out.get("status") or {}
    for key in ("attachError", "detachError"):
        if isinstance(status.get(key), dict):
            status[key].pop("time", None)
    if isinstance(status.get("detachError"), dict):
        status["detachError"].pop("errorCode", None)
    return out
