"""The testbed is real: RBAC is enforced, controllers bind and attach, the Go provisioner works.

These tests check the testbed itself, with the Go reference provisioner where a sidecar is
needed, so a failure here points at the testbed and not at our sidecars.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane, Driver

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PV = "/api/v1/persistentvolumes"
SC = "/apis/storage.k8s.io/v1/storageclasses"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _storage_class(api: RawApi, binding_mode: str = "Immediate") -> str:
    name = _name("sc")
    await api.create(SC, objects.storage_class(name, binding_mode=binding_mode))
    return name


def _driver_has_volume(driver: Driver, volume_id: str) -> bool:
    assert driver.state_dir is not None
    state = driver.state_dir / "state.json"
    listed = state.exists() and volume_id in state.read_text()
    return listed and (driver.state_dir / "volumes" / volume_id).is_dir()


async def test_kubectl_sees_nodes_csinodes_storageclasses(
    control_plane: ControlPlane, api: RawApi
) -> None:
    sc = await _storage_class(api)
    out = await control_plane.kubectl("get", "nodes,csinodes,storageclasses", "-o", "json")
    items = json.loads(out)["items"]
    names = {(i["kind"], i["metadata"]["name"]) for i in items}
    for node in control_plane.node_names:
        assert ("Node", node) in names
        assert ("CSINode", node) in names
    assert ("StorageClass", sc) in names
    for item in items:
        if item["kind"] == "Node":
            ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}["Ready"]
            assert ready == "True"
            assert not item["spec"].get("taints")
            labels = item["metadata"]["labels"]
            assert labels[objects.TOPOLOGY_KEY] == item["metadata"]["name"]
            annotations = item["metadata"]["annotations"]
            assert annotations[objects.CONTROLLER_MANAGED_ATTACH] == "true"


async def test_rbac_is_enforced_per_identity(control_plane: ControlPlane) -> None:
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": _name("rbac-pv")},
        "spec": {
            "capacity": {"storage": "1Mi"},
            "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": control_plane.driver_name, "volumeHandle": "x"},
        },
    }
    async with control_plane.api("csi-attacher") as attacher:
        status, body = await attacher.call("POST", PV, pv)
        assert status == 403, body
        assert body["reason"] == "Forbidden"
        # The identity is authenticated and allowed what its role grants.
        status, _ = await attacher.call("GET", PV)
        assert status == 200
    async with control_plane.api("node-driver-registrar") as registrar:
        status, _ = await registrar.call("GET", PV)
        assert status == 403
    async with control_plane.api("csi-provisioner") as provisioner:
        created = await provisioner.create(PV, pv)
        assert created["metadata"]["name"] == pv["metadata"]["name"]
        await provisioner.delete(f"{PV}/{pv['metadata']['name']}")
    out = await control_plane.kubectl(
        "auth", "can-i", "create", "persistentvolumes", identity="csi-attacher", check=False
    )
    assert out.strip() == "no"


async def test_bad_token_is_unauthorized(control_plane: ControlPlane) -> None:
    async with RawApi(control_plane.server, "not-a-token", control_plane.ca_file) as anon:
        status, _ = await anon.call("GET", PV)
    assert status == 401


async def test_go_provisioner_provisions_binds_and_deletes(
    control_plane: ControlPlane, api: RawApi, driver: Driver, namespace: str, sidecar: Any
) -> None:
    sc = await _storage_class(api)
    await sidecar("provisioner", "--timeout=30s", implementation="go")
    pvc_path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/claim"
    await api.create(
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", objects.pvc("claim", sc)
    )

    pvc = await api.wait_for(pvc_path, lambda o: o.get("status", {}).get("phase") == "Bound")
    pv_name = pvc["spec"]["volumeName"]
    pv = await api.get(f"{PV}/{pv_name}")
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["csi"]["driver"] == control_plane.driver_name
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
        control_plane.driver_name
    )
    handle = pv["spec"]["csi"]["volumeHandle"]
    assert _driver_has_volume(driver, handle)

    await api.delete(pvc_path)
    await api.wait_deleted(f"{PV}/{pv_name}")
    assert not _driver_has_volume(driver, handle)


async def test_wait_for_first_consumer_selects_node_and_attaches(
    control_plane: ControlPlane, api: RawApi, driver: Driver, namespace: str, sidecar: Any
) -> None:
    sc = await _storage_class(api, binding_mode="WaitForFirstConsumer")
    await sidecar("provisioner", "--timeout=30s", implementation="go")
    ns = f"/api/v1/namespaces/{namespace}"
    await api.create(f"{ns}/persistentvolumeclaims", objects.pvc("late", sc))
    pod = objects.pod("consumer", ["late"])
    # Only the driver's node can host the volume (matters with CSI_SIDECARS_TESTBED_NODES > 1).
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": driver.node}
    await api.create(f"{ns}/pods", pod)

    pvc = await api.wait_for(
        f"{ns}/persistentvolumeclaims/late", lambda o: o["status"].get("phase") == "Bound"
    )
    annotations = pvc["metadata"]["annotations"]
    assert annotations["volume.kubernetes.io/selected-node"] == driver.node
    pod = await api.wait_for(f"{ns}/pods/consumer", lambda o: bool(o["spec"].get("nodeName")))
    assert pod["spec"]["nodeName"] == driver.node
    pv = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == objects.TOPOLOGY_KEY

    def attachment_for_pv(items: list[dict[str, Any]]) -> dict[str, Any] | None:
        for va in items:
            if va["spec"]["source"].get("persistentVolumeName") == pv["metadata"]["name"]:
                return va
        return None

    vas = await api.wait_for(
        "/apis/storage.k8s.io/v1/volumeattachments",
        lambda o: attachment_for_pv(o["items"]) is not None,
        what="kube-controller-manager to create a VolumeAttachment",
    )
    va = attachment_for_pv(vas["items"])
    assert va is not None
    assert va["spec"]["nodeName"] == driver.node
    assert va["spec"]["attacher"] == control_plane.driver_name
    await api.delete(f"{ns}/pods/consumer")


async def test_compaction_makes_old_resource_versions_gone(
    control_plane: ControlPlane, api: RawApi, namespace: str
) -> None:
    cms = f"/api/v1/namespaces/{namespace}/configmaps"
    created = await api.create(
        cms, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    )
    old_rv = created["metadata"]["resourceVersion"]
    for i in range(3):
        await api.patch(f"{cms}/c", {"data": {"i": str(i)}})
    revision = await control_plane.compact_etcd(restart_apiserver=True)
    assert revision > int(old_rv)

    events = [event async for event in api.watch(cms, old_rv, timeout=5)]
    assert events, "the watch ended without an event"
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    # A read that reaches etcd at the compacted revision is gone too.
    status, body = await api.call(
        "GET", cms, params={"resourceVersion": old_rv, "resourceVersionMatch": "Exact"}
    )
    assert status == 410, body
    # The current state is intact.
    assert (await api.get(f"{cms}/c"))["data"] == {"i": "2"}


async def test_apiserver_restart_keeps_state(control_plane: ControlPlane, api: RawApi) -> None:
    sc = await _storage_class(api)
    await control_plane.stop_apiserver()
    status = None
    with contextlib.suppress(OSError):
        status, _ = await api.call("GET", f"{SC}/{sc}", timeout=2)
    assert status is None
    await control_plane.start_apiserver()
    assert (await api.get(f"{SC}/{sc}"))["metadata"]["name"] == sc
