"""``csi-sidecars resizer`` on the testbed: the API server, kube-controller-manager, our driver."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import free_port, poll_until
from csi_sidecars.resizer import names as n
from tests.e2e.resizer_support import (
    FAST,
    GIB,
    PV_PATH,
    bound_claim,
    ensure_class,
    modify_state,
    request,
    resize_state,
    set_class,
    start_driver,
    wait_claim,
    wait_events,
)


async def test_expansion_reaches_the_pv_and_waits_for_the_node(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        http = f"127.0.0.1:{free_port()}"
        await sidecar(
            "resizer",
            *FAST,
            f"--csi-address={drv.socket}",
            "--leader-election",
            f"--leader-election-namespace={namespace}",
            f"--http-endpoint={http}",
            "--feature-gates=AnnotateFsResize=true",  # alpha, off by default in v2.2.0
        )
        pv_name, handle = await bound_claim(api, drv, namespace, "data")
        await request(api, namespace, "data", "2Gi")
        pvc = await wait_claim(
            api, namespace, "data", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "node step"
        )
        assert pvc["status"]["allocatedResources"] == {"storage": "2Gi"}
        assert pvc["status"]["capacity"] == {"storage": "1Gi"}
        kinds = [c["type"] for c in pvc["status"]["conditions"]]
        assert kinds == [n.RESIZING, n.FS_RESIZE_PENDING]
        pending = pvc["status"]["conditions"][1]
        assert pending["message"] == n.FS_RESIZE_PENDING_MESSAGE
        pv = await api.get(f"{PV_PATH}/{pv_name}")
        assert pv["spec"]["capacity"] == {"storage": "2Gi"}
        assert pv["metadata"]["annotations"][n.PRE_RESIZE_CAPACITY] == "1Gi"
        assert drv.volume(handle).capacity_bytes == 2 * GIB
        wanted = {n.VOLUME_RESIZING, n.FS_RESIZE_REQUIRED, "ExternalExpanding"}
        found = await wait_events(
            api,
            namespace,
            "data",
            lambda es: wanted <= {e["reason"] for e in es},
            f"the events {sorted(wanted)}",
        )
        reasons = [e["reason"] for e in found]
        assert n.VOLUME_RESIZING in reasons and n.FS_RESIZE_REQUIRED in reasons
        # kube-controller-manager handed the claim to the external resizer.
        assert "ExternalExpanding" in reasons
        lease = await api.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{n.lease_name(drv.name)}"
        )
        assert lease["spec"]["holderIdentity"]
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://{http}/metrics") as resp:
                metrics = await resp.text()
            async with client.get(f"http://{http}/healthz/leader-election") as resp:
                assert resp.status == 200
        assert f'workqueue_adds_total{{name="{drv.name}-pvc"}}' in metrics
        assert "/csi.v1.Controller/ControllerExpandVolume" in metrics
    finally:
        await drv.close()


async def test_failure_then_recovery_by_lowering_the_request(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path, "--max-volume-size=4Gi")
    try:
        await sidecar("resizer", *FAST, f"--csi-address={drv.socket}")
        pv_name, handle = await bound_claim(api, drv, namespace, "data")
        await request(api, namespace, "data", "10Gi")
        pvc = await wait_claim(
            api,
            namespace,
            "data",
            lambda p: resize_state(p) == n.CONTROLLER_RESIZE_INFEASIBLE,
            "infeasible",
        )
        error = next(
            c for c in pvc["status"]["conditions"] if c["type"] == n.CONTROLLER_RESIZE_ERROR
        )
        assert "OutOfRange" in error["message"]
        await request(api, namespace, "data", "3Gi")
        pvc = await wait_claim(
            api, namespace, "data", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "recovered"
        )
        assert pvc["status"]["allocatedResources"] == {"storage": "3Gi"}
        assert (await api.get(f"{PV_PATH}/{pv_name}"))["spec"]["capacity"] == {"storage": "3Gi"}
        assert drv.volume(handle).capacity_bytes == 3 * GIB
    finally:
        await drv.close()


async def test_class_change_then_infeasible_class_then_rollback(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    gold, bad = f"{namespace}-gold", f"{namespace}-bad"
    try:
        await ensure_class(api, gold, drv.name, iops="3000")
        await ensure_class(api, bad, drv.name, color="red")  # the driver accepts iops/throughput
        await sidecar("resizer", *FAST, f"--csi-address={drv.socket}")
        pv_name, handle = await bound_claim(api, drv, namespace, "data")
        await set_class(api, namespace, "data", gold)
        pvc = await wait_claim(
            api,
            namespace,
            "data",
            lambda p: p["status"].get("currentVolumeAttributesClassName") == gold,
            "gold applied",
        )
        assert "modifyVolumeStatus" not in pvc["status"]
        assert (await api.get(f"{PV_PATH}/{pv_name}"))["spec"]["volumeAttributesClassName"] == gold
        assert drv.volume(handle).mutable_parameters == {"iops": "3000"}

        await set_class(api, namespace, "data", bad)
        pvc = await wait_claim(
            api, namespace, "data", lambda p: modify_state(p) == n.MODIFY_INFEASIBLE, "infeasible"
        )
        conds = {c["type"]: c for c in pvc["status"]["conditions"]}
        assert conds[n.MODIFY_VOLUME_ERROR]["reason"] == "InvalidArgument"
        assert pvc["status"]["currentVolumeAttributesClassName"] == gold
        found = await wait_events(
            api,
            namespace,
            "data",
            lambda es: any(e["reason"] == n.VOLUME_MODIFY_FAILED for e in es),
            f"a {n.VOLUME_MODIFY_FAILED} event",
        )
        warnings = [e for e in found if e["reason"] == n.VOLUME_MODIFY_FAILED]
        assert warnings and warnings[0]["type"] == "Warning"

        await set_class(api, namespace, "data", gold)  # roll back to the current class
        pvc = await wait_claim(
            api, namespace, "data", lambda p: "modifyVolumeStatus" not in p["status"], "rollback"
        )
        assert pvc["status"]["currentVolumeAttributesClassName"] == gold
        assert not [c for c in pvc["status"].get("conditions", []) if "Modify" in c["type"]]
        assert drv.volume(handle).mutable_parameters == {"iops": "3000"}
    finally:
        await drv.close()
        for vac in (gold, bad):
            await api.delete(f"/apis/storage.k8s.io/v1/volumeattributesclasses/{vac}")


async def test_capacity_zero_reply_is_never_written(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        drv.faults(
            [{"method": "ControllerExpandVolume", "reply": {"capacityBytes": "0"}, "times": 1}]
        )
        await sidecar("resizer", *FAST, f"--csi-address={drv.socket}")
        pv_name, _ = await bound_claim(api, drv, namespace, "data")
        await request(api, namespace, "data", "2Gi")
        await wait_claim(
            api, namespace, "data", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "retried"
        )
        found = await wait_events(
            api,
            namespace,
            "data",
            lambda es: any(e["reason"] == n.VOLUME_RESIZE_FAILED for e in es),
            f"a {n.VOLUME_RESIZE_FAILED} event",
        )
        warnings = [e for e in found if e["reason"] == n.VOLUME_RESIZE_FAILED]
        assert warnings and "capacity of 0 bytes" in warnings[0]["message"]
        assert (await api.get(f"{PV_PATH}/{pv_name}"))["spec"]["capacity"] == {"storage": "2Gi"}
    finally:
        await drv.close()


async def test_sigkill_mid_expansion_then_restart_finishes_it(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        # The first expansion hangs in the driver long enough to kill the resizer during it.
        drv.faults([{"method": "ControllerExpandVolume", "delay": 30, "times": 1}])
        args = ("--retry-interval-start=200ms", "--retry-interval-max=3s", "--timeout=60s")
        first = await sidecar("resizer", *args, f"--csi-address={drv.socket}")
        pv_name, handle = await bound_claim(api, drv, namespace, "data")
        await request(api, namespace, "data", "2Gi")
        await wait_claim(
            api,
            namespace,
            "data",
            lambda p: resize_state(p) == n.CONTROLLER_RESIZE_IN_PROGRESS,
            "expansion in progress",
        )
        first.signal(signal.SIGKILL)
        await first.wait(timeout=10)
        await sidecar("resizer", *args, f"--csi-address={drv.socket}")
        pvc = await wait_claim(
            api, namespace, "data", lambda p: resize_state(p) == n.NODE_RESIZE_PENDING, "finished"
        )
        assert pvc["status"]["allocatedResources"] == {"storage": "2Gi"}

        async def pv_grown() -> bool:
            pv = await api.get(f"{PV_PATH}/{pv_name}")
            return bool(pv["spec"]["capacity"] == {"storage": "2Gi"})

        await poll_until(pv_grown, 30, "PV capacity")
        assert drv.volume(handle).capacity_bytes == 2 * GIB
    finally:
        await drv.close()
