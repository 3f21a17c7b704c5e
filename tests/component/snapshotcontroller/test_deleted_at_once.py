"""Snapshots deleted right after their creation leave no content behind (#1388's shape).

The whole role on the fake API server: snapshots and group snapshots deleted a few
milliseconds after they were created, a content that reaches the API server after its snapshot
is gone (the POST of a stalled leader that was replaced), and such a content found at start-up
(the controller restarted in between). Each time the content ends up deleted and marked for
the sidecar, which then lets it go (played here).
"""

from __future__ import annotations

import asyncio

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from tests.component.snapshotcontroller.harness import Env, poll, running
from tests.unit.snapshotcontroller.fixtures import pv, pvc, vgs, vgsc, vgsclass, vs, vsc, vsclass
from tests.unit.snapshotcontroller.reactor import KINDS

SOURCES = [vsclass("gold"), pvc("c", pv="p"), pv("p", "c", handle="h")]


async def play_sidecar(env: Env) -> None:
    """Let every deleted content that the controller marked go (the sidecar's part)."""
    for content in env.kube.objects(VOLUME_SNAPSHOT_CONTENTS):
        meta = content["metadata"]
        if meta.get("deletionTimestamp") and ANN_VOLUME_SNAPSHOT_BEING_DELETED in (
            meta.get("annotations") or {}
        ):
            await env.sidecar_delete(meta["name"])
    for content in env.kube.objects(VOLUME_GROUP_SNAPSHOT_CONTENTS):
        meta = content["metadata"]
        if meta.get("deletionTimestamp") and ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED in (
            meta.get("annotations") or {}
        ):
            fins = [f for f in meta.get("finalizers", []) if f != VGSC_FINALIZER]
            await env.kube.patch(
                VOLUME_GROUP_SNAPSHOT_CONTENTS, meta["name"], {"metadata": {"finalizers": fins}}
            )


async def all_gone(env: Env) -> None:
    """Poll (playing the sidecar) until no snapshot, content or group object is left."""

    async def empty() -> bool:
        await play_sidecar(env)
        return not any(
            env.kube.objects(kind)
            for kind in (
                VOLUME_SNAPSHOTS,
                VOLUME_SNAPSHOT_CONTENTS,
                VOLUME_GROUP_SNAPSHOTS,
                VOLUME_GROUP_SNAPSHOT_CONTENTS,
            )
        )

    deadline = asyncio.get_running_loop().time() + 20
    while not await empty():
        left = {
            k.plural: [o["metadata"]["name"] for o in env.kube.objects(k)]
            for k in (VOLUME_SNAPSHOTS, VOLUME_SNAPSHOT_CONTENTS, VOLUME_GROUP_SNAPSHOT_CONTENTS)
        }
        assert asyncio.get_running_loop().time() < deadline, f"left behind: {left}"
        await asyncio.sleep(0.05)


async def test_snapshots_deleted_moments_after_creation_leave_no_content() -> None:
    async with running() as env:
        await env.add(*SOURCES)
        for i, delay in enumerate([0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]):
            await env.add(vs(f"s{i}", f"u{i}", claim="c", cls="gold"))
            await asyncio.sleep(delay)
            await env.kube.delete(VOLUME_SNAPSHOTS, f"s{i}", "default")
        await all_gone(env)


async def test_a_content_posted_after_its_snapshot_was_deleted_is_deleted() -> None:
    async with running() as env:
        await env.add(*SOURCES)
        # A stalled, replaced leader's POST arrives late: the snapshot is long gone.
        await env.add(vsc("snapcontent-u9", "s9", "u9", handle="h", cls="gold"))
        await all_gone(env)


async def test_re_created_snapshot_keeps_its_content_and_the_old_one_goes() -> None:
    async with running() as env:
        await env.add(*SOURCES, vsc("snapcontent-old", "s", "old", handle="h", cls="gold"))
        await env.add(vs("s", "new", claim="c", cls="gold"))
        await poll(lambda: env.get("VolumeSnapshotContent", "snapcontent-new"), what="content")

        async def old_gone() -> bool:
            await play_sidecar(env)
            return env.get("VolumeSnapshotContent", "snapcontent-old") is None

        await poll(old_gone, what="the old snapshot's content deleted")
        new = env.get("VolumeSnapshotContent", "snapcontent-new")
        assert new is not None and not new["metadata"].get("deletionTimestamp")


async def test_a_content_left_while_the_controller_was_down_is_deleted_at_start() -> None:
    kube = FakeKube()
    for obj in [*SOURCES, vsc("snapcontent-u7", "s7", "u7", handle="h", cls="gold")]:
        await kube.create(KINDS[obj["kind"]], obj, obj["metadata"].get("namespace"))
    async with running(kube) as env:
        await all_gone(env)


async def test_group_snapshots_deleted_moments_after_creation_leave_no_content() -> None:
    claims = [
        pvc("c1", pv="p1", labels={"app": "db"}),
        pv("p1", "c1", handle="h1"),
    ]
    async with running() as env:
        await env.add(vgsclass("gold"), *claims)
        for i, delay in enumerate([0.0, 0.005, 0.02, 0.1]):
            group = vgs(f"g{i}", f"gu{i}", selector={"matchLabels": {"app": "db"}}, cls="gold")
            await env.add(group)
            await asyncio.sleep(delay)
            await env.kube.delete(VOLUME_GROUP_SNAPSHOTS, f"g{i}", "default")
        # and one posted late, after its group is gone
        await env.add(vgsc("groupsnapcontent-gu9", "g9", "gu9", handles=["h1"], cls="gold"))
        await all_gone(env)
