"""Group snapshot content tables (Go's ``groupsnapshot_controller_test`` names where they match)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.snapshots import VOLUME_GROUP_SNAPSHOT_CLASSES as GCLASSES
from csi_sidecars.kube.snapshots import VOLUME_GROUP_SNAPSHOT_CONTENTS as VGSC
from csi_sidecars.kube.workqueue import After
from csi_sidecars.snapshotter.objects import group_should_delete
from tests.unit.snapshotter.reactor import (
    DRIVER,
    NAMESPACE,
    NOW,
    NOW_TEXT,
    SIZE,
    Reactor,
    rpc_error,
    snapshot_msg,
)

DELETED = {api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED: "yes"}


def gclass(name: str = "gold-group", parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "driver": DRIVER,
        "deletionPolicy": "Delete",
        "parameters": parameters if parameters is not None else {"param1": "value1"},
    }


def make_group(
    name: str = "groupcontent",
    *,
    uid: str = "vgs-uid",
    volumes: list[str] | None = None,
    static: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    cls: str = "gold-group",
    policy: str = "Delete",
) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"groupSnapshotHandles": static}
        if static
        else {"volumeHandles": volumes or ["vol-1", "vol-2"]}
    )
    spec: dict[str, Any] = {
        "driver": DRIVER,
        "deletionPolicy": policy,
        "source": source,
        "volumeGroupSnapshotRef": {"name": "vgs", "namespace": NAMESPACE, "uid": uid},
    }
    if cls:
        spec["volumeGroupSnapshotClassName"] = cls
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "finalizers": [api.VGSC_FINALIZER],
            "annotations": annotations or {},
        },
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def group_reply(ready: bool = True, gid: str = "grp-1") -> Any:
    return csi_pb2.CreateVolumeGroupSnapshotResponse(
        group_snapshot=csi_pb2.VolumeGroupSnapshot(
            group_snapshot_id=gid,
            ready_to_use=ready,
            snapshots=[
                snapshot_msg("snap-1", source="vol-1", group_id=gid, ready=ready),
                snapshot_msg("snap-2", source="vol-2", group_id=gid, ready=ready, created=None),
            ],
        )
    )


async def world(obj: dict[str, Any], *, deleting: bool = False, **kw: Any) -> Reactor:
    r = Reactor(**kw)
    await r.add(GCLASSES, gclass())
    await r.add(VGSC, obj, deleting=deleting)
    return r


async def test_create_group_snapshot() -> None:
    r = await world(make_group())
    r.csi.replies = {"CreateVolumeGroupSnapshot": [group_reply()]}
    assert await r.sync("groupcontent", kind="group") is True
    call = r.csi.calls[0]
    assert call.method == "CreateVolumeGroupSnapshot"
    assert call.request.name == "groupsnapshot-vgs-uid"
    assert list(call.request.source_volume_ids) == ["vol-1", "vol-2"]
    assert dict(call.request.parameters) == {
        "param1": "value1",
        api.PREFIXED_VOLUME_GROUP_SNAPSHOT_NAME_KEY: "vgs",
        api.PREFIXED_VOLUME_GROUP_SNAPSHOT_NAMESPACE_KEY: NAMESPACE,
        api.PREFIXED_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME_KEY: "groupcontent",
    }
    got = r.group_content("groupcontent")
    assert got is not None
    assert got["status"] == {
        "volumeGroupSnapshotHandle": "grp-1",
        "readyToUse": True,
        "creationTime": NOW_TEXT,
        "volumeSnapshotInfoList": [
            {
                "volumeHandle": "vol-1",
                "snapshotHandle": "snap-1",
                "readyToUse": True,
                "creationTime": int((NOW - 5) * 1e9),
                "restoreSize": SIZE,
            },
            {
                "volumeHandle": "vol-2",
                "snapshotHandle": "snap-2",
                "readyToUse": True,
                "restoreSize": SIZE,
            },
        ],
    }
    assert got["metadata"]["annotations"] == {}
    assert r.recorder.events == []


async def test_not_ready_group_is_polled_by_create_again() -> None:
    r = await world(make_group())
    r.csi.replies = {"CreateVolumeGroupSnapshot": [group_reply(ready=False)]}
    assert await r.sync("groupcontent", kind="group") == After(1.0)
    r.csi.replies = {"CreateVolumeGroupSnapshot": [group_reply(ready=True)]}
    assert await r.sync("groupcontent", kind="group") is True
    assert r.csi.methods() == ["CreateVolumeGroupSnapshot"] * 2
    got = r.group_content("groupcontent")
    assert got is not None and got["status"]["readyToUse"] is True
    assert api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED not in got["metadata"]["annotations"]


async def test_dynamic_without_class_returns_error() -> None:
    r = await world(make_group(cls=""))
    assert await r.sync("groupcontent", kind="group") is False
    got = r.group_content("groupcontent")
    assert got is not None
    assert got["status"]["error"]["message"] == (
        "Failed to create group snapshot: failed to get input parameters to create group "
        'snapshot for group snapshot content groupcontent: "failed to take group snapshot '
        'groupcontent without a group snapshot class" (final error)'
    )
    assert r.recorder.reasons() == ["Warning GroupSnapshotCreationFailed"]  # Go: log only (#1314)


async def test_with_class_name_but_class_not_found() -> None:
    r = await world(make_group(cls="missing"))
    assert await r.sync("groupcontent", kind="group") is False
    got = r.group_content("groupcontent")
    assert got is not None
    assert (
        'volumegroupsnapshotclass.groupsnapshot.storage.k8s.io \\"missing\\" not found'
        in (got["status"]["error"]["message"])
    )


async def test_create_error_is_reported_with_the_volumes() -> None:
    r = await world(make_group())
    r.csi.replies = {
        "CreateVolumeGroupSnapshot": [rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")]
    }
    assert await r.sync("groupcontent", kind="group") is False
    got = r.group_content("groupcontent")
    assert got is not None
    assert got["status"]["error"]["message"] == (
        "Failed to create group snapshot: failed to take group snapshot of the volumes "
        '[vol-1 vol-2]: "rpc error: code = DeadlineExceeded desc = slow" (transient error)'
    )
    assert got["metadata"]["annotations"][api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED] == "yes"


async def test_deleted_during_create_is_deleted_in_the_same_sync() -> None:
    obj = make_group(annotations={**DELETED, api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED: "yes"})
    r = await world(obj, deleting=True)
    r.csi.replies = {
        "CreateVolumeGroupSnapshot": [group_reply(ready=False)],
        "DeleteVolumeGroupSnapshot": [csi_pb2.DeleteVolumeGroupSnapshotResponse()],
    }
    assert await r.sync("groupcontent", kind="group") is True
    assert r.csi.methods() == ["CreateVolumeGroupSnapshot", "DeleteVolumeGroupSnapshot"]
    req = r.csi.calls[1].request
    assert (req.group_snapshot_id, list(req.snapshot_ids)) == ("grp-1", ["snap-1", "snap-2"])
    assert r.group_content("groupcontent") is None


async def test_delete_static_group_uses_the_spec_handles() -> None:
    static = {"volumeGroupSnapshotHandle": "grp-s", "volumeSnapshotHandles": ["s1", "s2"]}
    obj = make_group(
        uid="",
        static=static,
        status={"volumeGroupSnapshotHandle": "grp-s", "readyToUse": True},
        annotations=DELETED,
    )
    r = await world(obj, deleting=True)
    r.csi.replies = {"DeleteVolumeGroupSnapshot": [csi_pb2.DeleteVolumeGroupSnapshotResponse()]}
    assert await r.sync("groupcontent", kind="group") is True
    req = r.csi.calls[0].request
    assert (req.group_snapshot_id, list(req.snapshot_ids)) == ("grp-s", ["s1", "s2"])
    assert r.group_content("groupcontent") is None


async def test_delete_error_keeps_the_finalizer_and_reports() -> None:
    obj = make_group(
        status={
            "volumeGroupSnapshotHandle": "grp",
            "readyToUse": True,
            "volumeSnapshotInfoList": [{"volumeHandle": "v", "snapshotHandle": "s"}],
        },
        annotations=DELETED,
    )
    r = await world(obj, deleting=True)
    r.csi.replies = {"DeleteVolumeGroupSnapshot": [rpc_error(grpc.StatusCode.INTERNAL)]}
    assert await r.sync("groupcontent", kind="group") is False
    got = r.group_content("groupcontent")
    assert got is not None and got["metadata"]["finalizers"] == [api.VGSC_FINALIZER]
    assert r.recorder.events == [
        "Warning GroupSnapshotDeleteError: Failed to delete group snapshot"
    ]


async def test_should_delete_with_retain_policy_removes_finalizer() -> None:
    obj = make_group(
        policy="Retain", status={"volumeGroupSnapshotHandle": "grp"}, annotations=DELETED
    )
    r = await world(obj, deleting=True)
    assert await r.sync("groupcontent", kind="group") is True
    assert r.csi.calls == []
    assert r.group_content("groupcontent") is None


async def test_ready_to_use_true_removes_the_being_created_annotation() -> None:
    obj = make_group(
        status={"volumeGroupSnapshotHandle": "grp", "readyToUse": True},
        annotations={api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED: "yes"},
    )
    r = await world(obj)
    assert await r.sync("groupcontent", kind="group") is True
    got = r.group_content("groupcontent")
    assert got is not None and got["metadata"]["annotations"] == {}
    assert r.csi.calls == []


async def test_static_group_is_polled_with_get_volume_group_snapshot() -> None:
    params = {
        api.PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAME_KEY: "secret",
        api.PREFIXED_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE_KEY: NAMESPACE,
    }
    static = {"volumeGroupSnapshotHandle": "grp-s", "volumeSnapshotHandles": ["s1", "s2"]}
    r = Reactor()
    await r.add(GCLASSES, gclass(parameters=params))
    await r.secret()
    await r.add(VGSC, make_group(uid="", static=static))
    reply = csi_pb2.GetVolumeGroupSnapshotResponse(
        group_snapshot=csi_pb2.VolumeGroupSnapshot(group_snapshot_id="grp-s", ready_to_use=True)
    )
    r.csi.replies = {"GetVolumeGroupSnapshot": [reply]}
    assert await r.sync("groupcontent", kind="group") is True
    req = r.csi.calls[0].request
    assert (req.group_snapshot_id, list(req.snapshot_ids), dict(req.secrets)) == (
        "grp-s",
        ["s1", "s2"],
        {"foo": "bar"},
    )
    got = r.group_content("groupcontent")
    assert got is not None
    assert got["status"] == {
        "volumeGroupSnapshotHandle": "grp-s",
        "readyToUse": True,
        "creationTime": NOW_TEXT,
    }


def deleting_group(**kw: Any) -> dict[str, Any]:
    obj = make_group(**kw)
    obj["metadata"]["deletionTimestamp"] = "2026-04-24T03:00:00Z"
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (make_group(), False),
        (
            deleting_group(
                uid="", static={"volumeGroupSnapshotHandle": "g", "volumeSnapshotHandles": ["s"]}
            ),
            True,
        ),
        (
            deleting_group(
                annotations={**DELETED, api.ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED: "yes"}
            ),
            False,
        ),
        (deleting_group(annotations=DELETED), True),
        (deleting_group(), False),
    ],
    ids=[
        "DeletionTimestamp is nil",
        "Content is not bound (pre-provisioned)",
        "AnnVolumeGroupSnapshotBeingCreated annotation is set",
        "AnnVolumeGroupSnapshotBeingDeleted annotation is set",
        "If no other cases match, should not delete",
    ],
)
def test_group_should_delete(obj: dict[str, Any], expected: bool) -> None:
    assert group_should_delete(obj) is expected
