"""csi-sidecars provisioner on the testbed: our role as a subprocess through the CLI, with the
csi-provisioner RBAC identity, against a playground driver of its own and a real control plane
(kube-controller-manager binds, kube-scheduler picks nodes; pods never run).

One driver and one provisioner serve the whole module; every test uses its own StorageClass.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, free_port, poll_until
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.journal import decode_records, journal_name
from tests.e2e.provisioner_support import (
    PV,
    ProvDriver,
    claims_path,
    events_of,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
    wait_event,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


class Running:
    """The module's driver and provisioner."""

    def __init__(self, driver: ProvDriver, proc: ManagedProcess, metrics_port: int) -> None:
        self.driver = driver
        self.proc = proc
        self.metrics_port = metrics_port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def running(control_plane: ControlPlane) -> AsyncIterator[Running]:
    """A driver and our provisioner (fast retries, metrics endpoint) for the module."""
    drv = await start_driver(control_plane)
    port = free_port()
    proc = await control_plane.start_sidecar(
        "provisioner",
        "--timeout=5s",
        "--retry-interval-start=200ms",
        "--retry-interval-max=2s",
        f"--http-endpoint=127.0.0.1:{port}",
        "--worker-threads=10",
        driver=drv.testbed_driver,
    )
    try:
        yield Running(drv, proc, port)
    finally:
        await proc.stop(timeout=10)
        if proc.returncode != 0:
            print(f"----- provisioner exit {proc.returncode} -----\n{proc.log_tail(100)}")
        await stop_driver(control_plane, drv)


LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#: The domain of csi-sidecars' own annotations and finalizers.
OURS = "csi-sidecars.io"


async def _journal(api: RawApi, driver: str) -> dict[str, Any]:
    """The records of the provisioner's journal (a Lease in its namespace, here ``default``)."""
    try:
        lease = await api.get(f"{LEASES}/{journal_name(driver)}")
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return decode_records(lease)[0]


async def _released(api: RawApi, namespace: str, name: str, driver: str) -> dict[str, Any]:
    pvc: dict[str, Any] = await api.get(f"{claims_path(namespace)}/{name}")
    meta = pvc["metadata"]
    # No PVC write of ours: neither a finalizer nor an annotation of csi-sidecars on the claim.
    assert not [f for f in meta.get("finalizers") or [] if OURS in f]
    assert not [a for a in meta.get("annotations") or {} if OURS in a]

    async def dropped() -> bool:
        return meta["uid"] not in await _journal(api, driver)

    await poll_until(dropped, 30, "the record dropped from the journal")
    return pvc


