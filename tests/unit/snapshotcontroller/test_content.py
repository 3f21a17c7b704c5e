"""The VolumeSnapshotContent decision: one sync per row (Go's syncContent cases 1-x and 5-x)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller.content import decide_content
from tests.unit.snapshotcontroller.cases import Case, check
from tests.unit.snapshotcontroller.fixtures import vs, vsc
from tests.unit.snapshotcontroller.reactor import Injection

FINS = [VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]
MARK = {ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}

CASES = [
    Case(
        "1-1 - noop: content will not be deleted if it is bound to a snapshot correctly, "
        "snapshot uid is not specified",
        [
            vsc("content1-1", "snap1-1", None, snapshot_handle="sid"),
            vs("snap1-1", "u", content="content1-1", finalizers=FINS, deleting=True),
        ],
        "content1-1",
        {"VolumeSnapshotContent": [vsc("content1-1", "snap1-1", None, snapshot_handle="sid")]},
    ),
    Case(
        "1-3 - will not delete content with retain policy set which is bound to a snapshot "
        "incorrectly",
        [
            vsc("content1-3", "snap1-3", "x", snapshot_handle="sid", policy="Retain"),
            vs("snap1-3", "u", content="content1-3", finalizers=FINS, deleting=True),
        ],
        "content1-3",
        {
            "VolumeSnapshotContent": [
                vsc("content1-3", "snap1-3", "x", snapshot_handle="sid", policy="Retain")
            ]
        },
    ),
    Case(
        "5-1 - content missing finalizer is updated to have finalizer",
        [vsc("content5-1", "snap5-1", "u", handle="h", finalizers=[])],
        "content5-1",
        {
            "VolumeSnapshotContent": [
                vsc("content5-1", "snap5-1", "u", handle="h", finalizers=[VSC_FINALIZER])
            ]
        },
    ),
    Case(
        "5-2 - content missing finalizer update attempt fails because of failed API call",
        [vsc("content5-2", "snap5-2", "u", handle="h", finalizers=[])],
        "content5-2",
        {"VolumeSnapshotContent": [vsc("content5-2", "snap5-2", "u", handle="h", finalizers=[])]},
        result=False,
        errors=[Injection("patch", "VolumeSnapshotContent", message="mock update error")],
    ),
    Case(
        "5-3 - (dynamic) snapshot deletion candidate marked for deletion",
        [
            vsc("snapcontent-u", "snap5-3", "u", handle="h"),
            vs("snap5-3", "u", claim="c", bound="snapcontent-u", finalizers=FINS, deleting=True),
        ],
        "snapcontent-u",
        {
            "VolumeSnapshotContent": [
                vsc("snapcontent-u", "snap5-3", "u", handle="h", annotations=MARK)
            ]
        },
    ),
    Case(
        "5-4 - (dynamic) snapshot deletion candidate fail to mark for deletion due to failed API "
        "call",
        [
            vsc("snapcontent-u", "snap5-4", "u", handle="h"),
            vs("snap5-4", "u", claim="c", bound="snapcontent-u", finalizers=FINS, deleting=True),
        ],
        "snapcontent-u",
        {"VolumeSnapshotContent": [vsc("snapcontent-u", "snap5-4", "u", handle="h")]},
        result=False,
        errors=[Injection("patch", "VolumeSnapshotContent", message="mock update error")],
    ),
    Case(
        "5-6 - (static) snapshot deletion candidate marked for deletion",
        [
            vsc("content5-6", "snap5-6", "u", snapshot_handle="sid"),
            vs(
                "snap5-6",
                "u",
                content="content5-6",
                bound="content5-6",
                finalizers=FINS,
                deleting=True,
            ),
        ],
        "content5-6",
        {
            "VolumeSnapshotContent": [
                vsc("content5-6", "snap5-6", "u", snapshot_handle="sid", annotations=MARK)
            ]
        },
    ),
    Case(
        "validation: both handles",
        [vsc("c", "s", "u", handle="h", snapshot_handle="sid")],
        "c",
        {"VolumeSnapshotContent": [vsc("c", "s", "u", handle="h", snapshot_handle="sid")]},
        ["Warning ContentValidationError"],
        messages=["Exactly one of VolumeHandle and SnapshotHandle should be specified"],
    ),
    Case(
        "a snapshot that is not being deleted leaves its content alone",
        [
            vsc("snapcontent-u", "s", "u", handle="h"),
            vs("s", "u", claim="c", bound="snapcontent-u", finalizers=FINS),
        ],
        "snapcontent-u",
        {"VolumeSnapshotContent": [vsc("snapcontent-u", "s", "u", handle="h")]},
    ),
    Case(
        "a pre-provisioned content whose snapshot is gone is never deleted by the controller "
        "(a manifest copied from another cluster must not destroy data)",
        [vsc("content-s", "s", "u", snapshot_handle="sid")],
        "content-s",
        {"VolumeSnapshotContent": [vsc("content-s", "s", "u", snapshot_handle="sid")]},
    ),
    Case(
        "a content being deleted whose snapshot is gone is marked so the sidecar finishes "
        "(heals a lost annotation)",
        [vsc("snapcontent-u", "s", "u", handle="h", deleting=True)],
        "snapcontent-u",
        {
            "VolumeSnapshotContent": [
                vsc("snapcontent-u", "s", "u", handle="h", deleting=True, annotations=MARK)
            ]
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sync_content(case: Case) -> None:
    await check(case, decide_content, "VolumeSnapshotContent")


def orphan(name: str = "snapcontent-u", uid: str = "u", **kw: object) -> dict:
    """A content the controller created for the snapshot ``s`` with ``uid``."""
    args: dict = {"handle": "h"}
    args.update(kw)
    return vsc(name, "s", uid, **args)


def gone(name: str = "snapcontent-u", uid: str = "u", **kw: object) -> dict:
    """``orphan(...)`` after the controller deleted it for the sidecar to finish."""
    args: dict = {"deleting": True, "annotations": MARK}
    args.update(kw)
    return orphan(name, uid, **args)


#: A VolumeSnapshot deleted right after its creation leaves the content the controller made
#: for it (created meanwhile, or by a request that reached the API server late) without its
#: snapshot. Such a content can never be bound again (a dynamic content is found only by the
#: uid of its snapshot), so with policy Delete it is deleted and the sidecar deletes the
#: backend snapshot (#1388). Go leaves it forever.
ORPHANS = [
    Case(
        "orphan-1 - a dynamic content whose snapshot was deleted before it was bound is deleted",
        [orphan()],
        "snapcontent-u",
        {"VolumeSnapshotContent": [gone()]},
    ),
    Case(
        "orphan-2 - also while the sidecar is cutting it (it finishes the create, then deletes)",
        [orphan(annotations={ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"})],
        "snapcontent-u",
        {
            "VolumeSnapshotContent": [
                gone(annotations={ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes", **MARK})
            ]
        },
    ),
    Case(
        "orphan-3 - a ready one too; the finalizer goes back first so the sidecar sees it",
        [orphan(ready=True, created=1, finalizers=[])],
        "snapcontent-u",
        {"VolumeSnapshotContent": [gone(ready=True, created=1)]},
    ),
    Case(
        "orphan-4 - the snapshot was re-created with the same name: the old one's content goes",
        [orphan(), orphan("snapcontent-v", "v"), vs("s", "v", claim="c", finalizers=FINS)],
        "snapcontent-u",
        {"VolumeSnapshotContent": [gone(), orphan("snapcontent-v", "v")]},
    ),
    Case(
        "orphan-5 - ... and the new one's content stays",
        [orphan(), orphan("snapcontent-v", "v"), vs("s", "v", claim="c", finalizers=FINS)],
        "snapcontent-v",
        {"VolumeSnapshotContent": [orphan(), orphan("snapcontent-v", "v")]},
    ),
    Case(
        "orphan-6 - the cache has not seen the snapshot yet, the API server has it: kept",
        [orphan(), vs("s", "u", claim="c")],
        "snapcontent-u",
        {"VolumeSnapshotContent": [orphan()]},
        unseen=[("VolumeSnapshot", "s")],
    ),
    Case(
        "orphan-7 - the cache has not seen the re-created snapshot (another uid): deleted",
        [orphan(), vs("s", "v", claim="c")],
        "snapcontent-u",
        {"VolumeSnapshotContent": [gone()]},
        unseen=[("VolumeSnapshot", "s")],
    ),
    Case(
        "orphan-8 - policy Retain: kept",
        [orphan(policy="Retain")],
        "snapcontent-u",
        {"VolumeSnapshotContent": [orphan(policy="Retain")]},
    ),
    Case(
        "orphan-9 - a content not named after its snapshot's uid (not made by a controller for "
        "it: another tool's, or a group member's) is kept",
        [orphan("content-x")],
        "content-x",
        {"VolumeSnapshotContent": [orphan("content-x")]},
    ),
    Case(
        "orphan-10 - the DELETE fails: retried",
        [orphan()],
        "snapcontent-u",
        {"VolumeSnapshotContent": [orphan(annotations=MARK)]},
        result=False,
        errors=[Injection("delete", "VolumeSnapshotContent")],
    ),
]


@pytest.mark.parametrize("case", ORPHANS, ids=str)
async def test_content_of_a_gone_snapshot(case: Case) -> None:
    await check(case, decide_content, "VolumeSnapshotContent")
