"""Creating dynamic snapshots: one VolumeSnapshot sync, reactor style (Go's snapshot_create_test).

Case names follow the numbered scheme of the Go tests where a case matches.
"""

from __future__ import annotations

from typing import Any

from csi_sidecars.kube.snapshots import (
    ANN_DELETION_SECRET_REF_NAME,
    ANN_DELETION_SECRET_REF_NAMESPACE,
    PVC_FINALIZER,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller.plans import Settings
from csi_sidecars.snapshotcontroller.snapshot import decide_snapshot
from tests.unit.snapshotcontroller.fixtures import NOW, pv, pvc, ref, vs, vsc, vsclass
from tests.unit.snapshotcontroller.reactor import (
    Injection,
    assert_objects,
    objects,
    reasons,
    sync,
    world,
)

GOLD = vsclass("gold")
SECRET_CLASS = vsclass(
    "secret-class",
    params={
        "csi.storage.k8s.io/snapshotter-secret-name": "${volumesnapshot.name}-secret",
        "csi.storage.k8s.io/snapshotter-secret-namespace": "${volumesnapshot.namespace}",
    },
)


def content_for(name: str, uid: str, claim_pv: str, cls: str = "gold", **kw: object) -> dict:
    body = vsc(
        f"snapcontent-{uid}",
        name,
        uid,
        handle=f"vol-{claim_pv}",
        cls=cls,
        snap_ref=ref(name, uid, full=True),
        **kw,  # type: ignore[arg-type]
    )
    body["spec"]["sourceVolumeMode"] = "Filesystem"
    return body


async def test_6_1_successful_create_snapshot_with_snapshot_class_gold() -> None:
    w = await world(
        [
            GOLD,
            vs("snap6-1", "snapuid6-1", claim="claim6-1", cls="gold"),
            pvc("claim6-1", pv="pv6-1"),
            pv("pv6-1", "claim6-1"),
        ]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap6-1") is True
    assert_objects(w, "VolumeSnapshotContent", [content_for("snap6-1", "snapuid6-1", "pv6-1")])
    assert_objects(
        w,
        "VolumeSnapshot",
        [
            vs(
                "snap6-1",
                "snapuid6-1",
                claim="claim6-1",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
                bound="snapcontent-snapuid6-1",
                ready=False,
            )
        ],
    )
    claim = w.get("PersistentVolumeClaim", "claim6-1", "default")
    assert claim is not None and claim["metadata"]["finalizers"] == [PVC_FINALIZER]
    assert reasons(w) == ["Normal CreatingSnapshot"]
    assert w.events.seen[0][2] == (
        "Waiting for a snapshot default/snap6-1 to be created by the CSI driver."
    )


async def test_content_is_created_with_its_finalizer_so_deletion_waits_for_the_sidecar() -> None:
    """#1388, controller side: Go creates the content without its finalizer and adds it in a
    later content sync; deleted in between, the content vanishes while CreateSnapshot may run."""
    w = await world([GOLD, vs("s", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")])
    await sync(w, decide_snapshot, "VolumeSnapshot", "default/s")
    created = w.kube.actions_of("create")
    assert created[0].body["metadata"]["finalizers"] == [VSC_FINALIZER]
    await w.kube.delete(VOLUME_SNAPSHOT_CONTENTS, "snapcontent-u")
    left = w.get("VolumeSnapshotContent", "snapcontent-u")
    assert left is not None and left["metadata"].get("deletionTimestamp")


async def test_6_2_successful_create_snapshot_with_secret_class() -> None:
    w = await world(
        [
            SECRET_CLASS,
            vs("snap6-2", "snapuid6-2", claim="claim6-2", cls="secret-class"),
            pvc("claim6-2", pv="pv6-2"),
            pv("pv6-2", "claim6-2"),
        ]
    )
    await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap6-2")
    want = content_for(
        "snap6-2",
        "snapuid6-2",
        "pv6-2",
        cls="secret-class",
        annotations={
            ANN_DELETION_SECRET_REF_NAME: "snap6-2-secret",
            ANN_DELETION_SECRET_REF_NAMESPACE: "default",
        },
    )
    assert_objects(w, "VolumeSnapshotContent", [want])


async def test_without_prevent_volume_mode_conversion_no_source_mode() -> None:
    w = await world(
        [GOLD, vs("s", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")],
        settings=Settings(prevent_volume_mode_conversion=False),
    )
    await sync(w, decide_snapshot, "VolumeSnapshot", "default/s")
    (content,) = objects(w, "VolumeSnapshotContent")
    assert "sourceVolumeMode" not in content["spec"]


async def failed_create(
    initial: list[dict], message: str, reason: str = "SnapshotContentCreationFailed", **kw: object
) -> None:
    """The sync fails with ``reason``: no content, the claim untouched, the error on the VS."""
    w = await world(initial, **kw)  # type: ignore[arg-type]
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    assert objects(w, "VolumeSnapshotContent") == []
    for claim in objects(w, "PersistentVolumeClaim"):
        assert PVC_FINALIZER not in claim["metadata"].get("finalizers", [])
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None
    assert snap["status"]["error"] == {"message": message, "time": NOW}
    assert snap["status"]["readyToUse"] is False
    assert reasons(w)[-1] == f"Warning {reason}"


async def test_7_1_fail_to_create_snapshot_with_non_existing_snapshot_class() -> None:
    w = await world([vs("snap", "u", claim="c", cls="silver"), pvc("c", pv="p"), pv("p", "c")])
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None and snap["status"]["error"]["message"] == (
        "Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "
        '"silver" not found'
    )
    assert "readyToUse" not in snap["status"]  # GetSnapshotClassFailed does not touch readiness
    assert reasons(w) == ["Warning GetSnapshotClassFailed"]
    assert objects(w, "VolumeSnapshotContent") == []


async def test_7_3_fail_to_create_snapshot_without_snapshot_class() -> None:
    # no default class for the driver
    w = await world(
        [
            vsclass("other", driver="other.csi"),
            vs("snap", "u", claim="c"),
            pvc("c", pv="p"),
            pv("p", "c"),
        ]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None and snap["status"]["error"]["message"] == (
        "Failed to set default snapshot class with error cannot find default snapshot class"
    )
    assert reasons(w) == ["Warning SetDefaultSnapshotClassFailed"]


async def test_7_4_fail_create_snapshot_with_no_existing_claim() -> None:
    await failed_create(
        [GOLD, vs("snap", "u", claim="missing", cls="gold")],
        "Failed to create snapshot content with error failed to get input parameters to create "
        'snapshot snap: "failed to retrieve PVC missing from the lister: '
        '\\"persistentvolumeclaim \\\\\\"missing\\\\\\" not found\\""',
    )


async def test_7_5_fail_create_snapshot_with_no_existing_volume() -> None:
    await failed_create(
        [GOLD, vs("snap", "u", claim="c", cls="gold"), pvc("c", pv="nope")],
        "Failed to create snapshot content with error failed to get input parameters to create "
        'snapshot snap: "failed to retrieve PV nope from the API server: '
        '\\"persistentvolumes \\\\\\"nope\\\\\\" not found\\""',
    )


async def test_7_6_fail_create_snapshot_with_claim_that_is_not_yet_bound() -> None:
    await failed_create(
        [GOLD, vs("snap", "u", claim="c", cls="gold"), pvc("c", phase="Pending")],
        "Failed to create snapshot content with error failed to get input parameters to create "
        'snapshot snap: "the PVC c is not yet bound to a PV, will not attempt to take a snapshot"',
    )


async def test_7_10_fail_create_snapshot_with_invalid_secret() -> None:
    bad = vsclass("bad", params={"csi.storage.k8s.io/snapshotter-secret-name": "x"})
    await failed_create(
        [bad, vs("snap", "u", claim="c", cls="bad"), pvc("c", pv="p"), pv("p", "c")],
        "Failed to create snapshot content with error failed to get input parameters to create "
        'snapshot snap: "failed to get name and namespace template from params: either name and '
        'namespace for Snapshotter secrets specified, Both must be specified"',
    )


async def test_7_11_fail_create_snapshot_due_to_cannot_save_snapshot_content() -> None:
    w = await world(
        [GOLD, vs("snap", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")],
        errors=[Injection("create", "VolumeSnapshotContent", message="mock create error")],
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    assert reasons(w) == [
        "Warning CreateSnapshotContentFailed",
        "Warning SnapshotContentCreationFailed",
    ]
    assert w.events.seen[0][2] == (
        "Error creating volume snapshot content object for snapshot default/snap: "
        "mock create error."
    )
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None and snap["status"]["error"]["message"] == (
        "Failed to create snapshot content with error snapshot controller failed to update "
        "default/snap on API server: mock create error"
    )


async def test_claim_being_deleted_is_refused() -> None:
    await failed_create(
        [
            GOLD,
            vs("snap", "u", claim="c", cls="gold"),
            pvc("c", pv="p", finalizers=["kubernetes.io/pvc-protection"], deleting=True),
            pv("p", "c"),
        ],
        "Failed to create snapshot content with error snapshot controller failed to update c on "
        "API server: cannot add finalizer on claim because it is being deleted",
    )


async def test_invalid_snapshot_never_touches_its_claim_1305() -> None:
    """Go adds the claim finalizer before it checks the inputs, so a snapshot that can never be
    taken pins its claim (#1305). Ours resolves everything first."""
    w = await world([vs("snap", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")])
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    assert w.kube.actions_of("replace") == [] and w.kube.actions_of("get") == []


async def test_8_3_existing_error_is_cleared_when_the_content_is_created() -> None:
    w = await world(
        [
            GOLD,
            vs(
                "snap8-3",
                "snapuid8-3",
                claim="c",
                cls="gold",
                error="old failure",
                ready=False,
                finalizers=[VS_AS_SOURCE_FINALIZER],
            ),
            pvc("c", pv="p", finalizers=[PVC_FINALIZER]),
            pv("p", "c"),
        ]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap8-3") is True
    snap = w.get("VolumeSnapshot", "snap8-3", "default")
    assert snap is not None
    assert snap["status"] == {
        "boundVolumeSnapshotContentName": "snapcontent-snapuid8-3",
        "readyToUse": False,
    }
    # the claim already carried the finalizer: no GET/PUT of the claim; the snapshot's
    # finalizer was there too, so one GET checks it is still there before the creation
    gets = [(x.resource, x.name) for x in w.kube.actions_of("get")]
    assert gets == [("volumesnapshots", "snap8-3")]
    assert w.kube.actions_of("replace") == []


LIVE = [GOLD, pvc("c", pv="p", finalizers=[PVC_FINALIZER]), pv("p", "c")]
CACHED = vs("snap", "u", claim="c", cls="gold", finalizers=[VS_AS_SOURCE_FINALIZER])


async def test_no_content_for_a_snapshot_the_cache_shows_but_that_is_gone() -> None:
    w = await world(LIVE)
    w.stale[("VolumeSnapshot", "snap")] = CACHED
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    assert objects(w, "VolumeSnapshotContent") == []


async def test_no_content_for_a_snapshot_being_deleted_the_cache_does_not_know_it() -> None:
    w = await world(
        [
            *LIVE,
            vs(
                "snap",
                "u",
                claim="c",
                cls="gold",
                finalizers=[VS_AS_SOURCE_FINALIZER],
                deleting=True,
            ),
        ]
    )
    w.stale[("VolumeSnapshot", "snap")] = CACHED
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    assert objects(w, "VolumeSnapshotContent") == []


async def test_no_content_for_a_snapshot_re_created_with_the_same_name() -> None:
    w = await world(
        [*LIVE, vs("snap", "v", claim="c", cls="gold", finalizers=[VS_AS_SOURCE_FINALIZER])]
    )
    w.stale[("VolumeSnapshot", "snap")] = CACHED
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    assert objects(w, "VolumeSnapshotContent") == []


async def test_default_class_is_set_then_the_content_created() -> None:
    w = await world(
        [vsclass("def", default=True), vs("snap", "u", claim="c"), pvc("c", pv="p"), pv("p", "c")]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None and snap["spec"]["volumeSnapshotClassName"] == "def"
    (content,) = objects(w, "VolumeSnapshotContent")
    assert content["spec"]["volumeSnapshotClassName"] == "def"


async def test_two_default_classes_for_the_driver() -> None:
    w = await world(
        [
            vsclass("a", default=True),
            vsclass("b", default=True),
            vsclass("c", default=True, driver="x"),
            vs("snap", "u", claim="c"),
            pvc("c", pv="p"),
            pv("p", "c"),
        ]
    )
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is False
    snap = w.get("VolumeSnapshot", "snap", "default")
    assert snap is not None and snap["status"]["error"]["message"] == (
        "Failed to set default snapshot class with error 2 default snapshot classes were found"
    )


async def test_distributed_snapshotting_labels_the_content_with_the_node() -> None:
    affinity = [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]
    nodes = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n, "labels": {"zone": z}}}
        for n, z in (("n1", "a"), ("n2", "b"), ("n3", "b"))
    ]
    w = await world(
        [
            GOLD,
            *nodes,
            vs("s", "u", claim="c", cls="gold"),
            pvc("c", pv="p"),
            pv("p", "c", affinity=affinity),
        ],
        settings=Settings(distributed=True),
    )
    await sync(w, decide_snapshot, "VolumeSnapshot", "default/s")
    (content,) = objects(w, "VolumeSnapshotContent")
    assert content["metadata"]["labels"] == {"snapshot.storage.kubernetes.io/managed-by": "n2"}


async def test_no_content_when_the_snapshot_is_deleted_while_its_claim_is_protected() -> None:
    """The user's DELETE lands between the snapshot's finalizer patch and the POST (while the
    claim's finalizer is written): no content, so the sidecar never cuts a snapshot after its
    deletion (the chaos harness's no-create-after-delete)."""
    w = await world([GOLD, vs("snap", "u", claim="c", cls="gold"), pvc("c", pv="p"), pv("p", "c")])
    replace = w.kube.replace

    async def replace_then_delete(*args: Any, **kwargs: Any) -> Any:
        out = await replace(*args, **kwargs)
        await w.kube.delete(VOLUME_SNAPSHOTS, "snap", "default")
        return out

    w.kube.replace = replace_then_delete  # type: ignore[method-assign]
    assert await sync(w, decide_snapshot, "VolumeSnapshot", "default/snap") is True
    assert objects(w, "VolumeSnapshotContent") == []
    claim = w.get("PersistentVolumeClaim", "c", "default")
    assert claim is not None and PVC_FINALIZER in claim["metadata"]["finalizers"]
