"""The node and snapshot parts of the ``csi check`` scenario (see
:mod:`csi_sidecars.csicli.scenario`), as plain functions over :class:`Steps`."""

from __future__ import annotations

import os
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csicli.lifecycle import MAYBE_DONE, Abort, Steps

pb: Any = csi_pb2  # generated classes are dynamic; keep mypy out of them

UNLINK_RULE = "The SP MUST delete the file or directory it created at this path."


def _lexists(path: str) -> bool:
    return os.path.lexists(path)


async def node_steps(
    s: Steps,
    workdir: str,
    node_caps: set[str],
    volume_id: str,
    cap: Any,
    ctx: dict[str, str],
    pub: dict[str, str],
    secrets: dict[str, str],
) -> None:
    """Stage (when the node has STAGE_UNSTAGE_VOLUME), publish, stats, unpublish, unstage."""
    staging = os.path.join(workdir, "staging")
    target = os.path.join(workdir, "target")
    staged = "STAGE_UNSTAGE_VOLUME" in node_caps
    if staged:
        os.makedirs(staging, exist_ok=True)  # the CO creates the staging directory
        req = pb.NodeStageVolumeRequest(
            volume_id=volume_id,
            staging_target_path=staging,
            volume_capability=cap,
            publish_context=pub,
            volume_context=ctx,
            secrets=secrets,
        )
        await s.run("node stage", "node", "NodeStageVolume", req)
        s.undo_request(
            "stage",
            "node unstage",
            "node",
            "NodeUnstageVolume",
            pb.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=staging),
        )
        await s.run("node stage again", "node", "NodeStageVolume", req)
    else:
        s.skip("node stage", "NodeStageVolume", "no STAGE_UNSTAGE_VOLUME capability")
    req = pb.NodePublishVolumeRequest(
        volume_id=volume_id,
        target_path=target,
        volume_capability=cap,
        staging_target_path=staging if staged else "",
        publish_context=pub,
        volume_context=ctx,
        secrets=secrets,
    )
    await s.run("node publish", "node", "NodePublishVolume", req)
    s.undo_request(
        "node-publish",
        "node unpublish",
        "node",
        "NodeUnpublishVolume",
        pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target),
    )
    visible = _lexists(target)  # the driver shares our filesystem
    await s.run("node publish again", "node", "NodePublishVolume", req)
    if "GET_VOLUME_STATS" in node_caps:
        await s.run(
            "volume stats",
            "node",
            "NodeGetVolumeStats",
            pb.NodeGetVolumeStatsRequest(
                volume_id=volume_id,
                volume_path=target,
                staging_target_path=staging if staged else "",
            ),
            fatal=False,
        )
    else:
        s.skip("volume stats", "NodeGetVolumeStats", "no GET_VOLUME_STATS capability")

    def removed(reply: Any) -> str | None:
        if visible and _lexists(target):
            return f"{target} still exists ({UNLINK_RULE})"
        return None

    for again in ("", " again"):
        await s.run(
            f"node unpublish{again}",
            "node",
            "NodeUnpublishVolume",
            pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target),
            removed,
        )
        s.done("node-publish")
    if staged:
        for again in ("", " again"):
            await s.run(
                f"node unstage{again}",
                "node",
                "NodeUnstageVolume",
                pb.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=staging),
            )
            s.done("stage")


async def snapshot_steps(
    s: Steps, name: str, ctrl_caps: set[str], volume_id: str, secrets: dict[str, str]
) -> None:
    """Create (twice), list, delete (twice) a snapshot of the volume."""
    if "CREATE_DELETE_SNAPSHOT" not in ctrl_caps:
        s.skip("create snapshot", "CreateSnapshot", "no CREATE_DELETE_SNAPSHOT capability")
        return
    req = pb.CreateSnapshotRequest(name=f"{name}-snap", source_volume_id=volume_id, secrets=secrets)
    try:
        snap = (await s.run("create snapshot", "controller", "CreateSnapshot", req)).snapshot
    except Abort as abort:
        if abort.code in MAYBE_DONE:
            s.push_undo(
                "snapshot",
                "delete snapshot (created by a failed call?)",
                "DeleteSnapshot",
                lambda: _recover_snapshot(s, req, secrets),
            )
        raise
    delete = pb.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id, secrets=secrets)
    s.undo_request("snapshot", "delete snapshot", "controller", "DeleteSnapshot", delete)

    def same_snapshot(reply: Any) -> str | None:
        if reply.snapshot.snapshot_id != snap.snapshot_id:
            return (
                f"idempotency: snapshot_id {reply.snapshot.snapshot_id!r} differs from "
                f"the first reply's {snap.snapshot_id!r}"
            )
        return None

    await s.run("create snapshot again", "controller", "CreateSnapshot", req, same_snapshot)
    if "LIST_SNAPSHOTS" in ctrl_caps:

        def listed(reply: Any) -> str | None:
            if snap.snapshot_id in {e.snapshot.snapshot_id for e in reply.entries}:
                return None
            return f"ListSnapshots(snapshot_id={snap.snapshot_id!r}) does not return it"

        await s.run(
            "list snapshots",
            "controller",
            "ListSnapshots",
            pb.ListSnapshotsRequest(snapshot_id=snap.snapshot_id, secrets=secrets),
            listed,
            fatal=False,
        )
    else:
        s.skip("list snapshots", "ListSnapshots", "no LIST_SNAPSHOTS capability")
    for again in ("", " again"):
        await s.run(f"delete snapshot{again}", "controller", "DeleteSnapshot", delete)
        s.done("snapshot")


async def _recover_snapshot(s: Steps, req: Any, secrets: dict[str, str]) -> None:
    """After a create that may have happened: ask again by name, then delete it."""
    reply = await s.call("controller", "CreateSnapshot", req)
    await s.call(
        "controller",
        "DeleteSnapshot",
        pb.DeleteSnapshotRequest(snapshot_id=reply.snapshot.snapshot_id, secrets=secrets),
    )
