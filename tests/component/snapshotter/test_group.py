"""Group snapshots through the playground driver's GroupController."""

from __future__ import annotations

from pathlib import Path

from csi_sidecars.kube import snapshots as api
from tests.component.snapshotter.harness import DRIVER, NAMESPACE, create_content, poll, running

VGSC = api.VOLUME_GROUP_SNAPSHOT_CONTENTS


def group_class() -> dict[str, object]:
    return {"metadata": {"name": "group-gold"}, "driver": DRIVER, "deletionPolicy": "Delete"}


async def test_group_snapshot_create_and_delete(tmp_path: Path) -> None:
    async with running(tmp_path, feature_gates=["CSIVolumeGroupSnapshot=true"]) as env:
        vols = [await env.volume("gv-1"), await env.volume("gv-2")]
        await env.kube.create(api.VOLUME_GROUP_SNAPSHOT_CLASSES, group_class())
        body = {
            "metadata": {"name": "groupcontent-1", "finalizers": [api.VGSC_FINALIZER]},
            "spec": {
                "driver": DRIVER,
                "deletionPolicy": "Delete",
                "source": {"volumeHandles": vols},
                "volumeGroupSnapshotClassName": "group-gold",
                "volumeGroupSnapshotRef": {"name": "vgs", "namespace": NAMESPACE, "uid": "g-uid"},
            },
        }
        await env.kube.create(VGSC, body)
        got = await poll(
            lambda: (
                (c := env.group_content("groupcontent-1"))
                and (c.get("status") or {}).get("readyToUse")
                and c
            ),
            what="group ready",
        )
        groups = env.drv.state.data.group_snapshots
        assert [g.name for g in groups.values()] == ["groupsnapshot-g-uid"]
        infos = got["status"]["volumeSnapshotInfoList"]
        assert sorted(i["volumeHandle"] for i in infos) == sorted(vols)
        assert got["status"]["volumeGroupSnapshotHandle"] in groups
        assert got["metadata"].get("annotations", {}) == {}

        await env.kube.patch(
            VGSC,
            "groupcontent-1",
            {"metadata": {"annotations": {api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: "yes"}}},
        )
        await env.kube.delete(VGSC, "groupcontent-1")
        await poll(lambda: env.group_content("groupcontent-1") is None, what="gone")
        assert env.drv.state.data.group_snapshots == {}
        assert env.snapshots() == {}


async def test_group_snapshots_off_by_default(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        await env.kube.create(
            api.VOLUME_SNAPSHOT_CLASSES, {"metadata": {"name": "x"}, "driver": DRIVER}
        )
        await poll(lambda: bool(env.kube.actions_of("watch", api.VOLUME_SNAPSHOT_CONTENTS)))
        assert env.kube.actions_of("list", VGSC) == []


async def test_missing_group_crds_disable_group_snapshots_only(tmp_path: Path) -> None:
    from csi_sidecars.kube.fake import FakeKube
    from csi_sidecars.kube.resources import ApiError
    from tests.component.snapshotter.harness import dynamic_content, snapshot_class

    kube = FakeKube()
    kube.inject(
        "list",
        ApiError(404, "NotFound", "the server could not find the requested resource"),
        resource=VGSC,
    )
    async with running(tmp_path, kube=kube, feature_gates=["CSIVolumeGroupSnapshot=true"]) as env:
        vol = await env.volume("v-1")
        await kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
        await create_content(kube, dynamic_content("c-1", vol))
        await poll(lambda: env.ready("c-1"), what="snapshots still work")
        assert kube.actions_of("watch", VGSC) == []
        assert len(kube.actions_of("list", VGSC)) == 1  # the probe only
