"""Deleting snapshots (Delete and Retain, restores, groups): one sync per row (Go's
snapshot_delete_test; the fake API server keeps objects with finalizers Terminating)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    PVC_FINALIZER,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
    VS_IN_GROUP_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.cases import Case, check
from tests.unit.snapshotcontroller.fixtures import owner, pv, pvc, ref, vs, vsc, vsclass
from tests.unit.snapshotcontroller.reactor import Injection, sync, world

FINS = [VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]
CLS = vsclass("gold")
BEING_DELETED = {ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}
SRC = [pvc("claim", pv="pv", finalizers=[PVC_FINALIZER]), pv("pv", "claim")]


def dyn(uid: str = "u", policy: str = "Delete", **kw: object) -> dict:
    args: dict = {"handle": "vol-pv", "cls": "gold", "policy": policy, "ready": True}
    args.update(kw)
    return vsc(f"snapcontent-{uid}", "snap", uid, **args)


def deleting_vs(**kw: object) -> dict:
    args: dict = {
        "claim": "claim",
        "cls": "gold",
        "bound": "snapcontent-u",
        "ready": True,
        "finalizers": FINS,
        "deleting": True,
    }
    args.update(kw)
    return vs("snap", "u", **args)


CASES = [
    Case(
        "3-1 - (dynamic) content will be deleted if snapshot deletion timestamp is set",
        [CLS, *SRC, dyn(), deleting_vs()],
        "default/snap",
        {
            "VolumeSnapshotContent": [dyn(annotations=BEING_DELETED, deleting=True)],
            # the finalizers stay until the sidecar has deleted the content (Go removes
            # as-source now and bound later: one write of the snapshot more)
            "VolumeSnapshot": [deleting_vs()],
        },
    ),
    Case(
        "3-1 follow-up - the content is gone: the snapshot's finalizers go in one patch",
        [CLS, *SRC, deleting_vs()],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
    Case(
        "3-1 follow-up (Go's intermediate state) - only the bound finalizer left: it goes",
        [CLS, *SRC, deleting_vs(finalizers=[VS_BOUND_FINALIZER])],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
    Case(
        "3-1a - (dynamic) snapshot deletion returns error when a PVC is still restoring from "
        "the snapshot",
        [CLS, *SRC, dyn(), deleting_vs(), pvc("restored", phase="Pending", restore_from="snap")],
        "default/snap",
        {"VolumeSnapshotContent": [dyn()], "VolumeSnapshot": [deleting_vs()]},
        ["Warning SnapshotDeletePending"],
        result=False,
        messages=["Snapshot is being used to restore a PVC"],
    ),
    Case(
        "3-2 - (dynamic) content will not be deleted if deletion API call fails",
        [CLS, *SRC, dyn(), deleting_vs()],
        "default/snap",
        {
            "VolumeSnapshotContent": [dyn(annotations=BEING_DELETED)],
            "VolumeSnapshot": [deleting_vs()],
        },
        ["Warning SnapshotContentObjectDeleteError"],
        result=False,
        errors=[Injection("delete", "VolumeSnapshotContent", message="mock delete error")],
        messages=["Failed to delete snapshot content API object"],
    ),
    Case(
        "3-3 - (dynamic) content will not be deleted if retainPolicy is set, snapshot should "
        "have its finalizer removed",
        [CLS, *SRC, dyn(policy="Retain"), deleting_vs()],
        "default/snap",
        {
            "VolumeSnapshotContent": [dyn(policy="Retain", annotations=BEING_DELETED)],
            "VolumeSnapshot": [],
        },
    ),
    Case(
        "3-4 - (dynamic) snapshot should have its finalizer removed if no content has been found",
        [CLS, *SRC, deleting_vs(bound=None, ready=False)],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
    Case(
        "3-5 - (dynamic) snapshot should have its finalizer removed if a content is found but "
        "points to a different snapshot - uid mismatch",
        [CLS, *SRC, vsc("snapcontent-u", "snap", "x", handle="vol-pv"), deleting_vs()],
        "default/snap",
        {
            "VolumeSnapshotContent": [vsc("snapcontent-u", "snap", "x", handle="vol-pv")],
            "VolumeSnapshot": [],
        },
    ),
    Case(
        "3-7 - (static) content will be deleted if snapshot deletion timestamp is set",
        [
            CLS,
            vsc("content-3-7", "snap", "u", snapshot_handle="sid"),
            deleting_vs(claim=None, content="content-3-7", bound="content-3-7"),
        ],
        "default/snap",
        {
            "VolumeSnapshotContent": [
                vsc(
                    "content-3-7",
                    "snap",
                    "u",
                    snapshot_handle="sid",
                    annotations=BEING_DELETED,
                    deleting=True,
                )
            ],
            "VolumeSnapshot": [deleting_vs(claim=None, content="content-3-7", bound="content-3-7")],
        },
    ),
    Case(
        "3-9 - (static) content will not be deleted if retainPolicy is set, snapshot should "
        "have its finalizer removed",
        [
            CLS,
            vsc("content-3-9", "snap", "u", snapshot_handle="sid", policy="Retain"),
            deleting_vs(claim=None, content="content-3-9", bound="content-3-9"),
        ],
        "default/snap",
        {
            "VolumeSnapshotContent": [
                vsc(
                    "content-3-9",
                    "snap",
                    "u",
                    snapshot_handle="sid",
                    policy="Retain",
                    annotations=BEING_DELETED,
                )
            ],
            "VolumeSnapshot": [],
        },
    ),
    Case(
        "3-10 - (static) snapshot should have its finalizer removed if no content has been found",
        [CLS, deleting_vs(claim=None, content="content-3-10", bound=None, ready=False)],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
    Case(
        "a content still being created is annotated and deleted, and stays until the sidecar "
        "lets it go (its being-created annotation is kept)",
        [
            CLS,
            *SRC,
            dyn(annotations={ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}, ready=None),
            deleting_vs(ready=False),
        ],
        "default/snap",
        {
            "VolumeSnapshotContent": [
                dyn(
                    annotations={ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes", **BEING_DELETED},
                    ready=None,
                    deleting=True,
                )
            ]
        },
    ),
    Case(
        "a Delete content created without its finalizer gets it before it is deleted (#1388)",
        [CLS, *SRC, dyn(finalizers=[]), deleting_vs()],
        "default/snap",
        {
            "VolumeSnapshotContent": [
                dyn(finalizers=[VSC_FINALIZER], annotations=BEING_DELETED, deleting=True)
            ]
        },
    ),
    Case(
        "a group member cannot be deleted while its group exists",
        [
            CLS,
            *SRC,
            dyn(),
            deleting_vs(group="g"),
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": "g", "namespace": "default", "uid": "gu"},
                "spec": {"source": {"selector": {}}},
            },
        ],
        "default/snap",
        {"VolumeSnapshotContent": [dyn()]},
        ["Warning SnapshotDeletePending"],
        result=False,
    ),
    Case(
        "a member whose group is gone loses the in-group finalizer too",
        [
            CLS,
            dyn(policy="Retain"),
            vs(
                "snap",
                "u",
                claim="claim",
                bound="snapcontent-u",
                ready=True,
                group="g",
                owners=[owner("g", "gu")],
                deleting=True,
                finalizers=[VS_IN_GROUP_FINALIZER, *FINS],
            ),
        ],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
    Case(
        "a member holding only the in-group finalizer is still finalized (Go ignores it)",
        [
            vs(
                "snap",
                "u",
                claim="",
                owners=[owner("g", "gu")],
                deleting=True,
                finalizers=[VS_IN_GROUP_FINALIZER],
            )
        ],
        "default/snap",
        {"VolumeSnapshot": []},
    ),
]


#: A snapshot deleted right after its creation: its first sync created the content a moment
#: ago, and the content's watch event has not reached the cache yet.
UNBOUND = deleting_vs(bound=None, ready=None, finalizers=[VS_AS_SOURCE_FINALIZER])
JUST_MADE = dyn(ready=None)

RACES = [
    Case(
        "deleted before bound: the content the cache has not seen yet is found (GET) and deleted",
        [CLS, *SRC, JUST_MADE, UNBOUND],
        "default/snap",
        {
            "VolumeSnapshotContent": [dyn(ready=None, annotations=BEING_DELETED, deleting=True)],
            # it waits for the content like a bound one
            "VolumeSnapshot": [UNBOUND],
        },
        unseen=[("VolumeSnapshotContent", "snapcontent-u")],
    ),
    Case(
        "deleted before bound, no content made: the snapshot goes",
        [CLS, *SRC, UNBOUND],
        "default/snap",
        {"VolumeSnapshotContent": [], "VolumeSnapshot": []},
    ),
    Case(
        "deleted before bound: a content of that name for another snapshot uid is left alone",
        [CLS, *SRC, dyn("u", snap_ref=ref("snap", "other")), UNBOUND],
        "default/snap",
        {
            "VolumeSnapshotContent": [dyn("u", snap_ref=ref("snap", "other"))],
            "VolumeSnapshot": [],
        },
        unseen=[("VolumeSnapshotContent", "snapcontent-u")],
    ),
]


@pytest.mark.parametrize("case", RACES, ids=str)
async def test_delete_right_after_create(case: Case) -> None:
    await check(case, decide_snapshot, "VolumeSnapshot")


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_delete_snapshot(case: Case) -> None:
    await check(case, decide_snapshot, "VolumeSnapshot")


async def test_throttled_annotation_patch_is_retried_and_never_lost_1446() -> None:
    """Go marks its cached content before the patch; when the patch fails (throttled), the retry
    sees the mark, skips the patch and deletes the content without it: the sidecar then never
    deletes the backend snapshot. Ours never deletes before the annotation is written."""
    w = await world(
        [CLS, *SRC, dyn(), deleting_vs()],
        errors=[
            Injection(
                "patch",
                "VolumeSnapshotContent",
                status=429,
                reason="TooManyRequests",
                message="throttled",
            )
        ],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    content = w.get("VolumeSnapshotContent", "snapcontent-u")
    assert content is not None and not content["metadata"].get("deletionTimestamp")
    assert w.kube.actions_of("delete") == []
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    content = w.get("VolumeSnapshotContent", "snapcontent-u")
    assert content is not None
    assert content["metadata"]["deletionTimestamp"]
    assert content["metadata"]["annotations"] == BEING_DELETED


async def test_annotation_patch_adds_one_key_and_keeps_the_sidecars() -> None:
    """Go replaces the whole annotation map from its copy; a being-created annotation the
    sidecar wrote meanwhile would be undone. Ours adds its key only."""
    w = await world([CLS, *SRC, dyn(annotations={"other": "x"}), deleting_vs()])
    await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap")
    (patch,) = [a for a in w.kube.actions_of("patch") if a.resource == "volumesnapshotcontents"]
    assert patch.body == [
        {
            "op": "add",
            "path": "/metadata/annotations/"
            "snapshot.storage.kubernetes.io~1volumesnapshot-being-deleted",
            "value": "yes",
        }
    ]
