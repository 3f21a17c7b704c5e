"""PVC source protection decided per claim (Go's finalizer tests 1-x, and #1305)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    PVC_FINALIZER,
    VS_AS_SOURCE_FINALIZER,
)
from csi_sidecars.snapshotcontroller.protection import decide_claim
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.cases import Case, check
from tests.unit.snapshotcontroller.fixtures import pv, pvc, vs, vsc, vsclass
from tests.unit.snapshotcontroller.reactor import Injection, sync, world

PROTECTED = pvc("claim", pv="pv", finalizers=[PVC_FINALIZER])
FREE = pvc("claim", pv="pv", finalizers=[])
READY = [
    vsc("snapcontent-u1", "s1", "u1", handle="h", ready=True),
    vs("s1", "u1", claim="claim", bound="snapcontent-u1", ready=True),
]

CASES = [
    Case(
        "1-3 - successful remove PVC finalizer",
        [PROTECTED, *READY],
        "default/claim",
        {"PersistentVolumeClaim": [FREE]},
    ),
    Case(
        "1-4 - won't remove PVC finalizer; already removed",
        [FREE, *READY],
        "default/claim",
        {"PersistentVolumeClaim": [FREE]},
    ),
    Case(
        "1-5 - won't remove PVC finalizer; PVC in-use",
        [
            PROTECTED,
            vsc("snapcontent-u2", "s2", "u2", handle="h", ready=False),
            vs("s2", "u2", claim="claim", bound="snapcontent-u2", ready=False),
        ],
        "default/claim",
        {"PersistentVolumeClaim": [PROTECTED]},
    ),
    Case(
        "#1305 - removed although another snapshot of the claim will never become ready",
        [
            PROTECTED,
            *READY,
            vs(
                "broken",
                "u3",
                claim="claim",
                cls="missing",
                ready=False,
                error="Failed to get snapshot class with error ... not found",
            ),
        ],
        "default/claim",
        {"PersistentVolumeClaim": [FREE]},
    ),
    Case(
        "kept for a new snapshot that has no content yet and no error",
        [PROTECTED, *READY, vs("new", "u4", claim="claim")],
        "default/claim",
        {"PersistentVolumeClaim": [PROTECTED]},
    ),
    Case(
        "kept while a deleted snapshot's content is still being created",
        [
            PROTECTED,
            vsc(
                "snapcontent-u5",
                "s5",
                "u5",
                handle="h",
                deleting=True,
                annotations={ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"},
            ),
            vs(
                "s5",
                "u5",
                claim="claim",
                bound="snapcontent-u5",
                deleting=True,
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ],
        "default/claim",
        {"PersistentVolumeClaim": [PROTECTED]},
    ),
    Case(
        "removed when the claim's last snapshot is gone (Go never looks again)",
        [PROTECTED],
        "default/claim",
        {"PersistentVolumeClaim": [FREE]},
    ),
    Case(
        "a failed PUT is an ErrorPVCFinalizer event and a retry",
        [PROTECTED, *READY],
        "default/claim",
        {"PersistentVolumeClaim": [PROTECTED]},
        ["Warning ErrorPVCFinalizer"],
        result=False,
        errors=[Injection("replace", "PersistentVolumeClaim")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_claim_protection(case: Case) -> None:
    await check(case, decide_claim, "PersistentVolumeClaim")


async def test_a_conflicting_put_is_decided_again_without_an_event() -> None:
    w = await world(
        [PROTECTED, *READY],
        errors=[
            Injection(
                "replace",
                "PersistentVolumeClaim",
                status=409,
                reason="Conflict",
                message="the object has been modified",
            )
        ],
    )
    assert await sync(w, decide_claim, "PersistentVolumeClaim", "default/claim") is True
    assert w.events.seen == []
    claim = w.get("PersistentVolumeClaim", "claim", "default")
    assert claim is not None and claim["metadata"]["finalizers"] == []


async def test_in_flight_snapshot_puts_a_removed_finalizer_back() -> None:
    """A removal decided from a stale cache is undone by the snapshot's next sync."""
    w = await world(
        [
            vsclass("gold"),
            FREE,
            pv("pv", "claim"),
            vsc("snapcontent-u", "s", "u", handle="vol-pv", cls="gold"),
            vs(
                "s",
                "u",
                claim="claim",
                cls="gold",
                bound="snapcontent-u",
                ready=False,
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
        ]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/s") is True
    claim = w.get("PersistentVolumeClaim", "claim", "default")
    assert claim is not None and claim["metadata"]["finalizers"] == [PVC_FINALIZER]
