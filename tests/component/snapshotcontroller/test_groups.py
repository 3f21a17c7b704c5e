"""Group snapshots through the whole role on the fake API server (the sidecar is played)."""

from __future__ import annotations

from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import names
from tests.component.snapshotcontroller.harness import poll, running
from tests.unit.snapshotcontroller.fixtures import pv, pvc, vgs, vgsclass

GROUP_CONTENT = "groupsnapcontent-gu"
SELECTOR = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "cache"]}]}


async def test_group_snapshot_create_members_and_delete() -> None:
    async with running() as env:
        await env.add(
            vgsclass("gold", default=True),
            pvc("c1", pv="p1", labels={"app": "db"}),
            pvc("c2", pv="p2", labels={"app": "cache"}),
            pvc("c3", pv="p3", labels={"app": "web"}),
            pv("p1", "c1", handle="h1"),
            pv("p2", "c2", handle="h2"),
            pv("p3", "c3", handle="h3"),
            vgs("g", "gu", selector=SELECTOR),
        )
        content = await poll(
            lambda: env.get("VolumeGroupSnapshotContent", GROUP_CONTENT), what="group content"
        )
        assert content["spec"]["source"]["volumeHandles"] == ["h1", "h2"]
        assert content["metadata"]["finalizers"] == [VGSC_FINALIZER]
        # the sidecar cut the group
        infos = [
            {
                "volumeHandle": h,
                "snapshotHandle": f"s-{h}",
                "readyToUse": True,
                "creationTime": 1767225600 * 10**9,
                "restoreSize": 1024,
            }
            for h in ("h1", "h2")
        ]
        await env.kube.patch(
            VOLUME_GROUP_SNAPSHOT_CONTENTS,
            GROUP_CONTENT,
            {
                "status": {
                    "volumeGroupSnapshotHandle": "gh",
                    "readyToUse": True,
                    "creationTime": "2026-01-01T00:00:00Z",
                    "volumeSnapshotInfoList": infos,
                }
            },
            subresource="status",
        )
        members = [names.member_snapshot_name("gu", h) for h in ("h1", "h2")]
        for m in members:
            await poll(
                lambda m=m: (
                    (env.get("VolumeSnapshot", m) or {}).get("status", {}).get("readyToUse") is True
                ),
                what=f"member {m} ready",
            )
            member = env.get("VolumeSnapshot", m)
            assert member is not None and member["status"]["volumeGroupSnapshotName"] == "g"
        await poll(
            lambda: (
                (env.get("VolumeGroupSnapshot", "g") or {}).get("status", {}).get("readyToUse")
                is True
            ),
            what="group ready",
        )
        assert {"CreatingGroupSnapshot", "GroupSnapshotCreated", "GroupSnapshotReady"} <= set(
            env.reasons("g")
        )
        # a member alone cannot be deleted while the group exists
        from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOTS

        await env.kube.delete(VOLUME_SNAPSHOTS, members[0], "default")
        await poll(lambda: "SnapshotDeletePending" in env.reasons(members[0]), what="refused")
        assert env.get("VolumeSnapshot", members[0]) is not None
        # deleting the group: content marked and deleted, members deleted
        await env.kube.delete(VOLUME_GROUP_SNAPSHOTS, "g", "default")
        await poll(
            lambda: (
                (env.get("VolumeGroupSnapshotContent", GROUP_CONTENT) or {})
                .get("metadata", {})
                .get("deletionTimestamp")
            ),
            what="group content deleting",
        )
        gc = env.get("VolumeGroupSnapshotContent", GROUP_CONTENT)
        assert gc is not None
        assert gc["metadata"]["annotations"][ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED] == "yes"
        # the sidecar deleted the group snapshot
        await env.kube.patch(
            VOLUME_GROUP_SNAPSHOT_CONTENTS, GROUP_CONTENT, {"metadata": {"finalizers": []}}
        )
        await poll(lambda: env.get("VolumeGroupSnapshot", "g") is None, what="group gone")
        # the members' contents are deleted (the members keep their finalizers until their
        # contents are gone, then lose them all at once); the sidecar lets member contents go
        # without a DeleteSnapshot
        for m in members:
            vsc_name = names.member_content_name("gu", "h1" if m == members[0] else "h2")
            await poll(
                lambda n=vsc_name: (
                    (env.get("VolumeSnapshotContent", n) or {})
                    .get("metadata", {})
                    .get("deletionTimestamp")
                ),
                what="member content deleting",
            )
            mc = env.get("VolumeSnapshotContent", vsc_name)
            assert mc is not None and VSC_FINALIZER in mc["metadata"]["finalizers"]
            await env.kube.patch(
                VOLUME_SNAPSHOT_CONTENTS, vsc_name, {"metadata": {"finalizers": []}}
            )
        for m in members:
            await poll(lambda m=m: env.get("VolumeSnapshot", m) is None, what=f"{m} gone")
