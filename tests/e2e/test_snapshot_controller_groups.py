"""Group snapshots on the testbed: our snapshot-controller and the Go csi-snapshotter, both with
``CSIVolumeGroupSnapshot``, against the playground driver's GroupController service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.process import ManagedProcess
from tests.e2e.conftest import require
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    events_of,
    make_class,
    start_driver,
    stop_driver,
    wait_bound,
)
from tests.e2e.test_snapshot_controller import VSCS, snapshots_path

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

GROUP_API = "/apis/groupsnapshot.storage.k8s.io/v1"
VGSCLASSES = f"{GROUP_API}/volumegroupsnapshotclasses"
VGSCS = f"{GROUP_API}/volumegroupsnapshotcontents"
GATE = "--feature-gates=CSIVolumeGroupSnapshot=true"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def driver(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    require("csi-snapshotter")
    drv = await start_driver(control_plane, prefix="vgs")
    procs: list[ManagedProcess] = [
        await control_plane.start_sidecar(
            "provisioner", "--timeout=10s", "--retry-interval-max=2s", driver=drv.testbed_driver
        ),
        await control_plane.start_sidecar(
            "snapshotter",
            "--timeout=10s",
            "--retry-interval-max=2s",
            GATE,
            implementation="go",
            driver=drv.testbed_driver,
        ),
        await control_plane.start_sidecar(
            "snapshot-controller", "--retry-interval-start=200ms", "--retry-interval-max=2s", GATE
        ),
    ]
    try:
        yield drv
    finally:
        for proc in reversed(procs):
            await proc.stop(timeout=10)
        await stop_driver(control_plane, drv)


def groups_path(namespace: str) -> str:
    return f"{GROUP_API}/namespaces/{namespace}/volumegroupsnapshots"


async def test_group_snapshot_of_two_claims_then_delete(
    api: RawApi, namespace: str, driver: ProvDriver
) -> None:
    cls = f"gold-{driver.name[4:10]}"
    await api.create(
        VGSCLASSES,
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {
                "name": cls,
                "annotations": {"groupsnapshot.storage.kubernetes.io/is-default-class": "true"},
            },
            "driver": driver.name,
            "deletionPolicy": "Delete",
        },
    )
    try:
        sc = await make_class(api, driver.name)
        for name, app in (("db-0", "db"), ("db-1", "db"), ("web", "web")):
            body: dict[str, Any] = objects.pvc(name, sc, size="1Mi")
            body["metadata"]["labels"] = {"app": app}
            await api.create(claims_path(namespace), body)
        for name in ("db-0", "db-1", "web"):
            await wait_bound(api, namespace, name)
        await api.create(
            groups_path(namespace),
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": "g"},
                "spec": {
                    "source": {
                        "selector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]
                        }
                    }
                },
            },
        )
        group = await api.wait_for(
            f"{groups_path(namespace)}/g",
            lambda o: o.get("status", {}).get("readyToUse") is True,
            timeout=90,
            what="the group snapshot ready",
        )
        assert group["spec"]["volumeGroupSnapshotClassName"] == cls
        content = await api.get(f"{VGSCS}/{group['status']['boundVolumeGroupSnapshotContentName']}")
        assert len(content["spec"]["source"]["volumeHandles"]) == 2
        members = (await api.get(snapshots_path(namespace)))["items"]
        assert len(members) == 2
        claims = sorted(m["spec"]["source"]["persistentVolumeClaimName"] for m in members)
        assert claims == ["db-0", "db-1"]
        settled = []
        for m in members:
            assert m["metadata"]["ownerReferences"][0]["name"] == "g"
            ready = await api.wait_for(
                f"{snapshots_path(namespace)}/{m['metadata']['name']}",
                lambda o: o.get("status", {}).get("readyToUse") is True,
                timeout=60,
                what="a member ready",
            )
            assert ready["status"]["volumeGroupSnapshotName"] == "g"
            settled.append(ready)
        assert load_state(driver.statedir).group_snapshots
        assert await events_of(api, namespace, "g", "GroupSnapshotReady")
        await api.delete(f"{groups_path(namespace)}/g")
        await api.wait_deleted(f"{groups_path(namespace)}/g", timeout=90)
        for m in settled:
            await api.wait_deleted(f"{snapshots_path(namespace)}/{m['metadata']['name']}", 60)
            await api.wait_deleted(f"{VSCS}/{m['status']['boundVolumeSnapshotContentName']}", 60)
        await api.wait_deleted(f"{VGSCS}/{content['metadata']['name']}", 60)
        assert not load_state(driver.statedir).group_snapshots
    finally:
        await api.delete(f"{VGSCLASSES}/{cls}")
