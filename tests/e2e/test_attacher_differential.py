"""Differential: the Go external-attacher and ours, same driver, same inputs, same objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from tests.e2e.attacher_support import (
    FAST_RETRIES,
    PV_PATH,
    VA_PATH,
    AttachDriver,
    attached,
    comparable,
    start_driver,
    static_volume,
    va_body,
    wait_va,
)


async def _scenario(
    api: RawApi, drv: AttachDriver, sidecar: Any, impl: str
) -> dict[str, dict[str, Any]]:
    """Attach, fail to attach, fail to detach, detach; snapshot the objects at each point."""
    proc = await sidecar(
        "attacher", *FAST_RETRIES, f"--csi-address={drv.socket}", implementation=impl
    )
    ok_pv, ok_handle = await static_volume(api, drv, f"{impl}-ok-{drv.name[4:10]}")
    bad_pv, bad_handle = await static_volume(api, drv, f"{impl}-bad-{drv.name[4:10]}")
    names = {
        ok_pv: "PV-OK",
        bad_pv: "PV-BAD",
        f"va-{ok_pv}": "VA-OK",
        f"va-{bad_pv}": "VA-BAD",
        ok_handle: "HANDLE-OK",
        bad_handle: "HANDLE-BAD",
    }
    drv.faults(
        [
            {
                "method": "ControllerPublishVolume",
                "code": "RESOURCE_EXHAUSTED",
                "message": "no slot",
                "match": {"volume_id": bad_handle},
            }
        ]
    )
    snaps: dict[str, dict[str, Any]] = {}
    for pv in (ok_pv, bad_pv):
        await api.create(VA_PATH, va_body(f"va-{pv}", drv.name, pv, drv.node))
    snaps["attached"] = comparable(await wait_va(api, ok_pv, attached), names)
    snaps["pv-attached"] = comparable(await api.get(f"{PV_PATH}/{ok_pv}"), names)
    bad = await wait_va(api, bad_pv, lambda v: "attachError" in v.get("status", {}))
    snaps["attach-error"] = comparable(bad, names)

    drv.faults(
        [
            {
                "method": "ControllerUnpublishVolume",
                "code": "FAILED_PRECONDITION",
                "message": "still mounted",
                "match": {"volume_id": ok_handle},
            }
        ]
    )
    await api.delete(f"{VA_PATH}/va-{ok_pv}")
    failing = await wait_va(api, ok_pv, lambda v: "detachError" in v.get("status", {}))
    snaps["detach-error"] = comparable(failing, names)
    drv.faults([])
    await api.wait_deleted(f"{VA_PATH}/va-{ok_pv}", 30)
    await api.delete(f"{VA_PATH}/va-{bad_pv}")
    await api.wait_deleted(f"{VA_PATH}/va-{bad_pv}", 30)
    snaps["pv-detached"] = comparable(await api.get(f"{PV_PATH}/{ok_pv}"), names)
    assert drv.attached(ok_handle) == {} and drv.attached(bad_handle) == {}
    for pv in (ok_pv, bad_pv):
        await api.delete(f"{PV_PATH}/{pv}")
        await api.wait_deleted(f"{PV_PATH}/{pv}", 30)
    await proc.stop(timeout=10)
    return snaps


async def test_go_and_ours_leave_the_same_objects(
    control_plane: ControlPlane, api: RawApi, sidecar: Any, tmp_path: Path
) -> None:
    drv = await start_driver(control_plane, tmp_path)
    try:
        go = await _scenario(api, drv, sidecar, "go")
        ours = await _scenario(api, drv, sidecar, "python")
    finally:
        await drv.close()
    assert go["attached"]["status"] == {"attached": True}
    assert go["attach-error"]["status"]["attachError"]["errorCode"] == 8
    for key in go:
        assert ours[key] == go[key], key
