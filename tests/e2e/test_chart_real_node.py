"""e2e: the chart installed for real, on a node with a real kubelet and containerd.

``helm install`` of ``examples/hostpath.yaml``, adapted to what the testbed has: the playground
driver (from the csi-sidecars image, which carries it) instead of hostpathplugin, the local
image ``testbed/build-images.sh csi-sidecars`` built (imported into the node's containerd, pull
policy ``IfNotPresent``), the node's kubelet directory, and host networking for the pods because
the testbed's API server listens on 127.0.0.1 only (``KUBERNETES_SERVICE_HOST``/``PORT`` point
there; every HTTP endpoint is bound to 127.0.0.1 on a free port through ``extraArgs``). The
chart's own DaemonSet and Deployment then run: kubelet registers the driver through the chart's
node-driver-registrar, cluster-driver-registrar applies the CSIDriver, and a pod with a claim
of the chart's StorageClass (WaitForFirstConsumer) reaches Running and writes its data onto the
volume the driver mounted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from csi_sidecars import __version__
from csi_sidecars.playground import images, objects, podsuite
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import free_port, poll_until
from tests.e2e.chart_support import CHART, CSIDRIVERS, HelmCli, HelmError
from tests.e2e.conftest import in_ci, require
from tests.e2e.real_node_support import busybox_pod, claim_volume, delete_pod, wait_pod_phase

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RELEASE = "real"
PV = "/api/v1/persistentvolumes"
PREFIX = f"{RELEASE}-csi-sidecars"
#: The chart's roles that talk to the API server (they get its address) and every role's
#: values key: each serves HTTP on a port of its own (the pods share the host's network).
API_ROLES = ("provisioner", "attacher", "clusterDriverRegistrar")
ROLES = {
    "controller": (*API_ROLES, "livenessprobe"),
    "node": ("nodeDriverRegistrar", "livenessprobe"),
}


def _claims(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/persistentvolumeclaims"


def _require_image() -> Path:
    tar = podsuite.image_tar()
    if not tar.exists():
        message = f"{tar} is missing: run testbed/build-images.sh csi-sidecars"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return tar


def real_node_values(cp: ControlPlane, driver: str, state_dir: Path, sc: str) -> dict[str, Any]:
    """``examples/hostpath.yaml`` with the playground driver, the local image and the testbed's
    node (its kubelet directory, the API server on 127.0.0.1, free ports)."""
    values: dict[str, Any] = yaml.safe_load((CHART / "examples" / "hostpath.yaml").read_text())
    registry, _, repository = images.CSI_SIDECARS_IMAGE.rpartition(":")[0].partition("/")
    image = {"registry": registry, "repository": repository, "tag": __version__}
    values["image"] = {**image, "pullPolicy": "IfNotPresent"}
    values["driver"] = {
        "name": driver,
        "image": {**image, "pullPolicy": "IfNotPresent"},
        "command": ["python3", "-m", "csi_sidecars.playground.driver"],
        "args": [
            "--endpoint=$(CSI_ENDPOINT)",
            "--nodeid=$(KUBE_NODE_NAME)",
            f"--drivername={driver}",
            "--statedir=/csi-data-dir",
            "--mount-volumes",
            "-v=3",
        ],
    }
    values["kubeletDir"] = str(cp.real_nodes["node-1"].paths.root)
    values["node"]["volumes"][0]["hostPath"]["path"] = str(state_dir)
    api_env = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(cp.api_port)},
    ]
    for pod, roles in ROLES.items():
        values[pod]["hostNetwork"] = True
        for role in roles:
            port = free_port()
            values[pod][role] = {
                **values[pod].get(role, {}),
                "httpPort": port,
                "extraArgs": [f"--http-endpoint=127.0.0.1:{port}"],
                **({"env": api_env} if role in API_ROLES else {}),
            }
    # The snapshot roles need the snapshot CRDs and a snapshot controller that reaches the API
    # (it has no host network value); the resizer is not exercised here.
    for role in ("snapshotter", "resizer"):
        values["controller"][role]["enabled"] = False
    values["snapshotController"]["enabled"] = False
    values["storageClasses"] = [{"name": sc, "volumeBindingMode": "WaitForFirstConsumer"}]
    return values


@dataclass
class RealRelease:
    """The chart installed on the real-node testbed."""

    cp: ControlPlane
    namespace: str
    driver: str
    storage_class: str
    state_dir: Path
    values: dict[str, Any]

    @property
    def api(self) -> RawApi:
        return self.cp.admin


@pytest_asyncio.fixture(loop_scope="session")
async def real_release(
    real_control_plane: ControlPlane, real_namespace: str, tmp_path: Path
) -> AsyncIterator[RealRelease]:
    """The chart installed in the test's namespace; uninstalled (pods gone) afterwards."""
    require("helm")
    tar = _require_image()
    cp = real_control_plane
    await cp.import_image(tar)
    await cp.wait_default_service_account(real_namespace)
    driver = f"chart-{uuid.uuid4().hex[:6]}.csi.test"
    state_dir = cp.work_dir / "chart-real" / real_namespace / "state"
    state_dir.mkdir(parents=True)
    sc = f"chart-real-{uuid.uuid4().hex[:6]}"
    values = real_node_values(cp, driver, state_dir, sc)
    helm = HelmCli(cp, tmp_path)
    await helm.install(RELEASE, real_namespace, values)
    release = RealRelease(cp, real_namespace, driver, sc, state_dir, values)
    try:
        yield release
    finally:
        # What a failed test left: the app pod, then the claim (its PV needs the provisioner).
        await delete_pod(cp.admin, real_namespace, "app")
        claim = await cp.admin.get_or_none(f"{_claims(real_namespace)}/data")
        await cp.admin.delete(f"{_claims(real_namespace)}/data")
        if claim and claim["spec"].get("volumeName"):
            with contextlib.suppress(TimeoutError):
                await cp.admin.wait_deleted(f"{PV}/{claim['spec']['volumeName']}", 60)
        try:
            await helm.uninstall(RELEASE, real_namespace)
        except HelmError as err:  # the test failed before it could uninstall
            print(err)

        async def pods_gone() -> bool:
            listed = await cp.admin.get(f"/api/v1/namespaces/{real_namespace}/pods")
            return not listed["items"]

        await poll_until(pods_gone, 120, "the release's pods to be deleted")
        await cp.admin.delete(f"{CSIDRIVERS}/{driver}")


