"""Differential: the Go snapshot-controller v8.6 and ours, same driver, sidecar and inputs.

Each implementation in turn takes a dynamic snapshot to ready and deletes it (the Go
csi-snapshotter does the CSI part for both); the objects at each step, with names, uids and
times replaced by placeholders, and the events must be the same.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, poll_until
from tests.e2e.conftest import SidecarFactory, require
from tests.e2e.provisioner_support import (
    ProvDriver,
    claims_path,
    events_of,
    start_driver,
    stop_driver,
)
from tests.e2e.test_snapshot_controller import (
    PVC_FINALIZER,
    VSCS,
    bound_claim,
    claim_finalizers,
    make_snapshot_class,
    snapshot,
    snapshots_path,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

REASONS = ("CreatingSnapshot", "SnapshotCreated", "SnapshotReady")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def driver(control_plane: ControlPlane) -> AsyncIterator[ProvDriver]:
    require("csi-snapshotter", "snapshot-controller")
    drv = await start_driver(control_plane, prefix="snapdiff")
    procs: list[ManagedProcess] = [
        await control_plane.start_sidecar(
            "provisioner", "--timeout=10s", "--retry-interval-max=2s", driver=drv.testbed_driver
        ),
        await control_plane.start_sidecar(
            "snapshotter",
            "--timeout=10s",
            "--retry-interval-max=2s",
            implementation="go",
            driver=drv.testbed_driver,
        ),
    ]
    try:
        yield drv
    finally:
        for proc in procs:
            await proc.stop(timeout=10)
        await stop_driver(control_plane, drv)


def comparable(obj: dict[str, Any], subst: dict[str, str]) -> Any:
    """``obj`` without server-set fields, with test-specific strings replaced."""
    meta = obj["metadata"]
    out: dict[str, Any] = {
        "finalizers": sorted(meta.get("finalizers") or []),
        "annotations": sorted(meta.get("annotations") or {}),
        "spec": obj.get("spec"),
        "status": {
            k: ("<time>" if k == "creationTime" else v)
            for k, v in (obj.get("status") or {}).items()
        },
    }
    text = repr(out)
    for old, new in sorted(subst.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    text = re.sub(r"'resourceVersion': '\d+', ", "", text)
    return text


async def _scenario(
    api: RawApi, namespace: str, drv: ProvDriver, sidecar: SidecarFactory, impl: str
) -> dict[str, Any]:
    proc = await sidecar("snapshot-controller", "--retry-interval-max=2s", implementation=impl)
    cls = await make_snapshot_class(api, drv.name)
    try:
        claim = await bound_claim(api, namespace, drv.name)
        await api.create(snapshots_path(namespace), snapshot("snap", "data", cls))
        vs = await wait_ready(api, namespace, "snap")
        content_name = vs["status"]["boundVolumeSnapshotContentName"]

        async def settled() -> dict[str, Any] | None:
            current = await api.get(f"{snapshots_path(namespace)}/snap")
            content = await api.get(f"{VSCS}/{content_name}")
            fins = await claim_finalizers(api, namespace, "data")
            if len(current["metadata"].get("finalizers") or []) < 2 or PVC_FINALIZER in fins:
                return None
            return {"vs": current, "vsc": content}

        state = await poll_until(settled, 30, f"{impl}: finalizers settled")
        pv = await api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
        subst = {
            vs["metadata"]["uid"]: "<vs-uid>",
            namespace: "<ns>",
            cls: "<class>",
            pv["spec"]["csi"]["volumeHandle"]: "<volume>",
            state["vsc"]["status"]["snapshotHandle"]: "<snapshot>",
            drv.name: "<driver>",
        }
        result: dict[str, Any] = {
            "vs": comparable(state["vs"], subst),
            "vsc": comparable(state["vsc"], subst),
        }
        result["events"] = [r for r in REASONS if await events_of(api, namespace, "snap", r)]
        await api.delete(f"{snapshots_path(namespace)}/snap")
        await api.wait_deleted(f"{snapshots_path(namespace)}/snap", timeout=60)
        await api.wait_deleted(f"{VSCS}/{content_name}", timeout=60)
        await api.delete(f"{claims_path(namespace)}/data")
        return result
    finally:
        await proc.stop(timeout=10)
        await api.delete(f"/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/{cls}")


async def test_same_objects_as_the_go_controller(
    api: RawApi,
    control_plane: ControlPlane,
    driver: ProvDriver,
    sidecar: SidecarFactory,
) -> None:
    results = {}
    for impl in ("go", "python"):
        ns = f"diff-{impl}-{driver.name[9:15]}"
        await control_plane.create_namespace(ns)
        try:
            results[impl] = await _scenario(api, ns, driver, sidecar, impl)
        finally:
            await api.delete(f"/api/v1/namespaces/{ns}")
    assert results["python"]["events"] == list(REASONS)
    assert results["python"] == results["go"]
