"""``csi-sidecars doctor`` against real broken situations on the testbed.

Each test breaks something for real (a class that does not exist, a provisioner killed while
holding its Lease, a driver failing CreateVolume, a node where the driver never registered, a
volume whose attacher is gone) and checks doctor's diagnosis: the code, and that the summary and
evidence carry the facts a person needs. Situations that need time to become "stuck" (15 s of
no reaction) are set up once for the module, before the first test, so their waits overlap with
the other tests.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from csi_sidecars.doctor import names
from csi_sidecars.doctor.scan import Target
from csi_sidecars.playground import objects
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from tests.e2e.attacher_support import FAST_RETRIES, VA_PATH, va_body
from tests.e2e.doctor_support import (
    cli,
    delete_pv_for_good,
    diagnosis,
    doctor,
    drop_read_only,
    read_only_kubeconfig,
    start_unregistered_driver,
    static_pv,
)
from tests.e2e.provisioner_support import (
    PV,
    SC,
    ProvDriver,
    claims_path,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)

PVC = "PersistentVolumeClaim"
FAULT = "backend pool is full"


def claim(name: str, storage_class: str | None, size: str = "1Mi") -> dict[str, Any]:
    body = objects.pvc(name, storage_class or "", size=size)
    if storage_class is None:
        del body["spec"]["storageClassName"]
    return body


class Slow:
    """Situations that become "stuck" only after doctor's grace period."""

    def __init__(self, namespace: str, orphan: str, pv: str, pv_driver: str) -> None:
        self.namespace = namespace
        self.orphan = orphan
        self.pv = pv
        self.pv_driver = pv_driver