async def test_immediate_class_with_secrets_provisions_and_deletes(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    await api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "data-creds"},
            "data": {"password": base64.b64encode(b"s3cret").decode()},
        },
    )
    # The driver shows it received the secret by adding a volume context entry.
    drv.faults(
        [
            {
                "method": "CreateVolume",
                "match": {"secrets": {"password": "s3cret"}},
                "reply": {"volume": {"volumeContext": {"saw-secret": "yes"}}},
            }
        ]
    )
    sc = await make_class(
        api,
        drv.name,
        parameters={
            "csi.storage.k8s.io/provisioner-secret-name": "${pvc.name}-creds",
            "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
            "csi.storage.k8s.io/node-publish-secret-name": "publish-creds",
            "csi.storage.k8s.io/node-publish-secret-namespace": "${pvc.namespace}",
            "color": "blue",
        },
        mountOptions=["noatime"],
    )
    await api.create(claims_path(namespace), objects.pvc("data", sc, size="3Mi"))
    pvc = await wait_bound(api, namespace, "data")
    pv = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
    assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
    ann = pv["metadata"]["annotations"]
    assert ann[strings.ANN_PROVISIONED_BY] == drv.name
    assert ann[strings.ANN_DELETION_SECRET_NAME] == "data-creds"
    assert ann[strings.ANN_DELETION_SECRET_NAMESPACE] == namespace
    assert strings.PV_FINALIZER in pv["metadata"]["finalizers"]
    csi = pv["spec"]["csi"]
    assert csi["driver"] == drv.name
    assert csi["volumeAttributes"]["saw-secret"] == "yes"
    assert csi["volumeAttributes"][strings.PROVISIONER_IDENTITY_KEY].endswith(f"-{drv.name}")
    assert csi["nodePublishSecretRef"] == {"name": "publish-creds", "namespace": namespace}
    assert pv["spec"]["mountOptions"] == ["noatime"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    expr = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert expr == [{"key": objects.TOPOLOGY_KEY, "operator": "In", "values": [drv.node]}]
    volume = drv.volumes()[csi["volumeHandle"]]
    assert volume.parameters == {"color": "blue"}
    await _released(api, namespace, "data", drv.name)
    assert await events_of(api, namespace, "data", "ProvisioningSucceeded")
    assert await events_of(api, namespace, "data", "Provisioning")

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{running.metrics_port}/metrics") as resp,
    ):
        text = await resp.text()
    assert (
        f'csi_sidecar_operations_seconds_count{{driver_name="{drv.name}",'
        'grpc_status_code="OK",method_name="/csi.v1.Controller/CreateVolume"}'
    ) in text
    assert f'controller_persistentvolumeclaim_provision_total{{class="{sc}",source=""}}' in text
    assert 'workqueue_adds_total{name="claims"}' in text

    drv.faults([])
    await api.delete(f"{claims_path(namespace)}/data")
    await api.wait_deleted(f"{PV}/{pv['metadata']['name']}", timeout=60)
    assert csi["volumeHandle"] not in drv.volumes()


async def test_retain_class_keeps_the_volume(api: RawApi, namespace: str, running: Running) -> None:
    drv = running.driver
    sc = await make_class(api, drv.name, reclaim_policy="Retain")
    await api.create(claims_path(namespace), objects.pvc("kept", sc))
    pvc = await wait_bound(api, namespace, "kept")
    pv_path = f"{PV}/{pvc['spec']['volumeName']}"
    pv = await api.get(pv_path)
    assert strings.PV_FINALIZER not in (pv["metadata"].get("finalizers") or [])
    await api.delete(f"{claims_path(namespace)}/kept")
    pv = await api.wait_for(pv_path, lambda o: o["status"].get("phase") == "Released")
    handle = pv["spec"]["csi"]["volumeHandle"]
    assert handle in drv.volumes()
    await api.delete(pv_path)
    await api.wait_deleted(pv_path)
    assert handle in drv.volumes()  # Retain: deleting the PV object never deletes the volume


