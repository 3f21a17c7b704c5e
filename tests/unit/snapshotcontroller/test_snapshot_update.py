"""Binding, status mirroring and ready snapshots: one VolumeSnapshot sync per row (Go's
snapshot_update_test; rows keep the Go case numbers)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
    PVC_FINALIZER,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
)
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.cases import Case, check
from tests.unit.snapshotcontroller.fixtures import (
    CREATED,
    CREATED_NS,
    pv,
    pvc,
    vs,
    vsc,
    vsclass,
)
from tests.unit.snapshotcontroller.reactor import Injection

FINS = [VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]
CLS = vsclass("gold")
SRC = [pvc("claim", pv="pv", finalizers=[PVC_FINALIZER]), pv("pv", "claim")]

CASES = [
    Case(
        "2-1 - (dynamic) snapshot is bound to a non-existing content",
        [
            CLS,
            vs(
                "snap2-1",
                "u",
                claim="claim",
                cls="gold",
                bound="content2-1",
                ready=True,
                finalizers=FINS,
            ),
        ],
        "default/snap2-1",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-1",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="content2-1",
                    ready=False,
                    error="VolumeSnapshotContent is missing",
                    finalizers=FINS,
                )
            ]
        },
        ["Warning SnapshotContentMissing"],
    ),
    Case(
        "2-2 - (static) snapshot points to a content but content does not point to snapshot",
        [
            CLS,
            vsc("content2-2", "snap2-2", "other-uid", snapshot_handle="sid"),
            vs(
                "snap2-2",
                "u",
                content="content2-2",
                cls="gold",
                bound="content2-2",
                ready=False,
                finalizers=FINS,
            ),
        ],
        "default/snap2-2",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-2",
                    "u",
                    content="content2-2",
                    cls="gold",
                    bound="content2-2",
                    ready=False,
                    finalizers=FINS,
                    error="VolumeSnapshotContent [content2-2] is bound to a different snapshot",
                )
            ]
        },
        ["Warning SnapshotContentMisbound"],
        result=False,
    ),
    Case(
        "2-3 - (dynamic) success bind snapshot and content, ready and created",
        [
            CLS,
            *SRC,
            vsc(
                "snapcontent-u",
                "snap2-3",
                "u",
                handle="vol-pv",
                cls="gold",
                ready=True,
                created=CREATED_NS,
                size=1024,
            ),
            vs(
                "snap2-3",
                "u",
                claim="claim",
                cls="gold",
                ready=False,
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/snap2-3",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-3",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    created=CREATED,
                    size="1Ki",
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ]
        },
        ["Normal SnapshotCreated", "Normal SnapshotReady"],
        messages=[
            "Snapshot default/snap2-3 was successfully created by the CSI driver.",
            "Snapshot default/snap2-3 is ready to use.",
        ],
    ),
    Case(
        "2-4 - (static) noop",
        [
            CLS,
            vsc("content2-4", "snap2-4", "u", snapshot_handle="sid", cls="gold", ready=True),
            vs(
                "snap2-4",
                "u",
                content="content2-4",
                cls="gold",
                bound="content2-4",
                ready=True,
                finalizers=FINS,
            ),
        ],
        "default/snap2-4",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-4",
                    "u",
                    content="content2-4",
                    cls="gold",
                    bound="content2-4",
                    ready=True,
                    finalizers=FINS,
                )
            ],
            "VolumeSnapshotContent": [
                vsc("content2-4", "snap2-4", "u", snapshot_handle="sid", cls="gold", ready=True)
            ],
        },
    ),
    Case(
        "2-6 - (static) snapshot bound to content correctly, ref.UID '' -> uid",
        [
            CLS,
            vsc("content2-6", "snap2-6", None, snapshot_handle="sid", cls="gold", ready=False),
            vs(
                "snap2-6",
                "u",
                content="content2-6",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/snap2-6",
        {
            "VolumeSnapshotContent": [
                vsc("content2-6", "snap2-6", "u", snapshot_handle="sid", cls="gold", ready=False)
            ],
            "VolumeSnapshot": [
                vs(
                    "snap2-6",
                    "u",
                    content="content2-6",
                    cls="gold",
                    bound="content2-6",
                    ready=False,
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ],
        },
    ),
    Case(
        "2-10 - (static) do not bind content does not point to the snapshot",
        [
            CLS,
            vsc("content2-10", "snap2-10", "x", snapshot_handle="sid"),
            vs(
                "snap2-10",
                "u",
                content="content2-10",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/snap2-10",
        {
            "VolumeSnapshotContent": [vsc("content2-10", "snap2-10", "x", snapshot_handle="sid")],
            "VolumeSnapshot": [
                vs(
                    "snap2-10",
                    "u",
                    content="content2-10",
                    cls="gold",
                    ready=False,
                    error="VolumeSnapshotContent [content2-10] is bound to a different snapshot",
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ],
        },
        ["Warning SnapshotContentMisbound"],
        result=False,
    ),
    Case(
        "2-11 - (static) successful bind snapshot content with content classname updated",
        [
            CLS,
            vsc("content2-11", "snap2-11", "u", snapshot_handle="sid", ready=True),
            vs(
                "snap2-11",
                "u",
                content="content2-11",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/snap2-11",
        {
            "VolumeSnapshotContent": [
                vsc("content2-11", "snap2-11", "u", snapshot_handle="sid", cls="gold", ready=True)
            ],
            "VolumeSnapshot": [
                vs(
                    "snap2-11",
                    "u",
                    content="content2-11",
                    cls="gold",
                    bound="content2-11",
                    ready=True,
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ],
        },
        ["Normal SnapshotReady"],
    ),
    Case(
        "2-12 - (static) fail bind snapshot content with volume snapshot classname due to API "
        "call failed",
        [
            CLS,
            vsc("content2-12", "snap2-12", "u", snapshot_handle="sid"),
            vs(
                "snap2-12",
                "u",
                content="content2-12",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/snap2-12",
        {
            "VolumeSnapshotContent": [vsc("content2-12", "snap2-12", "u", snapshot_handle="sid")],
            "VolumeSnapshot": [
                vs(
                    "snap2-12",
                    "u",
                    content="content2-12",
                    cls="gold",
                    ready=False,
                    error="Snapshot failed to bind VolumeSnapshotContent, mock update error",
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ],
        },
        ["Warning SnapshotBindFailed"],
        result=False,
        errors=[Injection("patch", "VolumeSnapshotContent", message="mock update error")],
    ),
    Case(
        "2-13 - (dynamic) snapshot expects a dynamically provisioned content but found one "
        "which is pre-provisioned, bind should fail",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "snap2-13", "u", snapshot_handle="sid"),
            vs("snap2-13", "u", claim="claim", cls="gold", finalizers=[VS_AS_SOURCE_FINALIZER]),
        ],
        "default/snap2-13",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-13",
                    "u",
                    claim="claim",
                    cls="gold",
                    ready=False,
                    error="VolumeSnapshotContent snapcontent-u is pre-provisioned "
                    "while expecting a dynamically provisioned one",
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ]
        },
        ["Warning SnapshotContentMismatch"],
        result=False,
    ),
    Case(
        "2-14 - (dynamic) noop",
        [
            CLS,
            *SRC,
            vsc(
                "snapcontent-u",
                "snap2-14",
                "u",
                handle="vol-pv",
                cls="gold",
                ready=True,
                created=CREATED_NS,
            ),
            vs(
                "snap2-14",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=True,
                created=CREATED,
                finalizers=FINS,
            ),
        ],
        "default/snap2-14",
        {
            "VolumeSnapshot": [
                vs(
                    "snap2-14",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    created=CREATED,
                    finalizers=FINS,
                )
            ]
        },
    ),
    Case(
        "3-2 - (static) ready snapshot bound to none-exist content",
        [
            CLS,
            vs(
                "snap3-2",
                "u",
                content="content3-2",
                cls="gold",
                bound="content3-2",
                ready=True,
                finalizers=FINS,
            ),
        ],
        "default/snap3-2",
        {
            "VolumeSnapshot": [
                vs(
                    "snap3-2",
                    "u",
                    content="content3-2",
                    cls="gold",
                    bound="content3-2",
                    ready=False,
                    finalizers=FINS,
                    error="VolumeSnapshotContent is missing",
                )
            ]
        },
        ["Warning SnapshotContentMissing"],
        result=True,
    ),
    Case(
        "3-4 - (static) ready snapshot misbound to VolumeSnapshotContent",
        [
            CLS,
            vsc("content3-4", "snap3-4", "x", snapshot_handle="sid", ready=True),
            vs(
                "snap3-4",
                "u",
                content="content3-4",
                cls="gold",
                bound="content3-4",
                ready=True,
                finalizers=FINS,
            ),
        ],
        "default/snap3-4",
        {
            "VolumeSnapshot": [
                vs(
                    "snap3-4",
                    "u",
                    content="content3-4",
                    cls="gold",
                    bound="content3-4",
                    ready=False,
                    finalizers=FINS,
                    error="VolumeSnapshotContent [content3-4] is bound to a different snapshot",
                )
            ]
        },
        ["Warning SnapshotContentMisbound"],
        result=False,
    ),
    Case(
        "3-6 - (dynamic) ready snapshot misbound to VolumeSnapshotContent",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "snap3-6", "x", handle="vol-pv", ready=True),
            vs(
                "snap3-6",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=True,
                finalizers=FINS,
            ),
        ],
        "default/snap3-6",
        {
            "VolumeSnapshot": [
                vs(
                    "snap3-6",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=False,
                    finalizers=FINS,
                    error="VolumeSnapshotContent [snapcontent-u] is bound to a different snapshot",
                )
            ]
        },
        ["Warning SnapshotContentMisbound"],
        result=False,
    ),
    Case(
        "4-1 - (dynamic) content bound to snapshot, snapshot status missing and rebuilt",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "snap4-1", "u", handle="vol-pv", ready=True, size=1),
            vs("snap4-1", "u", claim="claim", cls="gold", finalizers=[VS_AS_SOURCE_FINALIZER]),
        ],
        "default/snap4-1",
        {
            "VolumeSnapshot": [
                vs(
                    "snap4-1",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    size="1",
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ]
        },
        ["Normal SnapshotReady"],
    ),
    Case(
        "6-1 - update snapshot error status",
        [
            CLS,
            *SRC,
            vsc(
                "snapcontent-u",
                "snap6-1",
                "u",
                handle="vol-pv",
                ready=False,
                error="Mock content error",
            ),
            vs(
                "snap6-1",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=False,
                finalizers=FINS,
            ),
        ],
        "default/snap6-1",
        {
            "VolumeSnapshot": [
                vs(
                    "snap6-1",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=False,
                    error="Mock content error",
                    finalizers=FINS,
                )
            ]
        },
    ),
    Case(
        "6-2 - clear out snapshot error status",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "snap6-2", "u", handle="vol-pv", ready=True),
            vs(
                "snap6-2",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=False,
                error="Mock content error",
                finalizers=FINS,
            ),
        ],
        "default/snap6-2",
        {
            "VolumeSnapshot": [
                vs(
                    "snap6-2",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    finalizers=FINS,
                )
            ]
        },
        ["Normal SnapshotReady"],
    ),
    Case(
        "9-1 - snapshot class not found after snapshot is ready",
        [
            *SRC,
            vsc(
                "snapcontent-u",
                "snap9-1",
                "u",
                handle="vol-pv",
                cls="gone",
                ready=True,
                created=CREATED_NS,
            ),
            vs(
                "snap9-1",
                "u",
                claim="claim",
                cls="gone",
                bound="snapcontent-u",
                ready=True,
                created=CREATED,
                finalizers=FINS,
            ),
        ],
        "default/snap9-1",
        {
            "VolumeSnapshot": [
                vs(
                    "snap9-1",
                    "u",
                    claim="claim",
                    cls="gone",
                    bound="snapcontent-u",
                    ready=True,
                    created=CREATED,
                    finalizers=FINS,
                )
            ]
        },
    ),
    Case(
        "bound finalizer is added once a Delete-policy content is bound",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "s", "u", handle="vol-pv", ready=True),
            vs(
                "s",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=True,
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/s",
        {
            "VolumeSnapshot": [
                vs(
                    "s",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    finalizers=FINS,
                )
            ]
        },
    ),
    Case(
        "no bound finalizer for a Retain content",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "s", "u", handle="vol-pv", ready=True, policy="Retain"),
            vs("s", "u", claim="claim", cls="gold", bound="snapcontent-u", ready=True),
        ],
        "default/s",
        {
            "VolumeSnapshot": [
                vs(
                    "s",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    finalizers=[VS_AS_SOURCE_FINALIZER],
                )
            ]
        },
    ),
    Case(
        "restore size reported late reaches a ready snapshot (Go stops mirroring once ready)",
        [
            CLS,
            *SRC,
            vsc("snapcontent-u", "s", "u", handle="vol-pv", ready=True, size=2048),
            vs(
                "s",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=True,
                size="0",
                finalizers=FINS,
            ),
        ],
        "default/s",
        {
            "VolumeSnapshot": [
                vs(
                    "s",
                    "u",
                    claim="claim",
                    cls="gold",
                    bound="snapcontent-u",
                    ready=True,
                    size="2Ki",
                    finalizers=FINS,
                )
            ]
        },
    ),
    Case(
        "validation: both sources set",
        [CLS, vs("s", "u", claim="claim", content="c", cls="gold")],
        "default/s",
        {
            "VolumeSnapshot": [
                vs(
                    "s",
                    "u",
                    claim="claim",
                    content="c",
                    cls="gold",
                    ready=False,
                    error="Exactly one of PersistentVolumeClaimName and "
                    "VolumeSnapshotContentName should be specified",
                )
            ]
        },
        ["Warning SnapshotValidationError"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sync_snapshot(case: Case) -> None:
    await check(case, decide_snapshot, "VolumeSnapshot")