@pytest_asyncio.fixture(scope="module", loop_scope="session", autouse=True)
async def slow(control_plane: ControlPlane) -> AsyncIterator[Slow]:
    """A claim of a registered driver nobody provisions for; a volume deleted while it still
    carries the finalizer of an attacher that is not installed any more."""
    cp = control_plane
    ns = f"doctor-{uuid.uuid4().hex[:6]}"
    await cp.create_namespace(ns)
    drv = await start_driver(cp, prefix="doc-noprov")
    sc = await make_class(cp.admin, drv.name)
    await cp.admin.create(claims_path(ns), claim("orphan", sc))
    gone = f"gone-{uuid.uuid4().hex[:6]}.csi.test"
    await cp.admin.ensure("/apis/storage.k8s.io/v1/csidrivers", objects.csidriver(gone))
    pv_name = f"doc-pv-{uuid.uuid4().hex[:6]}"
    await cp.admin.create(PV, static_pv(pv_name, gone, [names.attacher_finalizer(gone)]))
    await cp.admin.delete(f"{PV}/{pv_name}")
    try:
        yield Slow(ns, "orphan", pv_name, gone)
    finally:
        await delete_pv_for_good(cp, pv_name)
        await cp.admin.delete(f"/apis/storage.k8s.io/v1/csidrivers/{gone}")
        await cp.admin.delete(f"{claims_path(ns)}/orphan")
        await cp.admin.delete(f"{SC}/{sc}")
        await stop_driver(cp, drv)
        await cp.admin.delete(f"/api/v1/namespaces/{ns}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    """A registered driver that fails CreateVolume for classes with ``fail: "yes"``."""
    drv = await start_driver(control_plane, prefix="doc")
    drv.faults(
        [
            {
                "method": "CreateVolume",
                "code": "RESOURCE_EXHAUSTED",
                "message": FAULT,
                "match": {"parameters": {"fail": "yes"}},
            },
        ]
    )
    try:
        yield drv
    finally:
        await stop_driver(control_plane, drv)


async def test_claim_of_a_class_that_does_not_exist(
    control_plane: ControlPlane, namespace: str
) -> None:
    missing = f"gold-{uuid.uuid4().hex[:6]}"
    await control_plane.admin.create(claims_path(namespace), claim("data", missing))
    found = await diagnosis(control_plane, Target(PVC, "data", namespace), "StorageClassNotFound")
    assert f'StorageClass "{missing}", which does not exist' in found.summary
    assert found.next_step.startswith(f'create StorageClass "{missing}"')


async def test_claim_without_class_and_no_default_class(
    control_plane: ControlPlane, namespace: str
) -> None:
    classes = (await control_plane.admin.get(SC))["items"]
    defaults = [
        c["metadata"]["name"]
        for c in classes
        if (c["metadata"].get("annotations") or {}).get(names.ANN_DEFAULT_CLASS) == "true"
    ]
    assert defaults == [], f"the testbed must have no default StorageClass here: {defaults}"
    await control_plane.admin.create(claims_path(namespace), claim("data", None, size="13Gi"))
    found = await diagnosis(control_plane, Target(PVC, "data", namespace), "NoDefaultStorageClass")
    assert "no default StorageClass" in found.summary
    assert names.ANN_DEFAULT_CLASS in found.next_step


async def test_wait_for_first_consumer_without_a_pod(
    control_plane: ControlPlane, namespace: str, shared: ProvDriver
) -> None:
    sc = await make_class(control_plane.admin, shared.name, binding_mode="WaitForFirstConsumer")
    try:
        await control_plane.admin.create(claims_path(namespace), claim("cache", sc))
        found = await diagnosis(
            control_plane, Target(PVC, "cache", namespace), "WaitingForFirstConsumer"
        )
        assert "no Pod uses it" in found.summary
        # The same through the command line, as JSON.
        code, out, err = await cli(
            "pvc", "cache", "-n", namespace, "-o", "json", kubeconfig=control_plane.kubeconfig()
        )
        assert code == 1, err
        doc = json.loads(out)
        assert doc["healthy"] is False
        assert [(f["code"], f["object"]["name"]) for f in doc["findings"]] == [
            ("WaitingForFirstConsumer", "cache")
        ]
        assert any(
            e
            == {
                "status": "fail",
                "check": "pod",
                "message": f"no Pod in namespace {namespace} mounts the claim",
            }
            for e in doc["findings"][0]["evidence"]
        )
    finally:
        await control_plane.admin.delete(f"{claims_path(namespace)}/cache")
        await control_plane.admin.delete(f"{SC}/{sc}")


async def test_driver_failing_create_volume(
    control_plane: ControlPlane, namespace: str, sidecar: Any, shared: ProvDriver
) -> None:
    await sidecar(
        "provisioner",
        "--retry-interval-start=200ms",
        "--retry-interval-max=1s",
        driver=shared.testbed_driver,
    )
    sc = await make_class(control_plane.admin, shared.name, parameters={"fail": "yes"})
    try:
        await control_plane.admin.create(claims_path(namespace), claim("data", sc))
        found = await diagnosis(
            control_plane, Target(PVC, "data", namespace), "ProvisioningFailed", event=FAULT
        )
        assert FAULT in found.summary and "ResourceExhausted" in found.summary
        assert "out of space" in found.next_step
        # No Lease (no --leader-election), and doctor says so instead of guessing.
        lease = next(e for e in found.evidence if e.check == "provisioner")
        assert "a sidecar without --leader-election cannot be seen" in lease.message
    finally:
        await control_plane.admin.delete(f"{claims_path(namespace)}/data")
        await control_plane.admin.delete(f"{SC}/{sc}")


async def test_healthy_namespace_exits_zero_with_read_only_rights(
    control_plane: ControlPlane, namespace: str, sidecar: Any, shared: ProvDriver, tmp_path: Path
) -> None:
    await sidecar(
        "provisioner",
        "--leader-election",
        f"--leader-election-namespace={namespace}",
        driver=shared.testbed_driver,
    )
    sc = await make_class(control_plane.admin, shared.name)
    try:
        await control_plane.admin.create(claims_path(namespace), claim("data", sc))
        await wait_bound(control_plane.admin, namespace, "data")
        found = await diagnosis(control_plane, Target(PVC, "data", namespace), "Bound")
        assert found.severity.value == "ok"
        kubeconfig = await read_only_kubeconfig(control_plane, namespace, tmp_path)
        try:
            code, out, err = await cli("-n", namespace, kubeconfig=kubeconfig)
            assert code == 0, out + err
            assert out.startswith(f"Nothing is stuck in namespace {namespace}.")
            # The context's namespace is the default one; the docs' ClusterRole reads all.
            code, out, err = await cli("pvc", "data", "-o", "json", kubeconfig=kubeconfig)
            assert code == 0, out + err
            doc = json.loads(out)
            assert doc["scope"] == {"kind": PVC, "name": "data", "namespace": namespace}
            assert [f["code"] for f in doc["findings"]] == ["Bound"]
            assert all("could not be read" not in n for n in doc["notes"]), doc["notes"]
            code, out, err = await cli("driver", shared.name, kubeconfig=kubeconfig)
            assert code == 0, out + err
            lines = out.splitlines()
            assert any(
                "ok    provisioner" in line and f"Lease {namespace}/" in line for line in lines
            ), out
        finally:
            await drop_read_only(control_plane, namespace)
    finally:
        await control_plane.admin.delete(f"{claims_path(namespace)}/data")
        await control_plane.admin.wait_deleted(f"{claims_path(namespace)}/data")
        await control_plane.admin.delete(f"{SC}/{sc}")


async def test_provisioner_killed_leaves_a_stale_lease(
    control_plane: ControlPlane, namespace: str, sidecar: Any
) -> None:
    drv = await start_driver(control_plane, prefix="doc-stale")
    try:
        proc = await sidecar(
            "provisioner",
            "--leader-election",
            f"--leader-election-namespace={namespace}",
            "--leader-election-lease-duration=3s",
            "--leader-election-renew-deadline=2s",
            "--leader-election-retry-period=1s",
            driver=drv.testbed_driver,
        )
        lease_path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
            f"{names.lease_name(names.PROVISIONER, drv.name)}"
        )
        lease = await control_plane.admin.wait_for(
            lease_path,
            lambda o: bool(o.get("spec", {}).get("holderIdentity")),
            timeout=30,
            what="the provisioner to take its Lease",
        )
        holder = lease["spec"]["holderIdentity"]
        proc.signal(signal.SIGKILL)
        await proc.wait(timeout=10)
        sc = await make_class(control_plane.admin, drv.name)
        await control_plane.admin.create(claims_path(namespace), claim("data", sc))
        found = await diagnosis(
            control_plane, Target(PVC, "data", namespace), "ProvisionerLeaseStale"
        )
        assert f'by "{holder}"' in found.summary
        assert "is not running" in found.summary
        await control_plane.admin.delete(f"{claims_path(namespace)}/data")
        await control_plane.admin.delete(f"{SC}/{sc}")
    finally:
        await stop_driver(control_plane, drv)


async def test_attachment_to_a_node_without_the_driver(
    control_plane: ControlPlane, namespace: str, sidecar: Any
) -> None:
    drv = await start_unregistered_driver(control_plane, "--enable-attach")
    pv_name = f"doc-va-{uuid.uuid4().hex[:6]}"
    va_name = f"csi-{uuid.uuid4().hex}"
    attacher = await sidecar("attacher", *FAST_RETRIES, driver=drv.testbed_driver)
    try:
        await control_plane.admin.create(PV, static_pv(pv_name, drv.name))
        await control_plane.admin.create(VA_PATH, va_body(va_name, drv.name, pv_name, drv.node))
        found = await diagnosis(
            control_plane,
            Target("VolumeAttachment", va_name),
            "DriverNotOnNode",
            attach_error=f"CSINode {drv.node} does not contain driver {drv.name}",
        )
        assert f"Node {drv.node} has no CSINode entry for driver {drv.name}" in found.summary
        assert "node-driver-registrar" in found.next_step
        node = await doctor(control_plane, Target("Node", drv.node))
        (node_finding,) = node.findings
        assert node_finding.code == "AttachmentsFailing"
    finally:
        await attacher.stop(timeout=10)
        if await control_plane.admin.get_or_none(f"{VA_PATH}/{va_name}") is not None:
            await control_plane.admin.patch(
                f"{VA_PATH}/{va_name}", {"metadata": {"finalizers": None}}
            )
            await control_plane.admin.delete(f"{VA_PATH}/{va_name}")
        await delete_pv_for_good(control_plane, pv_name)
        await stop_driver(control_plane, drv)


async def test_snapshot_api_not_installed(control_plane: ControlPlane) -> None:
    served = await control_plane.admin.get_or_none("/apis/snapshot.storage.k8s.io/v1")
    report = await doctor(control_plane, Target("VolumeSnapshot", "nightly", "default"))
    (found,) = report.findings
    if served is None:
        assert found.code == "SnapshotCRDsMissing"
        assert (
            "the VolumeSnapshot CRDs are not installed; snapshots were not checked" in report.notes
        )
    else:
        assert found.code == "NotFound"


async def test_claim_nobody_provisions(control_plane: ControlPlane, slow: Slow) -> None:
    found = await diagnosis(
        control_plane, Target(PVC, slow.orphan, slow.namespace), "NoProvisioner"
    )
    assert "No provisioner for driver" in found.summary
    assert "--leader-election" in found.next_step
    assert any("cannot be seen" in e.message for e in found.evidence)


async def test_volume_stuck_on_the_finalizer_of_a_removed_attacher(
    control_plane: ControlPlane, slow: Slow
) -> None:
    fin = names.attacher_finalizer(slow.pv_driver)
    found = await diagnosis(control_plane, Target("PersistentVolume", slow.pv), "NoAttacher")
    assert f"Finalizer {fin} is removed by the csi-attacher of driver {slow.pv_driver}" in (
        found.summary
    )
    pv = await control_plane.admin.get(f"{PV}/{slow.pv}")
    assert pv["metadata"]["finalizers"] == [fin]  # really stuck: nothing else holds it


async def test_cluster_scan_reports_the_stuck_objects(
    control_plane: ControlPlane, slow: Slow
) -> None:
    async def scanned() -> dict[str, Any] | None:
        code, out, _ = await cli("-o", "json", kubeconfig=control_plane.kubeconfig())
        doc = json.loads(out)
        codes = {(f["object"]["name"], f["code"]) for f in doc["findings"]}
        wanted = {(slow.orphan, "NoProvisioner"), (slow.pv, "NoAttacher")}
        return doc if code == 1 and wanted <= codes else None

    doc = await poll_until(scanned, 45, "the scan to report both stuck objects", interval=1)
    assert doc["healthy"] is False
    assert doc["summary"]["problems"] >= 2
