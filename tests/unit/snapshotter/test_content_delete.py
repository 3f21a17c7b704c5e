"""Deletion table tests (Go's ``TestDeleteSync`` and ``TestShouldDelete`` cases), then the
no-leak cases where Go leaks or gets stuck (#1388, #1434)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.resources import SECRETS
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CLASSES as CLASSES
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS as VSC
from csi_sidecars.snapshotter import content, names
from csi_sidecars.snapshotter.objects import should_delete
from tests.unit.snapshotter.reactor import (
    SECRET_ANNOTATIONS,
    SIZE,
    Reactor,
    being_deleted,
    created,
    make_class,
    make_content,
    rpc_error,
)

OK = "DeleteSnapshotResponse"


@dataclass
class Case:
    name: str
    content: dict[str, Any]
    delete_reply: Any = None
    secret: bool = False
    deleted_ids: list[str] = field(default_factory=list)
    gone: bool = True  # the finalizer was removed, so the content is gone
    handle_after: str | None = None  # status.snapshotHandle when not gone
    events: list[str] = field(default_factory=list)


def deleting(n: str, policy: str, *, handle: str, dynamic: bool = True, **kw: Any) -> Any:
    status = {"snapshotHandle": handle, "restoreSize": SIZE} if handle else {"restoreSize": SIZE}
    return make_content(
        f"content{n}",
        snap_uid=f"sid{n}",
        snap_name=f"snap{n}",
        volume_handle=f"snap{n}-volumehandle" if dynamic else "",
        snapshot_handle="" if dynamic else f"sid{n}",
        policy=policy,
        status=status,
        annotations=being_deleted(kw.pop("annotations", None)),
        **kw,
    )


def delete_ok() -> Any:
    from csi_sidecars.csi.messages import csi_pb2

    return csi_pb2.DeleteSnapshotResponse()


CASES = [
    Case(
        "1-1 - content non-nil DeletionTimestamp with delete policy will delete snapshot",
        deleting("1-1", "Delete", handle="sid1-1"),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-1"],
    ),
    Case(
        "1-2 - content non-nil DeletionTimestamp with retain policy will not delete snapshot",
        deleting("1-2", "Retain", handle="sid1-2"),
    ),
    Case(
        "1-3 - delete snapshot error should result in an event, bound finalizer should remain",
        deleting("1-3", "Delete", handle="sid1-3"),
        delete_reply=rpc_error(grpc.StatusCode.INTERNAL, "mock csi driver delete error"),
        deleted_ids=["sid1-3"],
        gone=False,
        handle_after="sid1-3",
        events=["Warning SnapshotDeleteError: Failed to delete snapshot"],
    ),
    Case(
        "1-4 - fail to get the deletion secret, bound finalizer should remain",
        deleting("1-4", "Delete", handle="sid1-4", annotations=dict(SECRET_ANNOTATIONS)),
        gone=False,
        handle_after="sid1-4",
        events=["Warning SnapshotDeleteError: Failed to get snapshot credentials"],
    ),
    Case(
        "1-5 - csi driver delete snapshot returns error, bound finalizer should remain",
        deleting("1-5", "Delete", handle="sid1-5", dynamic=False),
        delete_reply=rpc_error(grpc.StatusCode.UNAVAILABLE, "mock csi driver delete error"),
        deleted_ids=["sid1-5"],
        gone=False,
        handle_after="sid1-5",
        events=["Warning SnapshotDeleteError: Failed to delete snapshot"],
    ),
    Case(
        "1-9 - continue deletion with snapshot class that has nonexistent secret, bound "
        "finalizer removed",
        deleting("1-9", "Delete", handle="sid1-9", snapshot_class="empty-secret"),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-9"],
    ),
    Case(
        "1-10 - (dynamic)deletion of content with retain policy should not trigger CSI call, "
        "not update status, but remove bound finalizer",
        deleting("1-10", "Retain", handle="sid1-10"),
    ),
    Case(
        "1-11 - (dynamic)deletion of content with deletion policy should trigger CSI call, "
        "update status, and remove bound finalizer removed.",
        deleting("1-11", "Delete", handle="sid1-11"),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-11"],
    ),
    Case(
        "1-12 - (pre-provision)deletion of content with retain policy should not trigger CSI "
        "call, not update status, but remove bound finalizer",
        deleting("1-12", "Retain", handle="sid1-12", dynamic=False),
    ),
    Case(
        "1-13 - (pre-provision)deletion of content with deletion policy should trigger CSI "
        "call, update status, and remove bound finalizer removed.",
        deleting("1-13", "Delete", handle="sid1-13", dynamic=False),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-13"],
    ),
    Case(
        "1-14 - (pre-provision)deletion of content with deletion policy and no snapshotclass "
        "should trigger CSI call, update status, and remove bound finalizer removed.",
        deleting("1-14", "Delete", handle="sid1-14", dynamic=False, snapshot_class=""),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-14"],
    ),
    Case(
        "1-15 - (dynamic)deletion of content with no snapshotclass should succeed",
        deleting("1-15", "Delete", handle="sid1-15", snapshot_class=""),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-15"],
    ),
    Case(
        "1-16 - (dynamic)deletion of content with no VolumeGroupSnapshotHandle should succeed",
        deleting(
            "1-16",
            "Delete",
            handle="sid1-16",
            annotations={api.VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: "grp-snap1-16"},
        ),
        delete_reply=delete_ok(),
        deleted_ids=["sid1-16"],
    ),
    Case(
        "ours: DeleteSnapshot NOT_FOUND means already deleted (Go retries forever)",
        deleting("nf", "Delete", handle="sid-nf"),
        delete_reply=rpc_error(grpc.StatusCode.NOT_FOUND, "no such snapshot"),
        deleted_ids=["sid-nf"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_delete_sync(case: Case) -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, case.content, deleting=True)
    if case.delete_reply is not None:
        r.csi.replies = {"DeleteSnapshot": [case.delete_reply]}
    name = case.content["metadata"]["name"]
    await r.sync(name)
    assert [c.request.snapshot_id for c in r.csi.calls] == case.deleted_ids
    assert set(r.csi.methods()) <= {"DeleteSnapshot"}
    got = r.content(name)
    if case.gone:
        assert got is None
    else:
        assert got is not None
        assert got["metadata"]["finalizers"] == [api.VSC_FINALIZER]
        assert got["status"].get("snapshotHandle") == case.handle_after
    assert r.recorder.events == case.events
    # Retain and group members never lose the status on the way out.
    if not case.deleted_ids:
        written = [act for act in r.kube.actions_of("patch", VSC) if act.subresource]
        assert written == []


async def test_1_17_group_member_is_never_deleted_through_delete_snapshot() -> None:
    r = Reactor()
    content = deleting("1-17", "Delete", handle="sid1-17")
    content["status"]["volumeGroupSnapshotHandle"] = "grp-snap1-17"
    await r.add(VSC, content, deleting=True)
    await r.sync("content1-17")
    assert r.csi.calls == []
    assert r.content("content1-17") is None


async def test_delete_sends_the_deletion_secret() -> None:
    r = Reactor()
    await r.secret(data={"user": "u", "password": "s3cr3t-value"})
    await r.add(
        VSC,
        deleting("sec", "Delete", handle="sid", annotations=dict(SECRET_ANNOTATIONS)),
        deleting=True,
    )
    r.csi.replies = {"DeleteSnapshot": [delete_ok()]}
    await r.sync("contentsec")
    assert dict(r.csi.calls[0].request.secrets) == {"user": "u", "password": "s3cr3t-value"}
    assert r.content("contentsec") is None
    # Secret values never reach an API write (the actions bodies) nor the repr of the plan.
    writes = [act for act in r.kube.actions if act.verb != "create"]
    assert "s3cr3t-value" not in repr(writes)
    # Plans may be logged: the Call that carries the secret does not show it.
    obj = deleting("sec", "Delete", handle="sid", annotations=dict(SECRET_ANNOTATIONS))
    read = content.delete(obj, r.view())[0]
    assert isinstance(read, a.Read)
    secret = r.kube.peek(SECRETS, "secret", "default")
    call = read.then(secret)[0]
    assert isinstance(call, a.Call) and "s3cr3t-value" not in repr(call)


SHOULD_DELETE = [
    (
        "DeletionTimeStamp is nil",
        make_content("c", snap_uid="u", snap_name="s", volume_handle="v"),
        False,
        False,
    ),
    ("Content is not bound", make_content("c", snap_name="s", snapshot_handle="h"), True, True),
    (
        "AnnVolumeSnapshotBeingDeleted annotation is set. ",
        make_content(
            "c", snap_uid="u", snap_name="s", volume_handle="v", annotations=being_deleted()
        ),
        True,
        True,
    ),
    (
        "If no other cases match, then should not delete",
        make_content("c", snap_uid="u", snap_name="s", volume_handle="v"),
        True,
        False,
    ),
    (
        "being created without a handle: wait for the call",
        make_content(
            "c",
            snap_uid="u",
            snap_name="s",
            volume_handle="v",
            annotations=being_deleted({api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}),
        ),
        True,
        False,
    ),
    (
        "ours: being created with a known handle: delete (Go waits)",
        make_content(
            "c",
            snap_uid="u",
            snap_name="s",
            volume_handle="v",
            status={"snapshotHandle": "h"},
            annotations=being_deleted({api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}),
        ),
        True,
        True,
    ),
]


@pytest.mark.parametrize(
    ("content", "deleted", "expected"),
    [(c, d, e) for _, c, d, e in SHOULD_DELETE],
    ids=[n for n, *_ in SHOULD_DELETE],
)
def test_should_delete(content: dict[str, Any], deleted: bool, expected: bool) -> None:
    if deleted:
        content["metadata"]["deletionTimestamp"] = "2026-04-24T03:00:00Z"
    assert should_delete(content) is expected


# -- deletion while CreateSnapshot is in flight or failing (#1388, #1434) -----------------------


def in_flight(n: str, **kw: Any) -> dict[str, Any]:
    return make_content(
        f"content{n}",
        snap_uid=f"snapuid{n}",
        snap_name=f"snap{n}",
        volume_handle=f"vol-{n}",
        annotations=being_deleted(kw.pop("annotations", None)),
        **kw,
    )


async def test_create_succeeding_on_a_deleted_content_deletes_in_the_same_sync() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(
        VSC,
        in_flight("a", annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}),
        deleting=True,
    )
    r.csi.replies = {
        "CreateSnapshot": [created("sid-a", ready=False)],
        "DeleteSnapshot": [delete_ok()],
    }
    assert await r.sync("contenta") is True
    assert r.csi.methods() == ["CreateSnapshot", "DeleteSnapshot"]
    assert r.csi.calls[1].request.snapshot_id == "sid-a"
    assert r.content("contenta") is None


async def test_final_error_on_a_deleted_content_finishes_without_a_backend_snapshot() -> None:
    # Go treats ResourceExhausted as "maybe in progress": the content never goes away (#1434).
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(
        VSC,
        in_flight("b", annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}),
        deleting=True,
    )
    r.csi.replies = {"CreateSnapshot": [rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota")]}
    assert await r.sync("contentb") is True
    assert r.csi.methods() == ["CreateSnapshot"]
    assert r.content("contentb") is None


async def test_transient_error_on_a_deleted_content_keeps_trying_and_keeps_the_finalizer() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(
        VSC,
        in_flight("c", annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}),
        deleting=True,
    )
    r.csi.replies = {
        "CreateSnapshot": [rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, ""), created("sid-c")],
        "DeleteSnapshot": [delete_ok()],
    }
    assert await r.sync("contentc") is False
    got = r.content("contentc")
    assert got is not None and got["metadata"]["finalizers"] == [api.VSC_FINALIZER]
    assert got["status"]["error"]["message"].endswith(
        '"rpc error: code = DeadlineExceeded desc = context deadline exceeded" (transient error)'
    )
    assert await r.sync("contentc") is True
    assert r.csi.methods() == ["CreateSnapshot", "CreateSnapshot", "DeleteSnapshot"]
    assert r.content("contentc") is None


async def test_recorded_request_is_repeated_after_the_class_is_deleted() -> None:
    # The first call timed out (it may have created the snapshot); then the class and the
    # VolumeSnapshot went. Go cannot build the request any more and keeps the content forever.
    r = Reactor()
    await r.add(CLASSES, make_class(parameters={"tier": "fast"}))
    await r.add(VSC, make_content("cd", snap_uid="uid-d", snap_name="d", volume_handle="vol-d"))
    r.csi.replies = {"CreateSnapshot": [rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "")]}
    assert await r.sync("cd") is False
    first = r.csi.calls[0].request
    await r.kube.delete(CLASSES, "gold")
    await r.kube.patch(
        VSC,
        "cd",
        {"metadata": {"annotations": {api.ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}}},
    )
    await r.kube.delete(VSC, "cd")
    r.csi.replies = {"CreateSnapshot": [created("sid-d")], "DeleteSnapshot": [delete_ok()]}
    assert await r.sync("cd") is True
    again = r.csi.calls[1].request
    assert (again.name, dict(again.parameters)) == (first.name, dict(first.parameters))
    assert dict(again.parameters)["tier"] == "fast"
    assert r.csi.calls[2].request.snapshot_id == "sid-d"
    assert r.content("cd") is None


async def test_recorded_request_wins_over_a_changed_class_while_in_flight() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class(parameters={"tier": "fast"}))
    await r.add(VSC, make_content("ce", snap_uid="uid-e", snap_name="e", volume_handle="vol-e"))
    r.csi.replies = {"CreateSnapshot": [rpc_error(grpc.StatusCode.UNAVAILABLE, "")]}
    await r.sync("ce")
    await r.kube.patch(CLASSES, "gold", {"parameters": {"tier": "slow"}})
    r.csi.replies = {"CreateSnapshot": [created("sid-e")]}
    assert await r.sync("ce") is True
    assert [dict(c.request.parameters)["tier"] for c in r.csi.calls] == ["fast", "fast"]
    got = r.content("ce")
    assert got is not None and names.ANN_CREATE_REQUEST not in got["metadata"]["annotations"]


async def test_failing_readiness_poll_does_not_block_deletion() -> None:
    # Go sets the being-created annotation again for each poll; a poll that times out then
    # blocks the deletion until one succeeds.
    r = Reactor()
    await r.add(CLASSES, make_class())
    content = in_flight(
        "f",
        status={"snapshotHandle": "sid-f", "readyToUse": False},
        annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"},
    )
    await r.add(VSC, content, deleting=True)
    r.csi.replies = {
        "CreateSnapshot": [rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "")],
        "DeleteSnapshot": [delete_ok()],
    }
    assert await r.sync("contentf") is True
    assert r.csi.methods() == ["DeleteSnapshot"]
    assert r.content("contentf") is None


async def test_polls_do_not_set_the_being_created_annotation_again() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(
        VSC,
        make_content(
            "cg",
            snap_uid="uid-g",
            snap_name="g",
            volume_handle="vol-g",
            status={"snapshotHandle": "sid-g", "readyToUse": False},
        ),
    )
    r.csi.replies = {"CreateSnapshot": [rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "")]}
    assert await r.sync("cg") is False
    got = r.content("cg")
    assert got is not None
    assert api.ANN_VOLUME_SNAPSHOT_BEING_CREATED not in got["metadata"].get("annotations", {})
