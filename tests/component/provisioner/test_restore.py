"""Restore from a VolumeSnapshot through the controller: fake kube with VS/VSC objects, the
in-process playground driver holding the snapshots."""

from __future__ import annotations

from pathlib import Path

import grpc

from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOTS
from csi_sidecars.provisioner.decide import strings
from tests.component.provisioner.harness import NS, environment, poll

FIN = strings.SNAPSHOT_SOURCE_FINALIZER
GROUP = strings.SNAPSHOT_API_GROUP
PREFIX = "error getting handle for DataSource Type VolumeSnapshot by Name"


def restoring(snapshot: str) -> dict[str, str]:
    return {"kind": "VolumeSnapshot", "name": snapshot, "apiGroup": GROUP}


async def test_restore_sends_the_snapshot_and_releases_its_protection(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        _, snap_id = await env.add_snapshot("snap")
        pvc = await env.add_claim("copy", storage="2Gi", dataSource=restoring("snap"))
        await env.start()
        pv = await poll(lambda: env.pv_of(pvc), what="PV of the restore")
        (request,) = env.driver.calls_of("CreateVolume")
        assert request.volume_content_source.snapshot.snapshot_id == snap_id
        volume = env.volumes()[pv["spec"]["csi"]["volumeHandle"]]
        assert volume.source_snapshot_id == snap_id
        assert volume.capacity_bytes == 2 << 30  # larger than restoreSize: allowed
        # The finalizer was added before CreateVolume and is gone once the PV is saved.
        writes = [a.body["metadata"]["finalizers"] for a in env.kube.actions_of("replace")
                  if a.resource == "volumesnapshots"]  # fmt: skip
        assert writes == [[FIN], []]
        vs = await poll(lambda: env.snapshot("snap"), what="snapshot")
        assert FIN not in (vs["metadata"].get("finalizers") or [])
        await env.idle()
        reasons = [e[2] for e in env.events.of("copy")]
        assert reasons == ["Provisioning", "ProvisioningSucceeded"]


async def test_group_member_restores_like_any_snapshot(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        _, snap_id = await env.add_snapshot("member-0", member_of="group")
        pvc = await env.add_claim("copy", dataSource=restoring("member-0"))
        await env.start()
        await poll(lambda: env.pv_of(pvc), what="PV of the restore")
        (request,) = env.driver.calls_of("CreateVolume")
        assert request.volume_content_source.snapshot.snapshot_id == snap_id


async def test_unready_snapshot_waits_with_an_event_then_restores(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        await env.add_snapshot("snap", ready=False)
        pvc = await env.add_claim("copy", dataSource=restoring("snap"))
        await env.start()
        failed = await poll(lambda: env.events.of("copy", "ProvisioningFailed"), what="event")
        assert failed[0][3] == f"{PREFIX} snap: snapshot snap is not Ready"
        assert not env.driver.calls_of("CreateVolume")
        await env.kube.patch(
            VOLUME_SNAPSHOTS, "snap", {"status": {"readyToUse": True}}, NS,
            subresource="status",
        )  # fmt: skip
        await poll(lambda: env.pv_of(pvc), what="PV once the snapshot is ready")


async def test_unusable_snapshots_are_clear_events_and_no_create(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        await env.add_snapshot("foreign", driver="other.csi.test")
        await env.add_snapshot("big", restore_size="3Gi")
        await env.add_claim("missing", dataSource=restoring("nope"))
        await env.add_claim("other", dataSource=restoring("foreign"))
        await env.add_claim("small", storage="1Gi", dataSource=restoring("big"))
        await env.start()
        expected = {
            "missing": f"{PREFIX} nope: error getting snapshot nope from api server: "
            'volumesnapshots.snapshot.storage.k8s.io "nope" not found',
            "other": f"{PREFIX} foreign: snapshotcontent snapcontent-foreign for snapshot foreign "
            "is not handled by CSI driver of StorageClass fast",
            "small": f"{PREFIX} big: requested volume size 1073741824 is less than the size "
            "3221225472 for the source snapshot big",
        }
        for claim, message in expected.items():
            failed = await poll(lambda c=claim: env.events.of(c, "ProvisioningFailed"), what=claim)
            assert failed[0][3] == message
            assert env.events.of(claim)[0][2] == "Provisioning"
        assert not env.driver.calls_of("CreateVolume")
        assert not env.kube.actions_of("replace", VOLUME_SNAPSHOTS)


async def test_protection_lasts_while_another_claim_still_restores(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        await env.add_snapshot("snap")
        first = await env.add_claim("first", dataSource=restoring("snap"))
        second = await env.add_claim("second", dataSource=restoring("snap"))
        name = f"pvc-{second['metadata']['uid']}"
        env.driver.faults.add("CreateVolume", code=grpc.StatusCode.INTERNAL, match={"name": name})
        await env.start()
        await poll(lambda: env.pv_of(first), what="PV of the first restore")
        await poll(lambda: len(env.events.of("second", "ProvisioningFailed")) >= 2, what="retries")
        vs = env.snapshot("snap")
        assert vs is not None and FIN in vs["metadata"]["finalizers"]  # second still pending
        await env.kube.delete(PERSISTENT_VOLUME_CLAIMS, "second", NS)

        def released() -> bool:
            cur = env.snapshot("snap")
            return cur is not None and FIN not in (cur["metadata"].get("finalizers") or [])

        await poll(released, what="the protection to go with the last restoring claim")


async def test_sweep_releases_an_orphaned_protection(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        vs, _ = await env.add_snapshot("snap")
        vs["metadata"]["finalizers"] = ["keep", FIN]
        await env.kube.replace(VOLUME_SNAPSHOTS, vs, NS)
        await env.start(snapshot_orphan_sweep_interval=0.2)

        def swept() -> list[str] | None:
            cur = env.snapshot("snap")
            fins = list(cur["metadata"].get("finalizers") or []) if cur else []
            return fins if FIN not in fins else None

        assert await poll(swept, what="the orphaned finalizer swept") == ["keep"]


async def test_no_sweep_when_the_interval_is_zero(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        vs, _ = await env.add_snapshot("snap")
        vs["metadata"]["finalizers"] = [FIN]
        await env.kube.replace(VOLUME_SNAPSHOTS, vs, NS)
        ctrl = await env.start(snapshot_orphan_sweep_interval=0.0)
        await env.idle()
        assert ctrl.snapshot_protection is not None
        assert not env.kube.actions_of("list", VOLUME_SNAPSHOTS)
        cur = env.snapshot("snap")
        assert cur is not None and cur["metadata"]["finalizers"] == [FIN]
