"""e2e: the chart installed for real, on a node with a real kubelet and containerd.

``helm install`` of ``examples/hostpath.yaml``, adapted to what the testbed has: the playground
driver (from the csi-sidecars image, which carries it) instead of hostpathplugin, the local
image ``testbed/build-images.sh csi-sidecars`` built (imported into the node's containerd, pull
policy ``IfNotPresent``), the node's kubelet directory, and host networking for the pods because
the testbed's API server listens on 127.0.0.1 only (``KUBERNETES_SERVICE_HOST``/``PORT`` point
there; every HTTP endpoint is bound to 127.0.0.1 on a free port through ``extraArgs``). The
chart's own DaemonSet and Deployments then run: kubelet registers the driver through the
chart's node-driver-registrar, cluster-driver-registrar applies the CSIDriver, a pod with a
claim of the chart's StorageClass (WaitForFirstConsumer) reaches Running and writes its data
onto the volume the driver mounted, the chart's snapshotter and snapshot controller snapshot
it, and a second pod reads the data from a claim restored from the snapshot. The same runs
with both bundles on (one container for the controller roles, one for the node roles).
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
from tests.e2e.chart_flows import is_ready, restoring, snapshot_class, volume_snapshot
from tests.e2e.chart_support import CHART, CSIDRIVERS, HelmCli, HelmError
from tests.e2e.conftest import in_ci, require
from tests.e2e.real_node_support import busybox_pod, claim_volume, delete_pod, wait_pod_phase

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

RELEASE = "real"
PV = "/api/v1/persistentvolumes"
PREFIX = f"{RELEASE}-csi-sidecars"
#: Every role's values path and whether it talks to the API server (then it gets the API
#: server's address); each serves HTTP on a port of its own (the pods share the host's network).
ROLES: dict[tuple[str, ...], bool] = {
    ("controller", "provisioner"): True,
    ("controller", "attacher"): True,
    ("controller", "snapshotter"): True,
    ("controller", "clusterDriverRegistrar"): True,
    ("controller", "livenessprobe"): False,
    ("node", "nodeDriverRegistrar"): False,
    ("node", "livenessprobe"): False,
    ("snapshotController",): True,
}
SNAP = "/apis/snapshot.storage.k8s.io/v1"


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
    """``examples/hostpath.yaml`` (snapshotter, snapshot controller and CRDs on) with the
    playground driver, the local image and the testbed's node (its kubelet directory, the API
    server on 127.0.0.1, free ports); the resizer off."""
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
    for pod in ("controller", "node", "snapshotController"):
        values[pod]["hostNetwork"] = True
    # One node: a second replica would ask for the same host ports (the example has one
    # controller replica already).
    values["snapshotController"]["replicas"] = 1
    for path, talks_to_api in ROLES.items():
        role = values
        for key in path:
            role = role.setdefault(key, {})
        port = free_port()
        role["httpPort"] = port
        role["extraArgs"] = [f"--http-endpoint=127.0.0.1:{port}"]
        if talks_to_api:
            role["env"] = api_env
            # Leases survive a busy shared machine (the chart's 15s/10s/5s are for clusters).
            role["leaderElection"] = {
                "leaseDuration": "60s",
                "renewDeadline": "45s",
                "retryPeriod": "10s",
            }
    values["controller"]["resizer"]["enabled"] = False  # not exercised here
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
    bundles: bool

    @property
    def api(self) -> RawApi:
        return self.cp.admin


@pytest_asyncio.fixture(loop_scope="session", params=[False, True], ids=["containers", "bundles"])
async def real_release(
    request: pytest.FixtureRequest,
    real_control_plane: ControlPlane,
    real_namespace: str,
    tmp_path: Path,
) -> AsyncIterator[RealRelease]:
    """The chart installed in the test's namespace; uninstalled (pods gone) afterwards.

    Twice: one container per role, and with both bundles (``controller.bundle.enabled``,
    ``node.bundle.enabled``: every controller role in one container, the node roles in
    another).
    """
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
    bundles = bool(request.param)
    values["controller"]["bundle"] = {"enabled": bundles}
    values["node"]["bundle"] = {"enabled": bundles}
    helm = HelmCli(cp, tmp_path)
    await helm.install(RELEASE, real_namespace, values)
    release = RealRelease(cp, real_namespace, driver, sc, state_dir, values, bundles)
    try:
        yield release
    finally:
        # What a failed test left: pods, the snapshot, then the claims (their PVs need the
        # provisioner, the snapshot the snapshotter).
        for pod in ("reader", "app"):
            await delete_pod(cp.admin, real_namespace, pod)
        await cp.admin.delete(f"{SNAP}/namespaces/{real_namespace}/volumesnapshots/snap")
        for name in ("copy", "data"):
            claim = await cp.admin.get_or_none(f"{_claims(real_namespace)}/{name}")
            await cp.admin.delete(f"{_claims(real_namespace)}/{name}")
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


async def _wait_running(rel: RealRelease, pod: str) -> None:
    """Wait until ``pod`` runs; on timeout, the error shows the namespace's events."""
    try:
        await wait_pod_phase(rel.api, rel.namespace, pod, timeout=180)
    except TimeoutError as err:
        listed = await rel.api.get(f"/api/v1/namespaces/{rel.namespace}/events")
        seen = [
            f"{e['involvedObject'].get('name')}: {e.get('reason')}: {e.get('message')}"
            for e in listed["items"]
        ]
        raise TimeoutError(f"{err}; events: {seen[-20:]}") from None


