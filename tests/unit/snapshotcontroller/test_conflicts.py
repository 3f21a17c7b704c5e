"""A conflict is retried inside the sync and never shown to users (external-snapshotter #748).

Go turns "the object has been modified" into ``status.error`` and Warning events
(``SnapshotFinalizerError``, ``SnapshotStatusUpdateFailed``); backup tools then fail a snapshot
that was fine. Here each row injects one conflict (409, or the 422 of a JSON patch whose
``test`` failed) and checks the sync still finishes, with no Warning and no status error.
"""

from __future__ import annotations

import pytest

from csi_sidecars.kube.patch import JSON_PATCH_REJECTED
from csi_sidecars.kube.snapshots import PVC_FINALIZER, VS_AS_SOURCE_FINALIZER
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.fixtures import pv, pvc, vs, vsc, vsclass
from tests.unit.snapshotcontroller.reactor import Injection, objects, reasons, sync, world

CONFLICT = Injection(
    "patch",
    "VolumeSnapshot",
    status=409,
    reason="Conflict",
    message='Operation cannot be fulfilled on volumesnapshots "s": the object '
    "has been modified; please apply your changes to the latest version",
)
STALE = Injection(
    "patch", "VolumeSnapshot", status=422, reason="Invalid", message=JSON_PATCH_REJECTED
)


@pytest.mark.parametrize("error", [CONFLICT, STALE], ids=["409", "422-test-failed"])
async def test_conflict_on_the_finalizer_patch(error: Injection) -> None:
    w = await world(
        [vsclass("gold"), vs("s", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")],
        errors=[error],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/s") is True
    assert reasons(w) == ["Normal CreatingSnapshot"]
    snap = w.get("VolumeSnapshot", "s", "default")
    assert snap is not None and "error" not in snap["status"]
    assert snap["metadata"]["finalizers"] == [VS_AS_SOURCE_FINALIZER]
    assert len(objects(w, "VolumeSnapshotContent")) == 1


async def test_conflict_on_the_status_patch() -> None:
    w = await world(
        [
            vsclass("gold"),
            pvc("c", pv="p", finalizers=[PVC_FINALIZER]),
            pv("p", "c"),
            vsc("snapcontent-u", "s", "u", handle="vol-p", ready=True),
            vs("s", "u", claim="c", cls="gold", finalizers=[VS_AS_SOURCE_FINALIZER]),
        ],
        errors=[CONFLICT],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/s") is True
    assert reasons(w) == ["Normal SnapshotReady"]
    snap = w.get("VolumeSnapshot", "s", "default")
    assert snap is not None and snap["status"]["readyToUse"] is True
    assert "error" not in snap["status"]


async def test_endless_conflicts_back_off_silently() -> None:
    w = await world(
        [vsclass("gold"), vs("s", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")],
        errors=[Injection(**{**CONFLICT.__dict__, "times": 10})],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/s") is False
    assert w.events.seen == []
    snap = w.get("VolumeSnapshot", "s", "default")
    assert snap is not None and "status" not in snap


async def test_other_errors_are_still_reported() -> None:
    w = await world(
        [vsclass("gold"), vs("s", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")],
        errors=[Injection("patch", "VolumeSnapshot", message="boom")],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/s") is False
    assert reasons(w) == ["Warning SnapshotFinalizerError"]
    assert w.events.seen[0][2] == (
        "Failed to check and update snapshot: snapshot controller failed to update default/s on "
        "API server: boom"
    )
