"""The Helm chart on the testbed's real API server: install, upgrade, uninstall.

There is no kubelet and no workload controller: the Deployments and DaemonSet are accepted and
stored (the node plugin's privileged pod template needs kube-apiserver's
``--allow-privileged=true``), but no pod runs. Each test uses its own namespace and a driver
name of its own, so its CSIDriver is not the testbed driver's. The testbed installed the
snapshot CRDs itself, so to this chart they belong to another owner: they must be left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars import crds
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from tests.e2e.chart_support import (
    CRDS,
    CSIDRIVERS,
    RBAC,
    HelmCli,
    HelmError,
    driver_values,
    inventory,
    unique,
)
from tests.e2e.conftest import require

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def helm(control_plane: ControlPlane, tmp_path: Path) -> HelmCli:
    """helm against the session's control plane."""
    require("helm")
    return HelmCli(control_plane, tmp_path)


@pytest_asyncio.fixture(loop_scope="session")
async def release_ns(api: RawApi) -> AsyncIterator[str]:
    """A namespace for one release (without the testbed's grants: the chart brings its own)."""
    name = unique("chart")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await api.create("/api/v1/namespaces", body)
    yield name
    await api.delete(f"/api/v1/namespaces/{name}")


def _deployment(name: str, ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"


def _containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


async def test_install_upgrade_uninstall_leaves_only_the_crds(
    api: RawApi, helm: HelmCli, release_ns: str
) -> None:
    driver = f"{unique('chart')}.csi.example.com"
    namespaces = [release_ns, "default"]
    before = await inventory(api, namespaces)
    crds_before = {c["metadata"]["name"]: c for c in (await api.get(CRDS))["items"]}
    values = driver_values(
        driver,
        controller={"snapshotter": {"enabled": True}, "resizer": {"enabled": True}},
        snapshotController={"enabled": True},
        storageClasses=[{"name": f"{release_ns}-sc"}],
    )
    notes = await helm.install("rel", release_ns, values)

    # The testbed's snapshot CRDs are another owner's: left alone, and NOTES say so.
    for name in crds.SNAPSHOT_CRD_NAMES:
        assert f"CRD {name} exists and was not installed by this release" in notes
        live = await api.get(f"{CRDS}/{name}")
        assert (
            live["metadata"]["resourceVersion"]
            == (crds_before[name]["metadata"]["resourceVersion"])
        )
    assert f"kubectl get csidriver {driver}" in notes

    installed = await inventory(api, namespaces) - before
    prefix = "rel-csi-sidecars"
    roles = ["provisioner", "attacher", "snapshotter", "resizer", "cluster-driver-registrar"]
    for role in [*roles, "snapshot-controller"]:
        assert f"{RBAC}/clusterroles/{prefix}-{role}" in installed
        assert f"{RBAC}/clusterrolebindings/{prefix}-{role}" in installed
        assert f"{RBAC}/namespaces/{release_ns}/roles/{prefix}-{role}" in installed
    assert f"{RBAC}/namespaces/default/roles/{prefix}-cluster-driver-registrar-events" in installed
    workloads = [("deployments", "controller"), ("deployments", "snapshot-controller")]
    for kind, name in [*workloads, ("daemonsets", "node")]:
        assert f"/apis/apps/v1/namespaces/{release_ns}/{kind}/{prefix}-{name}" in installed
    node = await api.get(f"/apis/apps/v1/namespaces/{release_ns}/daemonsets/{prefix}-node")
    assert _containers(node)["csi-driver"]["securityContext"]["privileged"] is True
    # registrar mode: nobody but the (not running) registrar creates the CSIDriver
    assert await api.get_or_none(f"{CSIDRIVERS}/{driver}") is None

    # An upgrade that changes immutable CSIDriver fields: no helm error, new registrar flags.
    modes = ["Persistent", "Ephemeral"]
    values["csiDriver"] = {"attachRequired": False, "volumeLifecycleModes": modes}
    await helm.upgrade("rel", release_ns, values)
    assert await helm.revision("rel", release_ns) == 2
    controller = await api.get(_deployment(f"{prefix}-controller", release_ns))
    args = _containers(controller)["cluster-driver-registrar"]["args"]
    assert "--attach-required=false" in args
    assert "--volume-lifecycle-modes=Persistent,Ephemeral" in args

    await helm.uninstall("rel", release_ns)
    after = await inventory(api, namespaces)
    assert sorted(after - before) == []
    assert sorted(before - after) == []
    crds_after = {c["metadata"]["name"]: c for c in (await api.get(CRDS))["items"]}
    for name in crds.SNAPSHOT_CRD_NAMES:
        assert crds_after[name]["metadata"]["uid"] == crds_before[name]["metadata"]["uid"]


async def test_template_mode_upgrades_and_explains_immutable_changes(
    api: RawApi, helm: HelmCli, release_ns: str
) -> None:
    driver = f"{unique('tmpl')}.csi.example.com"
    path = f"{CSIDRIVERS}/{driver}"
    values = driver_values(driver, csiDriver={"mode": "template"})
    await helm.install("tmpl", release_ns, values)
    live = await api.get(path)
    assert live["spec"]["attachRequired"] is True
    assert live["spec"]["podInfoOnMount"] is False

    # Mutable fields change in place.
    values["csiDriver"] = {"mode": "template", "podInfoOnMount": True, "fsGroupPolicy": "File"}
    await helm.upgrade("tmpl", release_ns, values)
    live = await api.get(path)
    assert (live["spec"]["podInfoOnMount"], live["spec"]["fsGroupPolicy"]) == (True, "File")
    uid = live["metadata"]["uid"]

    # An immutable one is refused before anything is sent, with what to do instead.
    values["csiDriver"] = {**values["csiDriver"], "attachRequired": False}
    with pytest.raises(HelmError) as failed:
        await helm.upgrade("tmpl", release_ns, values)
    assert (
        f"CSIDriver {driver}: attachRequired is immutable (cluster: true, values: false). "
        f"Delete the object first (kubectl delete csidriver {driver})"
    ) in failed.value.stderr
    values["csiDriver"] = {"mode": "template", "volumeLifecycleModes": ["Ephemeral"]}
    with pytest.raises(HelmError) as failed:
        await helm.upgrade("tmpl", release_ns, values)
    assert "volumeLifecycleModes is immutable (cluster: Persistent, values: Ephemeral)" in (
        failed.value.stderr
    )
    assert await helm.revision("tmpl", release_ns) == 2
    assert (await api.get(path))["metadata"]["uid"] == uid

    # Following the advice works.
    await api.delete(path)
    await api.wait_deleted(path)
    await helm.upgrade("tmpl", release_ns, values)
    assert (await api.get(path))["spec"]["volumeLifecycleModes"] == ["Ephemeral"]
    await helm.uninstall("tmpl", release_ns)
    assert await api.get_or_none(path) is None


async def test_the_hostpath_example_installs_as_it_is(
    api: RawApi, helm: HelmCli, release_ns: str
) -> None:
    """``helm install NAME charts/csi-sidecars -f charts/csi-sidecars/examples/hostpath.yaml``."""
    before = await inventory(api, [release_ns, "default"])
    notes = await helm.run(
        "install",
        "hostpath",
        str(helm.chart),
        "-n",
        release_ns,
        "-f",
        str(helm.chart / "examples" / "hostpath.yaml"),
    )
    assert "kubectl get csidriver hostpath.csi.k8s.io" in notes
    prefix = "hostpath-csi-sidecars"
    controller = await api.get(_deployment(f"{prefix}-controller", release_ns))
    names = set(_containers(controller))
    assert names == {
        "csi-provisioner",
        "csi-attacher",
        "csi-snapshotter",
        "csi-resizer",
        "cluster-driver-registrar",
        "liveness-probe",
    }
    node = await api.get(f"/apis/apps/v1/namespaces/{release_ns}/daemonsets/{prefix}-node")
    driver = _containers(node)["csi-driver"]
    assert driver["image"] == "registry.k8s.io/sig-storage/hostpathplugin:v1.17.1"
    sc = await api.get("/apis/storage.k8s.io/v1/storageclasses/csi-hostpath-sc")
    assert sc["provisioner"] == "hostpath.csi.k8s.io"
    await helm.uninstall("hostpath", release_ns)
    assert await inventory(api, [release_ns, "default"]) == before