async def _workload(api: RawApi, ns: str, kind: str, name: str) -> dict[str, Any]:
    """Wait until the chart's DaemonSet or Deployment has all its pods ready; return it."""
    path = f"/apis/apps/v1/namespaces/{ns}/{kind.lower()}s/{PREFIX}-{name}"
    return await api.wait_for(path, podsuite.available, 240, f"{kind} {name} to be ready")


async def _pod_of(api: RawApi, ns: str, component: str) -> dict[str, Any]:
    listed = await api.get(
        f"/api/v1/namespaces/{ns}/pods",
        labelSelector=f"app.kubernetes.io/component={component}",
    )
    (pod,) = listed["items"]
    return dict(pod)


async def test_the_chart_runs_on_a_real_node(real_release: RealRelease) -> None:
    rel, api, ns = real_release, real_release.api, real_release.namespace
    await _workload(api, ns, "DaemonSet", "node")
    await _workload(api, ns, "Deployment", "controller")

    # kubelet registered the driver through the chart's node-driver-registrar ...
    async def registered() -> bool:
        csinode = await api.get_or_none("/apis/storage.k8s.io/v1/csinodes/node-1")
        drivers = (csinode or {}).get("spec", {}).get("drivers") or []
        return any(d["name"] == rel.driver for d in drivers)

    await poll_until(registered, 60, f"{rel.driver} in the CSINode")
    # ... and cluster-driver-registrar applied the CSIDriver the example asks for
    csidriver = await api.wait_for(
        f"{CSIDRIVERS}/{rel.driver}",
        lambda o: bool(o["metadata"].get("ownerReferences")),
        what="the CSIDriver applied by cluster-driver-registrar",
    )
    assert csidriver["spec"]["attachRequired"] is False  # the driver has no ControllerPublish
    assert csidriver["spec"]["podInfoOnMount"] is True
    assert csidriver["spec"]["fsGroupPolicy"] == "File"

    claims = _claims(ns)
    await api.create(claims, objects.pvc("data", rel.storage_class))
    payload = f"from-the-chart-{uuid.uuid4().hex}"
    pod = busybox_pod(
        "app",
        f"echo {payload} > /data/file && sleep 3600",
        volumes=[claim_volume("data")],
        mounts=[{"name": "data", "mountPath": "/data"}],
    )
    await api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    await wait_pod_phase(api, ns, "app", timeout=180)
    out = await rel.cp.kubectl("exec", "-n", ns, "app", "--", "cat", "/data/file")
    assert out.strip() == payload
    pvc = await api.get(f"{claims}/data")
    pv = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == rel.driver
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "node-1"
    # The driver in the chart's node pod mounted the volume: the data is in its state directory.
    stored = rel.state_dir / "volumes" / pv["spec"]["csi"]["volumeHandle"] / "file"
    assert stored.read_text().strip() == payload

    # Every container of the chart's pods runs the local image and none restarted.
    for component in ("controller", "node"):
        chart_pod = await _pod_of(api, ns, component)
        statuses = chart_pod["status"]["containerStatuses"]
        assert {s["name"]: s["restartCount"] for s in statuses} == {s["name"]: 0 for s in statuses}
        assert all(s["ready"] for s in statuses), statuses
        assert {c["image"] for c in chart_pod["spec"]["containers"]} == {images.CSI_SIDECARS_IMAGE}
    controller = await _pod_of(api, ns, "controller")
    logs = await rel.cp.kubectl(
        "logs", "-n", ns, controller["metadata"]["name"], "-c", "csi-provisioner"
    )
    assert pv["metadata"]["name"] in logs

    await delete_pod(api, ns, "app")
    await api.delete(f"{claims}/data")
    await api.wait_deleted(f"{PV}/{pv['metadata']['name']}", 120)

    async def volume_deleted() -> bool:
        return not stored.parent.exists()

    await poll_until(volume_deleted, 60, "the driver to delete the volume's directory")
