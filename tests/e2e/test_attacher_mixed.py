"""Mixed deployments: ours with the Go provisioner; Go and ours handing VolumeAttachments over."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state
from tests.e2e.attacher_support import (
    FAST_RETRIES,
    PV_PATH,
    VA_PATH,
    AttachDriver,
    attached,
    finalizer,
    force_delete,
    start_driver,
    static_volume,
    va_body,
    wait_va,
)


async def test_ours_with_the_go_provisioner(
    control_plane: ControlPlane, api: RawApi, namespace: str, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path, "--enable-topology=false")
    try:
        address = f"--csi-address={drv.socket}"
        await sidecar("provisioner", "--timeout=30s", address, implementation="go")
        await sidecar("attacher", *FAST_RETRIES, address)
        sc = f"mixed-{uuid.uuid4().hex[:6]}"
        await api.create(
            "/apis/storage.k8s.io/v1/storageclasses", objects.storage_class(sc, drv.name)
        )
        ns = f"/api/v1/namespaces/{namespace}"
        await api.create(f"{ns}/persistentvolumeclaims", objects.pvc("dyn", sc))
        pvc = await api.wait_for(
            f"{ns}/persistentvolumeclaims/dyn",
            lambda o: o.get("status", {}).get("phase") == "Bound",
            what="the Go provisioner to bind the claim",
        )
        pv_name = pvc["spec"]["volumeName"]
        await api.create(f"{ns}/pods", objects.pod("user", ["dyn"], node_name=drv.node))
        va = await wait_va(api, pv_name, attached)
        handle = (await api.get(f"{PV_PATH}/{pv_name}"))["spec"]["csi"]["volumeHandle"]
        assert drv.attached(handle) == {drv.node: False}

        await force_delete(api, f"{ns}/pods/user")
        await api.wait_deleted(f"{VA_PATH}/{va['metadata']['name']}", 30)
        # Deleting the claim: the Go provisioner deletes the volume, ours lets the PV go.
        await api.delete(f"{ns}/persistentvolumeclaims/dyn")
        await api.wait_deleted(f"{PV_PATH}/{pv_name}", 30)
        assert handle not in _volumes(drv)
        await api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{sc}")
    finally:
        await drv.close()


def _volumes(drv: AttachDriver) -> list[str]:
    return list(load_state(drv.statedir).volumes)


async def test_go_and_ours_hand_attachments_over(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        address = f"--csi-address={drv.socket}"
        fin = finalizer(drv.name)
        pv1, h1 = await static_volume(api, drv, f"h1-{drv.name[4:10]}")
        pv2, h2 = await static_volume(api, drv, f"h2-{drv.name[4:10]}")

        # Go attaches the first volume, then ours takes over and detaches it.
        go = await sidecar("attacher", *FAST_RETRIES, address, implementation="go")
        await api.create(VA_PATH, va_body(f"va-{pv1}", drv.name, pv1, drv.node))
        await wait_va(api, pv1, attached)
        await go.stop(timeout=10)
        ours = await sidecar("attacher", *FAST_RETRIES, address)
        # Ours records the detach information on the VA it took over.
        va1 = await wait_va(
            api,
            pv1,
            lambda v: names.VOLUME_HANDLE_ANNOTATION in v["metadata"].get("annotations", {}),
        )
        assert va1["metadata"]["finalizers"] == [fin] and attached(va1)
        await api.create(VA_PATH, va_body(f"va-{pv2}", drv.name, pv2, drv.node))
        await wait_va(api, pv2, attached)
        await api.delete(f"{VA_PATH}/va-{pv1}")
        await api.wait_deleted(f"{VA_PATH}/va-{pv1}", 30)
        assert drv.attached(h1) == {}
        assert drv.attached(h2) == {drv.node: False}

        # Ours attached the second volume; Go takes over and detaches it.
        await ours.stop(timeout=10)
        await sidecar("attacher", *FAST_RETRIES, address, implementation="go")
        await api.delete(f"{VA_PATH}/va-{pv2}")
        await api.wait_deleted(f"{VA_PATH}/va-{pv2}", 30)
        assert drv.attached(h2) == {}
        for pv in (pv1, pv2):
            await api.delete(f"{PV_PATH}/{pv}")
            await api.wait_deleted(f"{PV_PATH}/{pv}", 30)
    finally:
        await drv.close()