async def _probe_events(rel: RealRelease) -> list[str]:
    """The namespace's probe failures and kills, for an error message."""
    listed = await rel.api.get(f"/api/v1/namespaces/{rel.namespace}/events")
    return [
        f"{e['involvedObject'].get('name')}: {e.get('reason')}: {e.get('message')}"
        for e in listed["items"]
        if e.get("reason") in ("Unhealthy", "Killing", "BackOff")
    ]


async def _started(rel: RealRelease, component: str) -> dict[str, Any]:
    """Wait until every container of the chart's ``component`` pod is started and ready."""

    async def all_started() -> dict[str, Any] | None:
        pod = await _pod_of(rel.api, rel.namespace, component)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        done = statuses and all(s.get("started") and s.get("ready") for s in statuses)
        return pod if done else None

    try:
        return await poll_until(all_started, 180, f"the {component} containers started")
    except TimeoutError as err:
        raise TimeoutError(f"{err}; {await _probe_events(rel)}") from None


async def _pod_of(api: RawApi, ns: str, component: str) -> dict[str, Any]:
    listed = await api.get(
        f"/api/v1/namespaces/{ns}/pods",
        labelSelector=f"app.kubernetes.io/component={component}",
    )
    (pod,) = listed["items"]
    return dict(pod)


async def test_the_chart_runs_provisions_snapshots_and_restores_on_a_real_node(
    real_release: RealRelease,
) -> None:
    rel, api, ns = real_release, real_release.api, real_release.namespace
    await _workload(api, ns, "DaemonSet", "node")
    await _workload(api, ns, "Deployment", "controller")
    await _workload(api, ns, "Deployment", "snapshot-controller")

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
    await _wait_running(rel, "app")
    out = await rel.cp.kubectl("exec", "-n", ns, "app", "--", "cat", "/data/file")
    assert out.strip() == payload
    pvc = await api.get(f"{claims}/data")
    pv = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == rel.driver
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "node-1"
    # The driver in the chart's node pod mounted the volume: the data is in its state directory.
    stored = rel.state_dir / "volumes" / pv["spec"]["csi"]["volumeHandle"] / "file"
    assert stored.read_text().strip() == payload

    # The chart's snapshotter and snapshot controller cut a snapshot of it; a claim restored
    # from the snapshot holds the same data, which a second pod reads.
    cls = await snapshot_class(api, rel.driver)
    snaps = f"{SNAP}/namespaces/{ns}/volumesnapshots"
    await api.create(snaps, volume_snapshot("snap", "data", cls))
    snap = await api.wait_for(f"{snaps}/snap", is_ready, 120, "the snapshot ready")
    size = snap["status"]["restoreSize"]
    await api.create(claims, restoring("copy", rel.storage_class, "snap", size))
    reader = busybox_pod(
        "reader",
        "sleep 3600",
        volumes=[claim_volume("copy")],
        mounts=[{"name": "data", "mountPath": "/data"}],
    )
    await api.create(f"/api/v1/namespaces/{ns}/pods", reader)
    await _wait_running(rel, "reader")
    out = await rel.cp.kubectl("exec", "-n", ns, "reader", "--", "cat", "/data/file")
    assert out.strip() == payload
    copy = await api.get(f"{claims}/copy")
    copy_pv = await api.get(f"{PV}/{copy['spec']['volumeName']}")
    assert copy_pv["spec"]["csi"]["volumeHandle"] != pv["spec"]["csi"]["volumeHandle"]

    # Every container of the chart's pods runs the local image, passed its startup probe (its
    # liveness probe is live from then on), is ready, and none restarted.
    for component in ("controller", "node", "snapshot-controller"):
        chart_pod = await _started(rel, component)
        statuses = chart_pod["status"]["containerStatuses"]
        restarted = {s["name"]: s.get("lastState") for s in statuses if s["restartCount"]}
        assert not restarted, f"{component} restarted: {restarted}; {await _probe_events(rel)}"
        assert {c["image"] for c in chart_pod["spec"]["containers"]} == {images.CSI_SIDECARS_IMAGE}
    controller = await _pod_of(api, ns, "controller")
    sidecars = {c["name"] for c in controller["spec"]["containers"]} - {"csi-driver"}
    node = await _pod_of(api, ns, "node")
    node_sidecars = {c["name"] for c in node["spec"]["containers"]} - {"csi-driver"}
    if rel.bundles:
        assert sidecars == node_sidecars == {"csi-sidecars"}
    else:
        assert "csi-provisioner" in sidecars and "node-driver-registrar" in node_sidecars
    container = "csi-sidecars" if rel.bundles else "csi-provisioner"
    logs = await rel.cp.kubectl("logs", "-n", ns, controller["metadata"]["name"], "-c", container)
    assert pv["metadata"]["name"] in logs

    for name in ("reader", "app"):
        await delete_pod(api, ns, name)
    await api.delete(f"{snaps}/snap")
    await api.wait_deleted(f"{snaps}/snap", 60)
    await api.delete(f"{SNAP}/volumesnapshotclasses/{cls}")
    for name, volume in (("copy", copy_pv), ("data", pv)):
        await api.delete(f"{claims}/{name}")
        await api.wait_deleted(f"{PV}/{volume['metadata']['name']}", 120)

    async def volumes_deleted() -> bool:
        return not any((rel.state_dir / "volumes").iterdir())

    await poll_until(volumes_deleted, 60, "the driver to delete the volumes' directories")
