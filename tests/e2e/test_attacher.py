"""``csi-sidecars attacher`` on the testbed: pods, kube-controller-manager, our driver."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp

from csi_sidecars.attacher import names
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver.requestlog import read_request_log
from csi_sidecars.playground.process import free_port, poll_until
from tests.e2e.attacher_support import (
    FAST_RETRIES,
    PV_PATH,
    VA_PATH,
    attached,
    finalizer,
    force_delete,
    start_driver,
    static_claim,
    static_volume,
    va_body,
    wait_va,
)


async def _events(api: RawApi, namespace: str, name: str) -> list[str]:
    # Other tests' events share the namespace; some have no involvedObject name.
    items = (await api.get(f"/api/v1/namespaces/{namespace}/events"))["items"]
    return [e["reason"] for e in items if e["involvedObject"].get("name") == name]


async def test_pod_volume_is_attached_and_detached(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        http = f"127.0.0.1:{free_port()}"
        await sidecar(
            "attacher",
            *FAST_RETRIES,
            f"--csi-address={drv.socket}",
            "--leader-election",
            f"--leader-election-namespace={namespace}",
            f"--http-endpoint={http}",
        )
        pv_name, handle = await static_claim(api, drv, namespace, "data")
        ns = f"/api/v1/namespaces/{namespace}"
        await api.create(f"{ns}/pods", objects.pod("app", ["data"], node_name=drv.node))

        va = await wait_va(api, pv_name, attached, what="kube-controller-manager + attach")
        fin = finalizer(drv.name)
        assert va["spec"]["attacher"] == drv.name
        assert va["metadata"]["finalizers"] == [fin]
        assert va["metadata"]["annotations"][names.NODE_ID_ANNOTATION] == drv.node
        assert va["metadata"]["annotations"][names.VOLUME_HANDLE_ANNOTATION] == handle
        assert "attachError" not in va["status"]
        assert drv.attached(handle) == {drv.node: False}
        pv = await api.get(f"{PV_PATH}/{pv_name}")
        assert fin in pv["metadata"]["finalizers"]

        lease = await api.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
            f"{names.lease_name(drv.name)}"
        )
        assert lease["spec"]["holderIdentity"]
        async with aiohttp.ClientSession() as http_client:
            async with http_client.get(f"http://{http}/metrics") as resp:
                metrics = await resp.text()
            async with http_client.get(f"http://{http}/healthz/leader-election") as resp:
                assert resp.status == 200
        assert 'workqueue_adds_total{name="csi-attacher-va"}' in metrics
        assert 'workqueue_depth{name="csi-attacher-pv"}' in metrics
        assert (
            f'csi_sidecar_operations_seconds_count{{driver_name="{drv.name}",grpc_status_code="OK",'
            'method_name="/csi.v1.Controller/ControllerPublishVolume"}'
        ) in metrics
        await poll_until(
            lambda: _has(api, "default", va["metadata"]["name"], "SuccessfulAttachVolume"),
            15,
            "attach event",
        )

        await force_delete(api, f"{ns}/pods/app")
        await api.wait_deleted(f"{VA_PATH}/{va['metadata']['name']}", 30)
        assert drv.attached(handle) == {}
        # The PV keeps the attacher finalizer until it is deleted.
        pv = await api.get(f"{PV_PATH}/{pv_name}")
        assert fin in pv["metadata"]["finalizers"]
        await api.delete(f"{ns}/persistentvolumeclaims/data")
        await api.delete(f"{PV_PATH}/{pv_name}")
        await api.wait_deleted(f"{PV_PATH}/{pv_name}", 30)
    finally:
        await drv.close()


async def _has(api: RawApi, namespace: str, name: str, reason: str) -> bool:
    return reason in await _events(api, namespace, name)


async def test_driver_without_publish_gets_the_trivial_handler(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(
        control_plane, tmp_path, "--remove-capability=controller:PUBLISH_UNPUBLISH_VOLUME"
    )
    try:
        await sidecar("attacher", *FAST_RETRIES, f"--csi-address={drv.socket}")
        pv_name, handle = await static_volume(api, drv, f"triv-{drv.name[4:10]}")
        va_name = f"va-{pv_name}"
        await api.create(VA_PATH, va_body(va_name, drv.name, pv_name, drv.node))
        va = await wait_va(api, pv_name, attached)
        assert "finalizers" not in va["metadata"]
        assert "annotations" not in va["metadata"]
        assert drv.attached(handle) == {}
        pv = await api.get(f"{PV_PATH}/{pv_name}")
        assert finalizer(drv.name) not in (pv["metadata"].get("finalizers") or [])
        await api.delete(f"{VA_PATH}/{va_name}")
        await api.wait_deleted(f"{VA_PATH}/{va_name}", 15)
        await api.delete(f"{PV_PATH}/{pv_name}")
    finally:
        await drv.close()


async def test_publish_failures_then_success(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        pv_name, handle = await static_volume(api, drv, f"flaky-{drv.name[4:10]}")
        drv.faults(
            [
                {
                    "method": "ControllerPublishVolume",
                    "code": "RESOURCE_EXHAUSTED",
                    "message": "too many attachments",
                    "times": 3,
                }
            ]
        )
        await sidecar("attacher", *FAST_RETRIES, f"--csi-address={drv.socket}")
        va_name = f"va-{pv_name}"
        await api.create(VA_PATH, va_body(va_name, drv.name, pv_name, drv.node))
        failed = await wait_va(api, pv_name, lambda v: "attachError" in v.get("status", {}))
        error = failed["status"]["attachError"]
        assert error["message"] == (
            "rpc error: code = ResourceExhausted desc = too many attachments"
        )
        assert error["errorCode"] == 8
        assert not attached(failed)
        va = await wait_va(api, pv_name, attached, what="attached after the faults")
        assert "attachError" not in va["status"]
        assert drv.attached(handle) == {drv.node: False}
        reasons = await _events(api, "default", va_name)
        assert "FailedAttachVolume" in reasons

        await api.delete(f"{VA_PATH}/{va_name}")
        await api.wait_deleted(f"{VA_PATH}/{va_name}", 15)
        assert drv.attached(handle) == {}
        await api.delete(f"{PV_PATH}/{pv_name}")
        await api.wait_deleted(f"{PV_PATH}/{pv_name}", 15)
    finally:
        await drv.close()


async def test_killed_mid_attach_converges_after_restart(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    requests = tmp_path / "requests.jsonl"
    drv = await start_driver(control_plane, tmp_path, f"--request-log={requests}")
    try:
        pv_name, handle = await static_volume(api, drv, f"kill-{drv.name[4:10]}")
        # Every ControllerPublishVolume of the first attacher hangs far longer than the test
        # (its retries after --timeout too): the kill below always lands while one is in
        # flight, however slow the machine. The driver drops a call whose client went away.
        drv.faults([{"method": "ControllerPublishVolume", "delay": 600.0}])
        first = await sidecar("attacher", *FAST_RETRIES, f"--csi-address={drv.socket}")
        va_name = f"va-{pv_name}"
        await api.create(VA_PATH, va_body(va_name, drv.name, pv_name, drv.node))
        fin = finalizer(drv.name)
        # The finalizer is written right before ControllerPublishVolume, which now hangs.
        # (The deadlines here include starting a sidecar on a possibly loaded machine.)
        await wait_va(
            api, pv_name, lambda v: fin in (v["metadata"].get("finalizers") or []), timeout=90
        )

        async def publishing() -> bool:
            calls = read_request_log(requests)
            return any(c.method == "ControllerPublishVolume" for c in calls)

        await poll_until(publishing, 30, "ControllerPublishVolume in flight")
        first.signal(signal.SIGKILL)
        await first.wait(10)
        va = await api.get(f"{VA_PATH}/{va_name}")
        assert not attached(va)

        drv.faults([])
        await sidecar("attacher", *FAST_RETRIES, f"--csi-address={drv.socket}")
        va = await wait_va(api, pv_name, attached, timeout=90, what="attached after the restart")
        assert va["metadata"]["finalizers"] == [fin]
        assert va["metadata"]["annotations"][names.NODE_ID_ANNOTATION] == drv.node
        assert drv.attached(handle) == {drv.node: False}
        pv = await api.get(f"{PV_PATH}/{pv_name}")
        assert pv["metadata"]["finalizers"].count(fin) == 1

        await api.delete(f"{VA_PATH}/{va_name}")
        await api.wait_deleted(f"{VA_PATH}/{va_name}", 60)
        assert drv.attached(handle) == {}
        await api.delete(f"{PV_PATH}/{pv_name}")
        await api.wait_deleted(f"{PV_PATH}/{pv_name}", 60)
    finally:
        await drv.close()
