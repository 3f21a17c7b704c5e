"""Group snapshots: one VolumeGroupSnapshot sync per row (Go's groupsnapshot_*_test, numbered
as there where a row matches)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
    VGS_BOUND_FINALIZER,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION,
    VS_IN_GROUP_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller.content import decide_group_content
from csi_sidecars.snapshotcontroller.group import decide_group_snapshot
from csi_sidecars.snapshotcontroller.groupcreate import MEMBER_BATCH
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.cases import Case, check
from tests.unit.snapshotcontroller.fixtures import (
    owner,
    pv,
    pvc,
    vgs,
    vgsc,
    vgsclass,
    vs,
)
from tests.unit.snapshotcontroller.reactor import objects, reasons, sync, world

GOLD = vgsclass("gold")
APP = {"matchLabels": {"app": "db"}}
CLAIMS = [
    pvc("c1", pv="pv1", labels={"app": "db"}),
    pvc("c2", pv="pv2", labels={"app": "db", "tier": "cache"}),
    pvc("other", pv="pv3", labels={"app": "web"}),
    pv("pv1", "c1", handle="h1"),
    pv("pv2", "c2", handle="h2"),
    pv("pv3", "other", handle="h3"),
]
MARK = {ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: "yes"}


def dyn_content(uid: str = "gu", **kw: object) -> dict:
    args: dict = {"handles": ["h1", "h2"], "cls": "gold", "full_ref": True}
    args.update(kw)
    return vgsc(f"groupsnapcontent-{uid}", "g", uid, **args)


CASES = [
    Case(
        "1-1 - successful dynamically-provisioned create group snapshot with group snapshot "
        "class gold",
        [GOLD, *CLAIMS, vgs("g", "gu", selector=APP, cls="gold")],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [dyn_content()],
            "VolumeGroupSnapshot": [
                vgs("g", "gu", selector=APP, cls="gold", bound="groupsnapcontent-gu", ready=False)
            ],
        },
        ["Normal CreatingGroupSnapshot"],
    ),
    Case(
        "1-1b - matchExpressions narrow the selection (Go ignores them)",
        [
            GOLD,
            *CLAIMS,
            vgs(
                "g",
                "gu",
                cls="gold",
                selector={
                    "matchLabels": {"app": "db"},
                    "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
                },
            ),
        ],
        "default/g",
        {"VolumeGroupSnapshotContent": [dyn_content(handles=["h1"])]},
        ["Normal CreatingGroupSnapshot"],
    ),
    Case(
        "1-2 - unsuccessful create group snapshot with no existent group snapshot class",
        [*CLAIMS, vgs("g", "gu", selector=APP, cls="missing")],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [],
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    cls="missing",
                    error="failed to get group snapshot class with error "
                    "volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "
                    '"missing" not found',
                )
            ],
        },
        ["Warning GetGroupSnapshotClassFailed"],
        result=False,
    ),
    Case(
        "1-3 - fail to create group snapshot without group snapshot class",
        [*CLAIMS, vgs("g", "gu", selector=APP)],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    error="Failed to set default group snapshot class with "
                    "error cannot find default group snapshot class",
                )
            ]
        },
        ["Warning SetDefaultGroupSnapshotClassFailed"],
        result=False,
    ),
    Case(
        "1-4 - fail to create group snapshot with no existing volumes",
        [GOLD, vgs("g", "gu", selector={"matchLabels": {"app": "none"}}, cls="gold")],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector={"matchLabels": {"app": "none"}},
                    cls="gold",
                    ready=False,
                    error="failed to create group snapshot content with error "
                    "failed to get input parameters to create group snapshot g: "
                    '"label selector app=none for group snapshot not applied to '
                    'any PVC"',
                )
            ]
        },
        ["Warning GroupSnapshotContentCreationFailed"],
        result=False,
    ),
    Case(
        "1-5 - fail to create group snapshot with volumes that are not bound",
        [
            GOLD,
            pvc("c1", phase="Pending", labels={"app": "db"}),
            vgs("g", "gu", selector=APP, cls="gold"),
        ],
        "default/g",
        {"VolumeGroupSnapshotContent": []},
        ["Warning GroupSnapshotContentCreationFailed"],
        result=False,
    ),
    Case(
        "1-6 - fail to create group snapshot with volumes that are not created by a CSI driver",
        [
            GOLD,
            pvc("c1", pv="pv1", labels={"app": "db"}),
            pv("pv1", "c1", driver=None),
            vgs("g", "gu", selector=APP, cls="gold"),
        ],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [],
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    cls="gold",
                    ready=False,
                    error="failed to create group snapshot content with error "
                    "cannot snapshot a non-CSI volume for group snapshot "
                    "default/g: pv1",
                )
            ],
        },
        ["Warning CreateGroupSnapshotContentFailed", "Warning GroupSnapshotContentCreationFailed"],
        result=False,
    ),
    Case(
        "1-7 - fail to create group snapshot with volumes that are created by a different CSI "
        "driver",
        [
            GOLD,
            pvc("c1", pv="pv1", labels={"app": "db"}),
            pv("pv1", "c1", driver="other.csi"),
            vgs("g", "gu", selector=APP, cls="gold"),
        ],
        "default/g",
        {"VolumeGroupSnapshotContent": []},
        ["Warning CreateGroupSnapshotContentFailed", "Warning GroupSnapshotContentCreationFailed"],
        result=False,
    ),
    Case(
        "1-8 - successful pre-provisioned group snapshot",
        [
            GOLD,
            vgsc(
                "static",
                "g",
                None,
                static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s1"]},
                ready=True,
            ),
            vgs("g", "gu", content="static", cls="gold"),
        ],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [
                vgsc(
                    "static",
                    "g",
                    "gu",
                    cls="gold",
                    ready=True,
                    static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s1"]},
                )
            ],
            "VolumeGroupSnapshot": [
                vgs("g", "gu", content="static", cls="gold", bound="static", ready=True)
            ],
        },
        ["Normal GroupSnapshotReady"],
    ),
    Case(
        "1-9 - unsuccessful pre-provisioned group snapshot (no content)",
        [GOLD, vgs("g", "gu", content="static", cls="gold")],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    content="static",
                    cls="gold",
                    ready=False,
                    error="VolumeGroupSnapshotContent is missing",
                )
            ]
        },
        ["Warning GroupSnapshotContentMissing"],
        result=False,
    ),
    Case(
        "1-10 - unsuccessful pre-provisioned group snapshot (wrong back-ref)",
        [
            GOLD,
            vgsc(
                "static",
                "other",
                None,
                static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s1"]},
            ),
            vgs("g", "gu", content="static", cls="gold"),
        ],
        "default/g",
        {},
        ["Warning GroupSnapshotContentMisbound"],
        result=False,
    ),
    Case(
        "1-11 - mismatch between pre-provisioned group snapshot and dynamically provisioned "
        "group snapshot content",
        [
            GOLD,
            vgsc("static", "g", None, handles=["h1"]),
            vgs("g", "gu", content="static", cls="gold"),
        ],
        "default/g",
        {},
        ["Warning GroupSnapshotContentMismatch"],
        result=False,
    ),
    Case(
        "2-1 - group snapshot have been deleted, but no content was present - no op",
        [
            GOLD,
            vgs(
                "g", "gu", selector=APP, cls="gold", finalizers=[VGS_BOUND_FINALIZER], deleting=True
            ),
        ],
        "default/g",
        {"VolumeGroupSnapshot": []},
    ),
    Case(
        "2-3 - pre-provisioned group snapshot have been deleted, retention policy set to retain "
        "- set 'being deleted' annotation",
        [
            GOLD,
            vgsc(
                "static",
                "g",
                "gu",
                policy="Retain",
                static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s"]},
            ),
            vgs(
                "g",
                "gu",
                content="static",
                cls="gold",
                bound="static",
                ready=True,
                finalizers=[VGS_BOUND_FINALIZER],
                deleting=True,
            ),
        ],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [
                vgsc(
                    "static",
                    "g",
                    "gu",
                    policy="Retain",
                    annotations=MARK,
                    static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s"]},
                )
            ],
            "VolumeGroupSnapshot": [],
        },
    ),
    Case(
        "2-4 - pre-provisioned snapshot have been deleted, retention policy set to delete - "
        "volume snapshot content will be deleted",
        [
            GOLD,
            vgsc(
                "static",
                "g",
                "gu",
                static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s"]},
            ),
            vgs(
                "g",
                "gu",
                content="static",
                cls="gold",
                bound="static",
                ready=True,
                finalizers=[VGS_BOUND_FINALIZER],
                deleting=True,
            ),
        ],
        "default/g",
        {
            "VolumeGroupSnapshotContent": [
                vgsc(
                    "static",
                    "g",
                    "gu",
                    annotations=MARK,
                    deleting=True,
                    static={"volumeGroupSnapshotHandle": "gh", "volumeSnapshotHandles": ["s"]},
                )
            ],
            # the bound finalizer stays until the sidecar has deleted the content
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    content="static",
                    cls="gold",
                    bound="static",
                    ready=True,
                    finalizers=[VGS_BOUND_FINALIZER],
                    deleting=True,
                )
            ],
        },
    ),
    Case(
        "deleted before the content was recorded: found by its fixed name (Go's fallback is "
        "dead code)",
        [
            GOLD,
            *CLAIMS,
            dyn_content(),
            vgs(
                "g", "gu", selector=APP, cls="gold", finalizers=[VGS_BOUND_FINALIZER], deleting=True
            ),
        ],
        "default/g",
        {"VolumeGroupSnapshotContent": [dyn_content(annotations=MARK, deleting=True)]},
    ),
    Case(
        "members are deleted with the group; one being restored from blocks it",
        [
            GOLD,
            *CLAIMS,
            dyn_content(policy="Retain"),
            vs(
                "m1",
                "mu1",
                claim="c1",
                owners=[owner("g", "gu")],
                finalizers=[VS_IN_GROUP_FINALIZER],
            ),
            pvc("restore", phase="Pending", restore_from="m1"),
            vgs(
                "g",
                "gu",
                selector=APP,
                cls="gold",
                bound="groupsnapcontent-gu",
                ready=True,
                finalizers=[VGS_BOUND_FINALIZER],
                deleting=True,
            ),
        ],
        "default/g",
        {"VolumeGroupSnapshotContent": [dyn_content(policy="Retain")]},
        ["Warning SnapshotDeletePending"],
        result=False,
    ),
    Case(
        "3-1 - finalizer is added on a bound group snapshot",
        [
            GOLD,
            *CLAIMS,
            dyn_content(ready=False),
            vgs("g", "gu", selector=APP, cls="gold", bound="groupsnapcontent-gu", ready=False),
        ],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    cls="gold",
                    bound="groupsnapcontent-gu",
                    ready=False,
                    finalizers=[VGS_BOUND_FINALIZER],
                )
            ]
        },
    ),
    Case(
        "6-2 - ready group snapshot with missing content",
        [
            GOLD,
            vgs(
                "g",
                "gu",
                selector=APP,
                cls="gold",
                bound="groupsnapcontent-gu",
                ready=True,
                finalizers=[VGS_BOUND_FINALIZER],
            ),
        ],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    cls="gold",
                    bound="groupsnapcontent-gu",
                    ready=False,
                    finalizers=[VGS_BOUND_FINALIZER],
                    error="VolumeGroupSnapshotContent is missing",
                )
            ]
        },
        ["Warning GroupSnapshotContentMissing"],
    ),
    Case(
        "5-1 - default group snapshot class for a dynamic group snapshot",
        [vgsclass("default", default=True), *CLAIMS, vgs("g", "gu", selector=APP)],
        "default/g",
        {"VolumeGroupSnapshotContent": [dyn_content(cls="default")]},
        ["Normal CreatingGroupSnapshot"],
    ),
    Case(
        "5-3 - SetDefaultGroupSnapshotClass fails when multiple default classes exist",
        [
            vgsclass("a", default=True),
            vgsclass("b", default=True),
            *CLAIMS,
            vgs("g", "gu", selector=APP),
        ],
        "default/g",
        {
            "VolumeGroupSnapshot": [
                vgs(
                    "g",
                    "gu",
                    selector=APP,
                    error="Failed to set default group snapshot class with "
                    "error 2 default snapshot classes were found",
                )
            ]
        },
        ["Warning SetDefaultGroupSnapshotClassFailed"],
        result=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sync_group_snapshot(case: Case) -> None:
    await check(case, decide_group_snapshot, "VolumeGroupSnapshot")


def infos(n: int) -> list[dict]:
    return [
        {
            "volumeHandle": f"h{i}",
            "snapshotHandle": f"snap-h{i}",
            "readyToUse": True,
            "creationTime": 1767225600000000000,
            "restoreSize": 1024,
        }
        for i in range(1, n + 1)
    ]


async def test_9_1_sync_group_snapshot_creates_individual_snapshots_when_content_is_ready() -> None:
    content = dyn_content(ready=True, group_handle="gh", infos=infos(2))
    w = await world(
        [
            GOLD,
            *CLAIMS,
            content,
            vgs(
                "g",
                "gu",
                selector=APP,
                cls="gold",
                bound="groupsnapcontent-gu",
                ready=False,
                finalizers=[VGS_BOUND_FINALIZER],
            ),
        ]
    )
    assert await sync(w, decide_group_snapshot, "VolumeGroupSnapshot", "default/g") is True
    members = {o["metadata"]["name"]: o for o in objects(w, "VolumeSnapshot")}
    contents = {o["metadata"]["name"]: o for o in objects(w, "VolumeSnapshotContent")}
    for i, claim in ((1, "c1"), (2, "c2")):
        vs_name = names.member_snapshot_name("gu", f"h{i}")
        vsc_name = names.member_content_name("gu", f"h{i}")
        member = members[vs_name]
        assert member["metadata"]["ownerReferences"] == [owner("g", "gu")]
        assert member["metadata"]["finalizers"] == [VS_IN_GROUP_FINALIZER]
        assert member["spec"] == {"source": {"persistentVolumeClaimName": claim}}
        assert member["status"] == {"boundVolumeSnapshotContentName": vsc_name}
        mc = contents[vsc_name]
        assert mc["metadata"]["annotations"] == {VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: "gh"}
        assert mc["metadata"]["finalizers"] == [VSC_FINALIZER]
        assert mc["spec"]["volumeSnapshotRef"] == {
            "kind": "VolumeSnapshot",
            "name": vs_name,
            "namespace": "default",
            "uid": member["metadata"]["uid"],
        }
        assert mc["spec"]["source"] == {"volumeHandle": f"h{i}"}
        assert mc["spec"]["sourceVolumeMode"] == "Filesystem"
        assert mc["status"] == {
            "snapshotHandle": f"snap-h{i}",
            "volumeGroupSnapshotHandle": "gh",
            "readyToUse": True,
            "creationTime": 1767225600000000000,
            "restoreSize": 1024,
        }
    group = w.get("VolumeGroupSnapshot", "g", "default")
    assert group is not None and group["status"]["readyToUse"] is True
    assert reasons(w) == ["Normal GroupSnapshotReady"]
    # a second sync finds every member complete: no API write at all
    w.kube.actions.clear()
    assert await sync(w, decide_group_snapshot, "VolumeGroupSnapshot", "default/g") is True
    assert [a.verb for a in w.kube.actions] == []


async def test_many_members_are_created_in_batches_without_back_off() -> None:
    n = MEMBER_BATCH + 3
    handles = [f"h{i}" for i in range(1, n + 1)]
    claims = []
    for i in range(1, n + 1):
        claims += [
            pvc(f"c{i}", pv=f"pv{i}", labels={"app": "db"}),
            pv(f"pv{i}", f"c{i}", handle=f"h{i}"),
        ]
    w = await world(
        [
            GOLD,
            *claims,
            dyn_content(handles=handles, ready=True, group_handle="gh", infos=infos(n)),
            vgs(
                "g",
                "gu",
                selector=APP,
                cls="gold",
                bound="groupsnapcontent-gu",
                finalizers=[VGS_BOUND_FINALIZER],
            ),
        ]
    )
    first = await sync(w, decide_group_snapshot, "VolumeGroupSnapshot", "default/g")
    assert first is not True and getattr(first, "seconds", None) == 0.0
    assert len(objects(w, "VolumeSnapshot")) == MEMBER_BATCH
    assert await sync(w, decide_group_snapshot, "VolumeGroupSnapshot", "default/g") is True
    assert len(objects(w, "VolumeSnapshot")) == n
    assert all(o["status"]["boundVolumeSnapshotContentName"] for o in objects(w, "VolumeSnapshot"))


async def test_member_status_gets_the_group_name() -> None:
    """A member's VolumeSnapshot learns its group from the group content's handle."""
    content = dyn_content(ready=True, group_handle="gh", infos=infos(1), handles=["h1"])
    w = await world(
        [
            GOLD,
            *CLAIMS,
            content,
            vgs(
                "g",
                "gu",
                selector=APP,
                cls="gold",
                bound="groupsnapcontent-gu",
                finalizers=[VGS_BOUND_FINALIZER],
            ),
        ]
    )
    await sync(w, decide_group_snapshot, "VolumeGroupSnapshot", "default/g")
    name = names.member_snapshot_name("gu", "h1")
    assert await sync(w, decide_snapshot, "VolumeSnapshot", f"default/{name}") is True
    member = w.get("VolumeSnapshot", name, "default")
    assert member is not None
    assert member["status"]["volumeGroupSnapshotName"] == "g"
    assert member["status"]["readyToUse"] is True


GROUP_CONTENT_CASES = [
    Case(
        "7-1 - sync group snapshot content adds finalizer to content",
        [dyn_content(finalizers=[]), vgs("g", "gu", selector=APP, cls="gold")],
        "groupsnapcontent-gu",
        {"VolumeGroupSnapshotContent": [dyn_content(finalizers=[VGSC_FINALIZER])]},
    ),
    Case(
        "group orphan-1 - a dynamic group content whose group snapshot was deleted before it "
        "was bound is deleted (the sidecar deletes the backend group)",
        [dyn_content()],
        "groupsnapcontent-gu",
        {"VolumeGroupSnapshotContent": [dyn_content(annotations=MARK, deleting=True)]},
    ),
    Case(
        "group orphan-2 - the group snapshot was re-created with the same name: the old "
        "content goes",
        [dyn_content(), vgs("g", "gv", selector=APP, cls="gold")],
        "groupsnapcontent-gu",
        {"VolumeGroupSnapshotContent": [dyn_content(annotations=MARK, deleting=True)]},
    ),
    Case(
        "group orphan-3 - the cache has not seen the group snapshot yet: kept",
        [dyn_content(), vgs("g", "gu", selector=APP, cls="gold")],
        "groupsnapcontent-gu",
        {"VolumeGroupSnapshotContent": [dyn_content()]},
        unseen=[("VolumeGroupSnapshot", "g")],
    ),
    Case(
        "group orphan-4 - policy Retain, or not named after the group's uid: kept",
        [dyn_content(policy="Retain"), vgsc("x", "g", "gu", handles=["h1"], cls="gold")],
        "groupsnapcontent-gu",
        {
            "VolumeGroupSnapshotContent": [
                dyn_content(policy="Retain"),
                vgsc("x", "g", "gu", handles=["h1"], cls="gold"),
            ]
        },
    ),
    Case(
        "group orphan-5 - a pre-provisioned group content is never deleted for a gone group",
        [
            vgsc(
                "groupsnapcontent-gu",
                "g",
                "gu",
                static={"volumeGroupSnapshotHandle": "x", "volumeSnapshotHandles": ["a"]},
            )
        ],
        "groupsnapcontent-gu",
        {
            "VolumeGroupSnapshotContent": [
                vgsc(
                    "groupsnapcontent-gu",
                    "g",
                    "gu",
                    static={"volumeGroupSnapshotHandle": "x", "volumeSnapshotHandles": ["a"]},
                )
            ]
        },
    ),
    Case(
        "group content validation: neither source",
        [vgsc("x", "g", "gu")],
        "x",
        {},
        ["Warning GroupContentValidationError"],
    ),
]


@pytest.mark.parametrize("case", GROUP_CONTENT_CASES, ids=str)
async def test_sync_group_content(case: Case) -> None:
    await check(case, decide_group_content, "VolumeGroupSnapshotContent")


async def test_malformed_selector_is_an_error_on_the_group_not_a_crash() -> None:
    bad = {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["db"]}]}
    await check(
        Case(
            "malformed selector",
            [GOLD, *CLAIMS, vgs("g", "gu", selector=bad, cls="gold")],
            "default/g",
            {"VolumeGroupSnapshotContent": []},
            ["Warning GroupSnapshotContentCreationFailed"],
            result=False,
        ),
        decide_group_snapshot,
        "VolumeGroupSnapshot",
    )
