"""Restore from a VolumeSnapshot on the testbed: our provisioner (with the csi-provisioner RBAC
identity) restores a claim from a pre-provisioned VolumeSnapshotContent and a VolumeSnapshot
bound to it by hand, whose snapshot exists in the playground driver (cut through its socket).

The snapshot roles do not run here: the test writes the statuses they would write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from csi_sidecars.provisioner.decide import strings
from tests.e2e.provisioner_support import (
    SNAPSHOT_API,
    ProvDriver,
    claims_path,
    delete_contents,
    driver_snapshot,
    make_class,
    set_snapshot_status,
    start_driver,
    static_snapshot,
    stop_driver,
    wait_bound,
    wait_event,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

FIN = strings.SNAPSHOT_SOURCE_FINALIZER


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def restore_driver(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    drv = await start_driver(control_plane, prefix="restore")
    try:
        yield drv
    finally:
        await delete_contents(control_plane.admin, {drv.name, "other.csi.test"})
        await stop_driver(control_plane, drv)


def _restoring(name: str, sc: str, snapshot: str, size: str = "2Mi") -> dict[str, object]:
    body = objects.pvc(name, sc, size=size)
    body["spec"]["dataSource"] = {  # type: ignore[index]
        "apiGroup": strings.SNAPSHOT_API_GROUP,
        "kind": "VolumeSnapshot",
        "name": snapshot,
    }
    return body


async def test_claim_restores_from_a_bound_snapshot(
    control_plane: ControlPlane, api: RawApi, namespace: str, restore_driver: ProvDriver, sidecar
) -> None:
    drv = restore_driver
    handle = await driver_snapshot(drv, size=1 << 20)
    await static_snapshot(api, namespace, "snap", driver=drv.name, handle=handle, ready=False)
    sc = await make_class(api, drv.name)
    await sidecar(
        "provisioner", "--retry-interval-start=200ms", "--retry-interval-max=1s",
        driver=drv.testbed_driver,
    )  # fmt: skip
    claim = await api.create(claims_path(namespace), _restoring("copy", sc, "snap"))
    # Not ready yet: a clear event, no volume, and the claim waits.
    events = await wait_event(api, namespace, "copy", "ProvisioningFailed")
    assert events[0]["message"] == (
        "error getting handle for DataSource Type VolumeSnapshot by Name snap: "
        "snapshot snap is not Ready"
    )
    assert f"pvc-{claim['metadata']['uid']}" not in drv.volume_names()
    await set_snapshot_status(api, namespace, "snap", ready=True)
    pvc = await wait_bound(api, namespace, "copy")
    volume = next(v for v in drv.volumes().values() if v.name == pvc["spec"]["volumeName"])
    assert volume.source_snapshot_id == handle
    assert volume.capacity_bytes == 2 << 20  # the claim is larger than restoreSize: allowed
    pv = await api.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    assert pv["spec"]["csi"]["volumeHandle"] == volume.volume_id

    vs_path = f"{SNAPSHOT_API}/namespaces/{namespace}/volumesnapshots/snap"

    async def released() -> bool:
        vs = await api.get(vs_path)
        return FIN not in (vs["metadata"].get("finalizers") or [])

    await poll_until(released, 30, "the snapshot protection to be released", interval=0.3)


async def test_too_small_and_foreign_snapshots_are_refused(
    control_plane: ControlPlane, api: RawApi, namespace: str, restore_driver: ProvDriver, sidecar
) -> None:
    drv = restore_driver
    handle = await driver_snapshot(drv, size=4 << 20)
    await static_snapshot(api, namespace, "big", driver=drv.name, handle=handle,
                          restore_size=4 << 20)  # fmt: skip
    await static_snapshot(api, namespace, "foreign", driver="other.csi.test", handle="x")
    sc = await make_class(api, drv.name)
    await sidecar("provisioner", "--retry-interval-start=200ms", driver=drv.testbed_driver)
    created = [
        await api.create(claims_path(namespace), _restoring("small", sc, "big", size="1Mi")),
        await api.create(claims_path(namespace), _restoring("other", sc, "foreign")),
    ]
    small = await wait_event(api, namespace, "small", "ProvisioningFailed")
    assert small[0]["message"].endswith(
        f"requested volume size {1 << 20} is less than the size {4 << 20} for the source "
        "snapshot big"
    )
    other = await wait_event(api, namespace, "other", "ProvisioningFailed")
    assert "is not handled by CSI driver of StorageClass" in other[0]["message"]
    names = {f"pvc-{c['metadata']['uid']}" for c in created}
    assert not names & drv.volume_names()
