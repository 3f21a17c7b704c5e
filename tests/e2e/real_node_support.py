"""Shared pieces of the real-node e2e tests: a control plane with kubelets, node plugins, pods.

The real-node modules run their own control plane (``ControlPlane(kubelet=True)``), separate
from the session's API-only one, because its Nodes, CSINodes and pods are kubelet's. Each test
starts the node plugin it needs (the playground driver with real mounts and
node-driver-registrar as host processes, or the sidecars in pods) and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csi_sidecars.playground import binaries, images, realnode
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane, Driver
from csi_sidecars.playground.driver.server import read_call_log
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from tests.e2e.conftest import in_ci, require

CSIDRIVERS = "/apis/storage.k8s.io/v1/csidrivers"
SC = "/apis/storage.k8s.io/v1/storageclasses"
#: Node-side CSI calls whose order the data-path tests check.
NODE_CALLS = ("NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")


def require_real_nodes() -> None:
    """Skip (fail under CI=true) when a piece real nodes need is missing."""
    require(*binaries.CONTROL_PLANE_BINARIES)
    missing = realnode.missing_requirements(binaries.default_bin_dir())
    if missing:
        message = realnode.explain_missing(missing)
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@dataclass
class NodePlugin:
    """The driver and node-driver-registrar of one node, run as host processes."""

    driver: Driver
    registrar: ManagedProcess
    registrar_port: int
    #: calls logged before this plugin started (the log file is the node's, kept across tests)
    skip: int = 0

    @property
    def call_log(self) -> Path:
        assert self.driver.call_log is not None
        return self.driver.call_log

    def calls(self, *methods: str) -> list[dict[str, Any]]:
        """The driver's logged calls of ``methods`` (all when none are given), in order."""
        logged = read_call_log(self.call_log)[self.skip :]
        return [c for c in logged if not methods or c["method"] in methods]

    async def registration_health(self) -> tuple[int, str]:
        """GET the registrar's ``/healthz/registration``."""
        url = f"http://127.0.0.1:{self.registrar_port}/healthz/registration"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            return resp.status, await resp.text()


async def recreate_csidriver(api: RawApi, name: str) -> None:
    """Delete the CSIDriver ``name`` and wait until it is gone (attachRequired is immutable)."""
    await api.delete(f"{CSIDRIVERS}/{name}")
    await api.wait_deleted(f"{CSIDRIVERS}/{name}", timeout=30)


@contextlib.asynccontextmanager
async def node_plugin(
    cp: ControlPlane, *driver_args: str, attach: bool = False, node: str = "node-1"
) -> AsyncIterator[NodePlugin]:
    """Run the driver (real mounts) and a registered node-driver-registrar on ``node``."""
    await recreate_csidriver(cp.admin, cp.driver_name)
    log = cp.work_dir / "drivers" / node / "calls.jsonl"
    skip = len(read_call_log(log))
    driver = await cp.start_driver(node, list(driver_args), attach=attach)
    port = free_port()
    registrar = await cp.start_registrar(driver, f"--http-endpoint=127.0.0.1:{port}")
    plugin = NodePlugin(driver, registrar, port, skip)
    try:
        await cp.wait_csinode_driver(node)
        yield plugin
    finally:
        await registrar.stop(timeout=10)
        if driver.process is not None:
            await driver.process.stop(timeout=10)
        cp.drivers.remove(driver)


def busybox_pod(
    name: str,
    command: str,
    *,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    devices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A busybox pod running ``sh -c command`` (grace period 0: sh ignores SIGTERM)."""
    container: dict[str, Any] = {
        "name": "app",
        "image": images.busybox_image_name(),
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", command],
    }
    if mounts:
        container["volumeMounts"] = mounts
    if devices:
        container["volumeDevices"] = devices
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
            "volumes": volumes or [],
        },
    }


def claim_volume(claim: str) -> dict[str, Any]:
    """A pod volume ``data`` from PVC ``claim``."""
    return {"name": "data", "persistentVolumeClaim": {"claimName": claim}}


async def wait_pod_phase(
    api: RawApi, namespace: str, name: str, phase: str = "Running", timeout: float = 120
) -> dict[str, Any]:
    """Wait until the pod is in ``phase``; the timeout message shows its last status."""
    return await api.wait_for(
        f"/api/v1/namespaces/{namespace}/pods/{name}",
        lambda o: o.get("status", {}).get("phase") == phase,
        timeout,
        f"pod {namespace}/{name} to be {phase}",
    )


async def delete_pod(api: RawApi, namespace: str, name: str, timeout: float = 120) -> None:
    """Delete a pod and wait until kubelet has finished with it (the object is gone)."""
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    await api.delete(path)
    await api.wait_deleted(path, timeout=timeout)


async def wait_calls(
    plugin: NodePlugin, method: str, count: int = 1, timeout: float = 120
) -> list[dict[str, Any]]:
    """Wait until the driver logged ``count`` finished ``method`` calls that succeeded."""

    async def enough() -> list[dict[str, Any]] | None:
        done = [c for c in plugin.calls(method) if c["code"] == "OK"]
        return done if len(done) >= count else None

    return await poll_until(enough, timeout, f"{count} successful {method} call(s)")


def unique(prefix: str) -> str:
    """A name unique to one test."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
