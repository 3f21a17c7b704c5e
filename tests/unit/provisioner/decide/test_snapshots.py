"""Restore from a VolumeSnapshot: the source key, Go's checks and texts, the protection plans."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOTS
from csi_sidecars.provisioner.decide import snapshots as sn
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.request import ProvisionPlan, plan_provision
from csi_sidecars.provisioner.decide.states import ProvisionError
from tests.unit.provisioner.objs import DRIVER, Cap, options, pvc, sc

GROUP = "snapshot.storage.k8s.io"
FIN = "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection"
PREFIX = "error getting handle for DataSource Type VolumeSnapshot by Name snap: "
SOURCE = {"kind": "VolumeSnapshot", "name": "snap", "apiGroup": GROUP}
CAPS = {Cap.CREATE_DELETE_VOLUME, Cap.CREATE_DELETE_SNAPSHOT}


def snapshot(**status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "snap", "namespace": "default", "uid": "vs-uid", "finalizers": []},
        "spec": {"source": {"persistentVolumeClaimName": "origin"}},
        "status": {
            "boundVolumeSnapshotContentName": "snapcontent-1",
            "readyToUse": True,
            "restoreSize": "1Gi",
            **status,
        },
    }
    return body


def content(**fields: Any) -> dict[str, Any]:
    annotations = fields.pop("annotations", None)
    body: dict[str, Any] = {
        "metadata": {"name": "snapcontent-1"},
        "spec": {
            "driver": DRIVER,
            "deletionPolicy": "Delete",
            "source": {"volumeHandle": "vol-1"},
            "volumeSnapshotRef": {"name": "snap", "namespace": "default", "uid": "vs-uid"},
            **fields.pop("spec", {}),
        },
        "status": {"snapshotHandle": "snap-handle-1", "readyToUse": True, **fields},
    }
    if annotations is not None:
        body["metadata"]["annotations"] = annotations
    return body


def restore_plan(claim: dict[str, Any] | None = None) -> ProvisionPlan:
    return plan_provision(
        claim or pvc(dataSource=SOURCE), sc(), options(controller_capabilities=CAPS)
    )


def test_plan_of_a_restore_carries_the_source() -> None:
    plan = restore_plan()
    assert plan.restores and not plan.clones
    assert plan.data_source is not None and plan.data_source.name == "snap"
    ref = pvc(dataSourceRef={"kind": "VolumeSnapshot", "name": "snap", "apiGroup": GROUP})
    assert restore_plan(ref).restores


def test_content_source_is_the_snapshot_handle() -> None:
    got = sn.snapshot_content_source(
        restore_plan(), pvc(dataSource=SOURCE), sc(), snapshot(), content()
    )
    assert got == csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id="snap-handle-1")
    )


def test_larger_claim_than_the_restore_size_is_fine() -> None:
    claim = pvc(dataSource=SOURCE, storage="5Gi")
    plan = restore_plan(claim)
    got = sn.snapshot_content_source(plan, claim, sc(), snapshot(), content())
    assert got.snapshot.snapshot_id == "snap-handle-1"
    # No restoreSize at all: nothing to compare.
    got = sn.snapshot_content_source(plan, claim, sc(), snapshot(restoreSize=None), content())
    assert got.snapshot.snapshot_id == "snap-handle-1"


def test_group_snapshot_member_restores_like_any_snapshot() -> None:
    member = snapshot(volumeGroupSnapshotName="group-1")
    member["metadata"]["ownerReferences"] = [
        {"apiVersion": "groupsnapshot.storage.k8s.io/v1", "kind": "VolumeGroupSnapshot",
         "name": "group-1", "uid": "vgs-uid"}
    ]  # fmt: skip
    member_content = content(volumeGroupSnapshotHandle="group-handle")
    member_content["metadata"]["annotations"] = {
        "groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle": "group-handle"
    }
    claim = pvc(dataSource=SOURCE)
    assert sn.snapshot_content_name(restore_plan().data_source, member) == "snapcontent-1"  # type: ignore[arg-type]
    got = sn.snapshot_content_source(restore_plan(), claim, sc(), member, member_content)
    assert got.snapshot.snapshot_id == "snap-handle-1"


def _with_mode(mode: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return content(spec={"sourceVolumeMode": mode}, annotations=annotations)


CASES = [
    ("misbound content", {"content": content(spec={"volumeSnapshotRef": {
        "name": "snap", "namespace": "default", "uid": "other"}})},
     "snapshotcontent snapcontent-1 for snapshot snap is bound to a different snapshot"),
    ("foreign driver", {"content": content(spec={"driver": "other.csi"})},
     "snapshotcontent snapcontent-1 for snapshot snap is not handled by CSI driver of "
     "StorageClass fast"),
    ("not ready", {"snapshot": snapshot(readyToUse=False)}, "snapshot snap is not Ready"),
    ("ready unset", {"snapshot": snapshot(readyToUse=None)}, "snapshot snap is not Ready"),
    ("no handle", {"content": {**content(), "status": {}}},
     "snapshot handle snap is not available"),
    ("too small", {"claim": pvc(dataSource=SOURCE, storage="512Mi")},
     "requested volume size 536870912 is less than the size 1073741824 for the source snapshot "
     "snap"),
    ("no size request", {"claim": pvc(dataSource=SOURCE, storage=None)},
     "error getting capacity for PVC data when creating snapshot snap"),
    ("bad restore size", {"snapshot": snapshot(restoreSize="lots")},
     "snapshot snap has an invalid restoreSize 'lots'"),
    ("mode change without annotation",
     {"claim": pvc(dataSource=SOURCE, volumeMode="Block"), "content": _with_mode("Filesystem")},
     "requested volume default/data modifies the mode of the source volume but does not have "
     "permission to do so. snapshot.storage.kubernetes.io/allow-volume-mode-change annotation "
     "is not present on snapshotcontent snapcontent-1"),
    ("mode change refused",
     {"claim": pvc(dataSource=SOURCE, volumeMode="Block"),
      "content": _with_mode("Filesystem", {strings.ANN_ALLOW_VOLUME_MODE_CHANGE: "false"})},
     "snapshot.storage.kubernetes.io/allow-volume-mode-change is set to false on "
     "snapshotcontent snapcontent-1"),
    ("mode change garbled",
     {"claim": pvc(dataSource=SOURCE, volumeMode="Block"),
      "content": _with_mode("Filesystem", {strings.ANN_ALLOW_VOLUME_MODE_CHANGE: "yes"})},
     'failed to convert snapshot.storage.kubernetes.io/allow-volume-mode-change annotation value '
     'to boolean with error: strconv.ParseBool: parsing "yes": invalid syntax'),
]  # fmt: skip


@pytest.mark.parametrize(("kw", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_sources_have_gos_text(kw: dict[str, Any], message: str) -> None:
    claim = kw.get("claim", pvc(dataSource=SOURCE))
    with pytest.raises(ProvisionError) as exc:
        sn.snapshot_content_source(
            restore_plan(claim),
            claim,
            sc(),
            kw.get("snapshot", snapshot()),
            kw.get("content", content()),
        )
    text = str(exc.value)
    assert text.startswith(PREFIX) and message in text
    assert exc.value.state.value == "NoChange"


@pytest.mark.parametrize(("annotation", "prevent"), [("true", True), ("1", True), (None, False)])
def test_mode_change_allowed(annotation: str | None, prevent: bool) -> None:
    claim = pvc(dataSource=SOURCE, volumeMode="Block")
    ann = None if annotation is None else {strings.ANN_ALLOW_VOLUME_MODE_CHANGE: annotation}
    got = sn.snapshot_content_source(
        restore_plan(claim), claim, sc(), snapshot(), _with_mode("Filesystem", ann),
        prevent_volume_mode_conversion=prevent,
    )  # fmt: skip
    assert got.snapshot.snapshot_id == "snap-handle-1"


def test_same_mode_or_unknown_mode_needs_no_annotation() -> None:
    claim = pvc(dataSource=SOURCE, volumeMode="Filesystem")
    for body in (_with_mode("Filesystem"), content()):
        got = sn.snapshot_content_source(restore_plan(claim), claim, sc(), snapshot(), body)
        assert got.snapshot.snapshot_id == "snap-handle-1"


def test_content_name_checks() -> None:
    source = restore_plan().data_source
    assert source is not None
    deleting = snapshot()
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    with pytest.raises(ProvisionError, match=PREFIX + "snapshot snap is being deleted"):
        sn.snapshot_content_name(source, deleting)
    deleting["metadata"]["finalizers"] = [FIN]  # a restore had started: it may go on
    assert sn.snapshot_content_name(source, deleting) == "snapcontent-1"
    with pytest.raises(ProvisionError, match=PREFIX + "snapshot snap not bound"):
        sn.snapshot_content_name(source, snapshot(boundVolumeSnapshotContentName=None))


@pytest.mark.parametrize(
    ("claim_spec", "expected"),
    [
        ({"dataSource": SOURCE}, "default/snap"),
        ({"dataSource": {"kind": "VolumeSnapshot", "name": "snap"}}, "default/snap"),
        ({"dataSourceRef": {**SOURCE, "namespace": "other"}}, "other/snap"),
        ({"dataSource": {**SOURCE, "apiGroup": "elsewhere.io"}}, None),
        ({"dataSource": {"kind": "PersistentVolumeClaim", "name": "snap"}}, None),
        ({}, None),
    ],
)
def test_snapshot_source_key(claim_spec: dict[str, Any], expected: str | None) -> None:
    assert sn.snapshot_source_key(pvc(**claim_spec)) == expected


def test_protection_finalizer_edits_leave_the_input_alone() -> None:
    plain = snapshot()
    plain["metadata"]["finalizers"] = ["a"]
    before = copy.deepcopy(plain)
    added = sn.with_snapshot_protection(plain)
    assert added is not None and added["metadata"]["finalizers"] == ["a", FIN]
    assert sn.with_snapshot_protection(added) is None
    removed = sn.without_snapshot_protection(added)
    assert removed is not None and removed["metadata"]["finalizers"] == ["a"]
    assert sn.without_snapshot_protection(plain) is None
    assert plain == before


def test_protect_reads_fresh_then_updates_tolerating_forbidden() -> None:
    source = restore_plan().data_source
    assert source is not None
    (read,) = sn.protect_snapshot_source(source)
    assert isinstance(read, a.Read) and read.resource == VOLUME_SNAPSHOTS
    assert (read.name, read.namespace) == ("snap", "default")
    assert isinstance(read.then(None)[0], a.Retry)
    (replace,) = read.then(snapshot())
    assert isinstance(replace, a.Replace) and replace.resource == VOLUME_SNAPSHOTS
    assert replace.body["metadata"]["finalizers"] == [FIN]
    assert replace.on_error is not None
    (forbidden,) = replace.on_error(ApiError(403, "Forbidden", "no"))
    assert isinstance(forbidden, sn.ProtectionForbidden) and isinstance(forbidden, a.Done)
    (conflict,) = replace.on_error(ApiError(409, "Conflict", "stale"))
    assert isinstance(conflict, a.Read)
    assert isinstance(replace.on_error(ApiError(500, "", "boom"))[0], a.Retry)
    protected = snapshot()
    protected["metadata"]["finalizers"] = [FIN]
    assert read.then(protected) == (a.Done(),)


def _restoring(phase: str | None, volume: str = "", name: str = "copy") -> dict[str, Any]:
    claim = pvc(name=name, dataSource=SOURCE)
    if volume:
        claim["spec"]["volumeName"] = volume
    if phase is not None:
        claim["status"] = {"phase": phase}
    return claim


def _protected() -> dict[str, Any]:
    obj = snapshot()
    obj["metadata"]["finalizers"] = ["x", FIN]
    return obj


def test_release_waits_for_claims_that_still_need_the_snapshot() -> None:
    for phase in (None, "", "Pending"):
        (outcome,) = sn.release_snapshot(_protected(), [_restoring(phase)], lambda _: False)
        assert isinstance(outcome, sn.SnapshotInUse) and isinstance(outcome, a.Retry)


@pytest.mark.parametrize(
    ("claims", "provisioned"),
    [
        ([], False),
        ([_restoring("Bound", "pv-1")], False),
        ([_restoring("Lost")], False),
        ([_restoring("Pending")], True),  # its PV is saved: CreateVolume is over
    ],
)
def test_release_removes_only_our_finalizer(
    claims: list[dict[str, Any]], provisioned: bool
) -> None:
    (replace,) = sn.release_snapshot(_protected(), claims, lambda _: provisioned)
    assert isinstance(replace, a.Replace)
    assert replace.body["metadata"]["finalizers"] == ["x"]
    assert replace.then is not None
    assert replace.then({}) == (a.Done("removed the snapshot source protection finalizer"),)
    assert replace.on_error is not None
    assert replace.on_error(ApiError(404, "NotFound", "gone")) == (a.Done("snapshot is gone"),)


def test_release_has_nothing_to_do() -> None:
    assert sn.release_snapshot(None, [], lambda _: False) == (a.Done(),)
    assert sn.release_snapshot(snapshot(), [_restoring(None)], lambda _: False) == (a.Done(),)
