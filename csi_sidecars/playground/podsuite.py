"""Run the playground driver and csi-sidecars as pods on the testbed's real nodes.

:func:`deploy` imports the csi-sidecars image into every node, (re)creates the CSIDriver, applies
:func:`csi_sidecars.playground.manifests.suite_objects` and returns once the node DaemonSet and
the controller Deployment are available and kubelet lists the driver in the CSINode (which the
in-pod node-driver-registrar made happen). :func:`remove` takes it all down again and waits until
the pods are gone, so that a later test can run the driver another way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csi_sidecars.playground import images, manifests, objects, rbac
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.process import poll_until

CSIDRIVERS = "/apis/storage.k8s.io/v1/csidrivers"


def object_path(obj: dict[str, Any]) -> str:
    """The collection path of one suite object."""
    kind, meta = obj["kind"], obj["metadata"]
    namespaced = {
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    }
    if kind in namespaced:
        return namespaced[kind].format(ns=meta["namespace"])
    return rbac.api_path(obj)


def available(obj: dict[str, Any]) -> bool:
    """Whether a DaemonSet or Deployment has all its pods ready (and at least one)."""
    status = obj.get("status", {})
    if obj["kind"] == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        return bool(want) and status.get("numberReady", 0) == want
    return bool(status.get("availableReplicas", 0) >= obj["spec"].get("replicas", 1))


def _prepare(spec: manifests.SuiteSpec, image_tar: Path) -> None:
    if not image_tar.exists():
        raise FileNotFoundError(f"{image_tar} is missing: run testbed/build-images.sh csi-sidecars")
    Path(spec.state_dir).mkdir(parents=True, exist_ok=True)
    Path(spec.faults_dir).mkdir(parents=True, exist_ok=True)


async def deploy(
    api: RawApi,
    spec: manifests.SuiteSpec,
    *,
    image_tar: Path,
    importers: list[Any],
    timeout: float = 180,
) -> None:
    """Deploy the suite; see the module docstring.

    Args:
        api: an admin client.
        spec: what to deploy where.
        image_tar: the csi-sidecars image tar (``testbed/build-images.sh csi-sidecars``).
        importers: objects with ``async import_image(tar)`` (the real nodes).
        timeout: how long the workloads may take to become available.

    Raises:
        FileNotFoundError: the image tar is missing.
        TimeoutError: the workloads or the registration did not come up.
    """
    _prepare(spec, image_tar)
    for node in importers:
        await node.import_image(image_tar)
    await api.delete(f"{CSIDRIVERS}/{spec.driver_name}")
    await api.wait_deleted(f"{CSIDRIVERS}/{spec.driver_name}", timeout=30)
    await api.create(CSIDRIVERS, objects.csidriver(spec.driver_name, attach_required=spec.attach))
    for obj in manifests.suite_objects(spec):
        await api.ensure(object_path(obj), obj)
    for obj in (manifests.node_daemonset(spec), manifests.controller_deployment(spec)):
        path = f"{object_path(obj)}/{obj['metadata']['name']}"
        await api.wait_for(path, available, timeout, f"{obj['kind']} {path} to be available")

    async def registered() -> bool:
        csinode = await api.get_or_none(f"/apis/storage.k8s.io/v1/csinodes/{spec.node}")
        drivers = (csinode or {}).get("spec", {}).get("drivers") or []
        return any(d["name"] == spec.driver_name for d in drivers)

    await poll_until(registered, timeout, f"{spec.driver_name} in the CSINode of {spec.node}")


async def remove(api: RawApi, spec: manifests.SuiteSpec, timeout: float = 120) -> None:
    """Delete the workloads (waiting for their pods to go), bindings and ServiceAccounts."""
    workloads = (manifests.controller_deployment(spec), manifests.node_daemonset(spec))
    for obj in workloads:
        await api.delete(f"{object_path(obj)}/{obj['metadata']['name']}")

    async def pods_gone() -> bool:
        pods = await api.get(f"/api/v1/namespaces/{spec.namespace}/pods")
        mine = [
            p
            for p in pods.get("items", [])
            if p["metadata"].get("labels", {}).get(manifests.LABEL)
            in ("csi-node", "csi-controller")
        ]
        return not mine

    await poll_until(pods_gone, timeout, "the suite's pods to be deleted")
    for obj in manifests.suite_objects(spec):
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding", "ServiceAccount"):
            await api.delete(f"{object_path(obj)}/{obj['metadata']['name']}")


def image_tar() -> Path:
    """Where ``testbed/build-images.sh`` puts the csi-sidecars image."""
    return images.images_dir() / "csi-sidecars.tar"
