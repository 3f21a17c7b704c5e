"""e2e: the whole suite in pods on a real node, from the csi-sidecars image.

A node DaemonSet (the playground driver, node-driver-registrar, livenessprobe) and a controller
Deployment (provisioner, attacher), with ServiceAccount tokens, as a user would deploy them;
busybox pods use the volumes. The image comes from ``testbed/build-images.sh csi-sidecars``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground import images, manifests, objects, podsuite
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import write_faults_file
from csi_sidecars.playground.process import free_port, poll_until
from tests.e2e.conftest import in_ci
from tests.e2e.real_node_support import (
    SC,
    busybox_pod,
    claim_volume,
    delete_pod,
    unique,
    wait_pod_phase,
)

VA = "/apis/storage.k8s.io/v1/volumeattachments"


def require_image() -> Path:
    tar = podsuite.image_tar()
    if not tar.exists():
        message = f"{tar} is missing: run testbed/build-images.sh csi-sidecars"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return tar


@pytest_asyncio.fixture(loop_scope="session")
async def suite(
    real_control_plane: ControlPlane, real_namespace: str
) -> AsyncIterator[manifests.SuiteSpec]:
    """The suite deployed in pods in the test's namespace; removed afterwards."""
    cp = real_control_plane
    tar = require_image()
    node = cp.real_nodes["node-1"]
    base = cp.work_dir / "pod-suite" / real_namespace
    spec = manifests.SuiteSpec(
        namespace=real_namespace,
        image=images.CSI_SIDECARS_IMAGE,
        driver_name=cp.driver_name,
        kubelet_root=str(node.paths.root),
        state_dir=str(base / "state"),
        faults_dir=str(base / "faults"),
        api_port=cp.api_port,
        liveness_port=free_port(),
        registrar_port=free_port(),
    )
    await podsuite.deploy(cp.admin, spec, image_tar=tar, importers=list(cp.real_nodes.values()))
    try:
        yield spec
    finally:
        await podsuite.remove(cp.admin, spec)


async def _pods(cp: ControlPlane, ns: str, label: str) -> list[dict[str, Any]]:
    listed = await cp.admin.get(
        f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{manifests.LABEL}={label}"
    )
    return list(listed["items"])


async def test_the_suite_in_pods_provisions_attaches_and_mounts(
    real_control_plane: ControlPlane, suite: manifests.SuiteSpec
) -> None:
    cp, ns, api = real_control_plane, suite.namespace, real_control_plane.admin
    # The sidecars run from the image, with their ServiceAccount's projected token.
    controller = (await _pods(cp, ns, "csi-controller"))[0]
    assert {c["image"] for c in controller["spec"]["containers"]} == {images.CSI_SIDECARS_IMAGE}
    assert controller["spec"]["serviceAccountName"] == "csi-controller"
    assert any(
        "serviceAccountToken" in str(v.get("projected", {})) for v in controller["spec"]["volumes"]
    )
    node_pod = (await _pods(cp, ns, "csi-node"))[0]
    statuses = {s["name"]: s for s in node_pod["status"]["containerStatuses"]}
    assert all(s["ready"] for s in statuses.values()), statuses

    sc = unique("pods-sc")
    await api.create(SC, objects.storage_class(sc, cp.driver_name))
    await api.create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", objects.pvc("data", sc))
    payload = f"in-pods-{uuid.uuid4().hex}"
    pod = busybox_pod(
        "app",
        f"echo {payload} > /data/file && sleep 3600",
        volumes=[claim_volume("data")],
        mounts=[{"name": "data", "mountPath": "/data"}],
    )
    await api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    await wait_pod_phase(api, ns, "app")
    out = await cp.kubectl("exec", "-n", ns, "app", "--", "cat", "/data/file")
    assert out.strip() == payload
    pvc = await api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
    pv = await api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    # Provisioned by the in-pod provisioner, attached by the in-pod attacher.
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == cp.driver_name
    vas = [
        va
        for va in (await api.get(VA))["items"]
        if va["spec"]["source"].get("persistentVolumeName") == pv["metadata"]["name"]
    ]
    assert vas and vas[0]["status"]["attached"] is True
    # The driver in the pod mounted on the host: the data is in its hostPath state directory.
    stored = Path(suite.state_dir) / "volumes" / pv["spec"]["csi"]["volumeHandle"] / "file"
    assert stored.read_text().strip() == payload
    logs = await cp.kubectl("logs", "-n", ns, controller["metadata"]["name"], "-c", "provisioner")
    assert pv["metadata"]["name"] in logs

    await delete_pod(api, ns, "app")
    await api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
    await api.wait_deleted(f"/api/v1/persistentvolumes/{pv['metadata']['name']}", 120)
    await api.wait_deleted(f"{VA}/{vas[0]['metadata']['name']}", 120)


async def test_livenessprobe_makes_kubelet_restart_a_driver_that_stops_answering(
    real_control_plane: ControlPlane, suite: manifests.SuiteSpec
) -> None:
    cp, ns = real_control_plane, suite.namespace

    async def driver_status() -> dict[str, Any]:
        pod = (await _pods(cp, ns, "csi-node"))[0]
        return next(s for s in pod["status"]["containerStatuses"] if s["name"] == "csi-driver")

    before = (await driver_status())["restartCount"]
    # The driver's Probe fails from now on: livenessprobe's /healthz turns 500, kubelet's
    # liveness probe of the driver container fails and kubelet restarts the container.
    faults = Path(suite.faults_dir) / "faults.json"
    write_faults_file(faults, [{"method": "Probe", "code": "FAILED_PRECONDITION"}])

    async def restarted() -> bool:
        return (await driver_status())["restartCount"] > before

    await poll_until(restarted, 90, "kubelet to restart the csi-driver container")
    write_faults_file(faults, [])

    async def healthy_again() -> bool:
        status = await driver_status()
        return bool(status["ready"]) and "running" in status["state"]

    await poll_until(healthy_again, 90, "the restarted driver to be running and ready")

    async def liveness_kill_event() -> bool:
        # kubelet names the cause when it kills the container: the liveness probe, not a
        # crash. (Its "Liveness probe failed" Unhealthy event was missing in loaded runs that
        # had this Killing event.) Its event recorder posts in the background: poll.
        items = (await cp.admin.get(f"/api/v1/namespaces/{ns}/events"))["items"]
        return any(
            e.get("reason") == "Killing"
            and "csi-driver failed liveness probe" in e.get("message", "")
            for e in items
        )

    try:
        await poll_until(liveness_kill_event, 60, "kubelet's event of the liveness restart")
    except TimeoutError:
        items = (await cp.admin.get(f"/api/v1/namespaces/{ns}/events"))["items"]
        seen = [(e.get("reason"), e.get("message", "")[:160]) for e in items]
        raise AssertionError(f"no liveness restart event; events: {seen}") from None