async def test_wait_for_first_consumer_uses_the_selected_node(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    sc = await make_class(api, drv.name, binding_mode="WaitForFirstConsumer")
    ns = f"/api/v1/namespaces/{namespace}"
    await api.create(claims_path(namespace), objects.pvc("late", sc))
    pod = objects.pod("consumer", ["late"])
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": drv.node}
    await api.create(f"{ns}/pods", pod)
    pvc = await wait_bound(api, namespace, "late")
    assert pvc["metadata"]["annotations"][strings.ANN_SELECTED_NODE] == drv.node
    pv = await api.get(f"{PV}/{pvc['spec']['volumeName']}")
    expr = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert expr == [{"key": objects.TOPOLOGY_KEY, "operator": "In", "values": [drv.node]}]
    volume = drv.volumes()[pv["spec"]["csi"]["volumeHandle"]]
    assert volume.topology == [{objects.TOPOLOGY_KEY: drv.node}]
    await api.delete(f"{ns}/pods/consumer")


async def test_clone_protects_its_source(api: RawApi, namespace: str, running: Running) -> None:
    drv = running.driver
    sc = await make_class(api, drv.name)
    await api.create(claims_path(namespace), objects.pvc("origin", sc, size="2Mi"))
    source = await wait_bound(api, namespace, "origin")
    source_pv = await api.get(f"{PV}/{source['spec']['volumeName']}")
    clone = objects.pvc("copy", sc, size="2Mi")
    clone["spec"]["dataSource"] = {"kind": "PersistentVolumeClaim", "name": "origin"}
    await api.create(claims_path(namespace), clone)
    copied = await wait_bound(api, namespace, "copy")
    copy_pv = await api.get(f"{PV}/{copied['spec']['volumeName']}")
    volume = drv.volumes()[copy_pv["spec"]["csi"]["volumeHandle"]]
    assert volume.source_volume_id == source_pv["spec"]["csi"]["volumeHandle"]
    origin = await api.get(f"{claims_path(namespace)}/origin")
    assert strings.CLONE_SOURCE_FINALIZER in origin["metadata"]["finalizers"]
    # The clone is Bound, so deleting the source releases it.
    await api.delete(f"{claims_path(namespace)}/origin")
    await api.wait_deleted(f"{claims_path(namespace)}/origin", timeout=30)


async def test_failing_driver_then_success_keeps_the_intent_until_the_pv(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    message = f"no room {uuid.uuid4().hex[:6]}"
    drv.faults([{"method": "CreateVolume", "code": "INTERNAL", "message": message, "times": 2}])
    sc = await make_class(api, drv.name)
    await api.create(claims_path(namespace), objects.pvc("flaky", sc))
    failed = await wait_event(api, namespace, "flaky", "ProvisioningFailed")
    assert failed[0]["message"] == f"rpc error: code = Internal desc = {message}"
    assert failed[0]["type"] == "Warning"
    pvc = await wait_bound(api, namespace, "flaky")
    await _released(api, namespace, "flaky", drv.name)
    assert pvc["spec"]["volumeName"] in drv.volume_names()
    drv.faults([])


async def test_invalid_argument_is_infeasible(
    api: RawApi, namespace: str, running: Running
) -> None:
    drv = running.driver
    drv.faults([{"method": "CreateVolume", "code": "INVALID_ARGUMENT", "message": "bad size"}])
    sc = await make_class(api, drv.name)
    await api.create(claims_path(namespace), objects.pvc("odd", sc))
    failed = await wait_event(api, namespace, "odd", "ProvisioningFailed")
    assert failed[0]["message"] == (
        "Volume provisioning failed with infeasible error. Retries will be delayed. "
        "rpc error: code = InvalidArgument desc = bad size"
    )
    pvc = await api.get(f"{claims_path(namespace)}/odd")
    # The intent was recorded in the journal before CreateVolume, not on the claim.
    assert pvc["metadata"]["uid"] in await _journal(api, drv.name)
    assert not [f for f in pvc["metadata"].get("finalizers") or [] if OURS in f]
    drv.faults([])
    # The slow retry (--retry-interval-max=2s) provisions it once the driver accepts.
    await wait_bound(api, namespace, "odd")
    await api.delete(f"{claims_path(namespace)}/odd")


async def test_leader_election_lease_named_after_the_driver(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any
) -> None:
    drv = await start_driver(control_plane, prefix="lead")
    try:
        await sidecar(
            "provisioner",
            "--leader-election",
            f"--leader-election-namespace={namespace}",
            driver=drv.testbed_driver,
        )
        lease_name = drv.name.replace(".", "-")
        lease = await api.wait_for(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease_name}",
            lambda o: bool(o["spec"].get("holderIdentity")),
            timeout=30,
            what="the provisioner's Lease",
        )
        assert lease["spec"]["holderIdentity"]
        sc = await make_class(api, drv.name)
        await api.create(claims_path(namespace), objects.pvc("led", sc))
        await wait_bound(api, namespace, "led")
        await api.delete(f"{claims_path(namespace)}/led")
        pvs = (await api.get(PV))["items"]
        for pv in pvs:
            if pv["spec"].get("csi", {}).get("driver") == drv.name:
                await api.wait_deleted(f"{PV}/{pv['metadata']['name']}", timeout=30)
    finally:
        await stop_driver(control_plane, drv)
