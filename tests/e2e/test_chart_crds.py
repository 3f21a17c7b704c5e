"""The chart's snapshot CRD lifecycle on a control plane of its own, started without them.

The session's testbed has the snapshot CRDs from the start (another owner, to the chart), and
other tests rely on them, so this module starts a second control plane and deletes its CRDs
first. Then: an install creates them; dropping them from the release (``snapshotCRDs.install:
false``) keeps them and the objects in them; a chart with a newer CRD bundle upgrades them; an
older chart leaves the newer copy alone; a second release treats them as another owner's; and
after both uninstalls they are still there, with the objects in them, and nothing else is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from csi_sidecars import crds
from csi_sidecars.playground import binaries
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from tests.e2e.chart_support import CRDS, HelmCli, copy_chart, driver_values, inventory, unique
from tests.e2e.conftest import require

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

VERSION_ANNOTATION = "csi-sidecars.io/snapshot-crds-version"
CLASSES = f"volumesnapshotclasses.{crds.SNAPSHOT_GROUP}"
VSC_PATH = f"/apis/{crds.SNAPSHOT_GROUP}/v1/volumesnapshotclasses"
NEWER_TEXT = "How to create VolumeSnapshots with one CSI driver (chart v8.7.0 test bundle)."


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bare_cp() -> AsyncIterator[ControlPlane]:
    """A control plane whose snapshot CRDs are deleted before the tests start."""
    require(*binaries.CONTROL_PLANE_BINARIES, "helm")
    cp = ControlPlane(nodes=1)
    await cp.start()
    try:
        await _delete_crds(cp.admin)
        yield cp
    finally:
        await cp.stop()


async def _delete_crds(api: RawApi) -> None:
    """Delete the snapshot CRDs and wait until they are gone.

    A CRD deleted right after its creation can be left Terminating for minutes: the API
    server's clean-up finalizer lists the instances before the resource's watch cache is
    initialized, fails with "storage is (re)initializing" and is not tried again until the
    next change of the CRD (operator-framework/operator-controller#1437). A CRD in that state
    gets an annotation, a change that makes the finalizer try again.
    """
    for name in crds.SNAPSHOT_CRD_NAMES:
        await api.delete(f"{CRDS}/{name}")
    kicks = 0

    async def gone() -> bool:
        nonlocal kicks
        left = await _crds(api)
        for name, crd in left.items():
            conditions = crd.get("status", {}).get("conditions") or []
            if any(c.get("reason") == "InstanceDeletionFailed" for c in conditions):
                kicks += 1
                patch = {"metadata": {"annotations": {"csi-sidecars.io/retry": str(kicks)}}}
                await api.patch(f"{CRDS}/{name}", patch)
        return not left

    await poll_until(gone, 60, "the snapshot CRDs to be deleted", interval=0.2, max_interval=2.0)


async def _namespace(api: RawApi) -> str:
    name = unique("crds")
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await api.create("/api/v1/namespaces", body)
    return name


def _newer_chart(tmp: Path) -> Path:
    """A copy of the chart whose CRD bundle is "v8.7.0", with one changed description."""
    chart = copy_chart(tmp)
    meta = chart / "Chart.yaml"
    meta.write_text(
        meta.read_text().replace(f"{VERSION_ANNOTATION}: v8.6.0", f"{VERSION_ANNOTATION}: v8.7.0")
    )
    path = chart / "files" / "crds" / f"{CLASSES}.yaml"
    crd = yaml.safe_load(path.read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = NEWER_TEXT
    path.write_text(yaml.safe_dump(crd))
    return chart


async def _crds(api: RawApi) -> dict[str, dict[str, Any]]:
    listed = (await api.get(CRDS))["items"]
    return {
        c["metadata"]["name"]: c for c in listed if c["metadata"]["name"] in crds.SNAPSHOT_CRD_NAMES
    }


def _description(crd: dict[str, Any]) -> str:
    return str(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"])


async def test_snapshot_crds_lifecycle(bare_cp: ControlPlane, tmp_path: Path) -> None:
    api = bare_cp.admin
    helm = HelmCli(bare_cp, tmp_path)
    ns1, ns2 = await _namespace(api), await _namespace(api)
    before = await inventory(api, [ns1, ns2, "default"])
    assert not await _crds(api)
    snapshots = driver_values(
        f"{unique('one')}.csi.example.com", snapshotController={"enabled": True}
    )

    # 1. absent: the release installs them, kept by policy, owned by it
    await helm.install("one", ns1, snapshots)
    installed = await _crds(api)
    assert sorted(installed) == sorted(crds.SNAPSHOT_CRD_NAMES)
    for name, crd in installed.items():
        annotations = crd["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations[VERSION_ANNOTATION] == "v8.6.0"
        assert annotations["meta.helm.sh/release-name"] == "one"
        assert crd["spec"]["versions"] == crds.load(name)["spec"]["versions"]
    uids = {n: c["metadata"]["uid"] for n, c in installed.items()}
    vsc = unique("vsc")
    body = {
        "apiVersion": f"{crds.SNAPSHOT_GROUP}/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": vsc},
        "driver": "x.csi.example.com",
        "deletionPolicy": "Delete",
    }
    await api.create(VSC_PATH, body)

    # 2. dropped from the release: kept, with what they hold
    await helm.upgrade("one", ns1, {**snapshots, "snapshotCRDs": {"install": False}})
    assert {n: c["metadata"]["uid"] for n, c in (await _crds(api)).items()} == uids
    assert await api.get_or_none(f"{VSC_PATH}/{vsc}") is not None

    # 3. a chart with a newer bundle upgrades them (and takes them back into the release)
    await helm.upgrade("one", ns1, snapshots, chart=_newer_chart(tmp_path))
    upgraded = await _crds(api)
    assert {n: c["metadata"]["uid"] for n, c in upgraded.items()} == uids
    assert {c["metadata"]["annotations"][VERSION_ANNOTATION] for c in upgraded.values()} == {
        "v8.7.0"
    }
    assert _description(upgraded[CLASSES]) == NEWER_TEXT

    # 4. an older chart does not downgrade them
    notes = await helm.upgrade("one", ns1, snapshots)
    for name in crds.SNAPSHOT_CRD_NAMES:
        assert f"CRD {name} in the cluster is newer than the chart's" in notes
    kept = await _crds(api)
    assert {n: c["metadata"]["uid"] for n, c in kept.items()} == uids
    assert _description(kept[CLASSES]) == NEWER_TEXT

    # 5. a second release: another owner's CRDs are left alone (no ownership conflict)
    other = driver_values(
        f"{unique('two')}.csi.example.com", controller={"snapshotter": {"enabled": True}}
    )
    notes = await helm.install("two", ns2, other)
    for name in crds.SNAPSHOT_CRD_NAMES:
        assert f"CRD {name} exists and was not installed by this release" in notes
    for crd in (await _crds(api)).values():
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == "one"

    # 6. uninstalls remove everything but the CRDs and what they hold
    await helm.uninstall("two", ns2)
    await helm.uninstall("one", ns1)
    assert {n: c["metadata"]["uid"] for n, c in (await _crds(api)).items()} == uids
    assert await api.get_or_none(f"{VSC_PATH}/{vsc}") is not None
    after = await inventory(api, [ns1, ns2, "default"])
    assert sorted(after - before - {f"{CRDS}/{n}" for n in crds.SNAPSHOT_CRD_NAMES}) == []
    assert sorted(before - after) == []
