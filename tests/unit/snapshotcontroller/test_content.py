"""The VolumeSnapshotContent decision: one sync per row (Go's syncContent cases 1-x and 5-x)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
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
        "a content whose snapshot is gone is never deleted by the controller",
        [vsc("snapcontent-u", "s", "u", handle="h")],
        "snapcontent-u",
        {"VolumeSnapshotContent": [vsc("snapcontent-u", "s", "u", handle="h")]},
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
