"""Status checks of pre-provisioned contents and group members, readiness polling, conflicts."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CLASSES as CLASSES
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS as VSC
from csi_sidecars.kube.workqueue import After
from csi_sidecars.snapshotter import content
from csi_sidecars.snapshotter.view import Config, View, poll_delay
from tests.unit.snapshotter.reactor import (
    DRIVER,
    NOW,
    NOW_NS,
    SECRET_ANNOTATIONS,
    SIZE,
    Reactor,
    created,
    listed,
    make_class,
    make_content,
    rpc_error,
    snapshot_msg,
)

LIST_SECRET = {
    api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY: "list-${volumesnapshotcontent.name}",
    api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY: "default",
}


def static(name: str = "pre", **kw: Any) -> dict[str, Any]:
    return make_content(name, snap_name="snap", snapshot_handle="sid-pre", **kw)


async def test_pre_provisioned_content_is_read_with_list_snapshots() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, static())
    r.csi.replies = {"ListSnapshots": [listed(snapshot_msg("sid-pre", group_id=""))]}
    assert await r.sync("pre") is True
    assert r.csi.methods() == ["ListSnapshots"]
    assert r.csi.calls[0].request.snapshot_id == "sid-pre"
    got = r.content("pre")
    assert got is not None
    assert got["status"] == {
        "snapshotHandle": "sid-pre",
        "readyToUse": True,
        "creationTime": NOW_NS - 5_000_000_000,
        "restoreSize": SIZE,
    }


async def test_list_secret_from_the_class_template() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class(parameters=LIST_SECRET))
    await r.secret("list-pre", {"token": "t"})
    await r.add(VSC, static())
    r.csi.replies = {"ListSnapshots": [listed(snapshot_msg("sid-pre"))]}
    assert await r.sync("pre") is True
    assert dict(r.csi.calls[0].request.secrets) == {"token": "t"}


async def test_missing_list_secret_is_reported() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class(parameters=LIST_SECRET))
    await r.add(VSC, static())
    assert await r.sync("pre") is False
    got = r.content("pre")
    assert got is not None
    assert got["status"]["error"]["message"] == (
        "Failed to check and update snapshot content: failed to get credentials for snapshot "
        'content pre: error getting secret list-pre in namespace default: secrets "list-pre" '
        "not found (final error)"
    )
    assert r.csi.calls == []


async def test_empty_list_answer_is_an_error() -> None:
    r = Reactor()
    await r.add(VSC, static(snapshot_class=""))
    r.csi.replies = {"ListSnapshots": [listed()]}
    assert await r.sync("pre") is False
    got = r.content("pre")
    assert got is not None
    assert got["status"]["error"]["message"] == (
        "Failed to check and update snapshot content: failed to list snapshot for content pre: "
        '"can not find snapshot for snapshotID sid-pre" (final error)'
    )
    assert r.recorder.reasons() == ["Warning SnapshotContentCheckandUpdateFailed"]


async def test_get_snapshot_when_the_driver_has_no_list_snapshots() -> None:
    r = Reactor(Config(driver=DRIVER, list_snapshots=False, get_snapshot=True))
    await r.add(VSC, static(snapshot_class=""))
    from csi_sidecars.csi.messages import csi_pb2

    r.csi.replies = {
        "GetSnapshot": [csi_pb2.GetSnapshotResponse(snapshot=snapshot_msg("sid-pre", ready=False))]
    }
    assert await r.sync("pre") == After(1.0)
    assert r.csi.methods() == ["GetSnapshot"]
    got = r.content("pre")
    assert got is not None and got["status"]["readyToUse"] is False


async def test_without_list_or_get_the_handle_is_taken_as_ready() -> None:
    r = Reactor(Config(driver=DRIVER, list_snapshots=False))
    await r.add(VSC, static(snapshot_class=""))
    assert await r.sync("pre") is True
    assert r.csi.calls == []
    got = r.content("pre")
    assert got is not None
    assert got["status"] == {
        "snapshotHandle": "sid-pre",
        "readyToUse": True,
        "creationTime": NOW_NS,
    }


async def test_group_member_with_handle_uses_the_annotation_secret() -> None:
    r = Reactor()
    await r.secret()
    member = make_content(
        "member",
        snap_uid="u",
        snap_name="m",
        volume_handle="vol-1",
        snapshot_class="",
        annotations={api.VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: "grp", **SECRET_ANNOTATIONS},
        status={"snapshotHandle": "sid-m", "volumeGroupSnapshotHandle": "grp", "readyToUse": False},
    )
    await r.add(VSC, member)
    r.csi.replies = {"ListSnapshots": [listed(snapshot_msg("sid-m", group_id="grp"))]}
    assert await r.sync("member") is True
    assert r.csi.methods() == ["ListSnapshots"]
    assert dict(r.csi.calls[0].request.secrets) == {"foo": "bar"}


async def test_group_member_without_handle_waits_and_never_creates() -> None:
    r = Reactor()
    member = make_content(
        "member",
        snap_uid="u",
        snap_name="m",
        volume_handle="vol-1",
        snapshot_class="",
        annotations={api.VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: "grp"},
    )
    await r.add(VSC, member)
    assert await r.sync("member") == After(1.0)
    assert r.csi.calls == []


async def test_error_is_cleared_by_a_successful_answer_even_when_not_ready() -> None:
    # Go keeps a stale error until the snapshot becomes ready.
    r = Reactor()
    await r.add(CLASSES, make_class())
    old = {"message": "Failed to check ... (transient error)", "time": "2026-04-24T03:00:00Z"}
    await r.add(
        VSC,
        make_content(
            "c",
            snap_uid="u",
            snap_name="s",
            volume_handle="vol",
            status={"snapshotHandle": "sid", "readyToUse": False, "error": old},
        ),
    )
    r.csi.replies = {"CreateSnapshot": [created("sid", ready=False)]}
    assert isinstance(await r.sync("c"), After)
    got = r.content("c")
    assert got is not None and "error" not in got["status"]


@pytest.mark.parametrize(
    ("age", "delay"), [(0.0, 1.0), (5.0, 1.0), (100.0, 10.0), (300.0, 30.0), (3600.0, 60.0)]
)
def test_poll_delay_grows_with_age_and_is_bounded(age: float, delay: float) -> None:
    assert poll_delay(Config(driver=DRIVER), age) == delay


def test_poll_delay_follows_the_snapshot_age_not_failures() -> None:
    cfg = Config(driver=DRIVER)
    view = View(cfg, now=lambda: NOW)
    old = make_content(
        "c",
        snap_uid="u",
        snap_name="s",
        volume_handle="vol",
        status={
            "snapshotHandle": "sid",
            "readyToUse": False,
            "creationTime": int((NOW - 200) * 1e9),
        },
    )
    plan = content.settled(old, view)
    assert plan == (a.RetryAfter(20.0, "not ready to use yet"),)


async def test_conflict_is_retried_silently() -> None:
    # Go shows "the object has been modified" as status.error and an event (#748).
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, make_content("c", snap_uid="u", snap_name="s", volume_handle="vol"))
    conflict = ApiError(409, "Conflict", "the object has been modified; please apply your changes")
    r.kube.inject("patch", conflict, resource=VSC, times=2)
    r.csi.replies = {"CreateSnapshot": [created("sid")]}
    assert await r.sync("c") is True
    got = r.content("c")
    assert got is not None and got["status"]["readyToUse"] is True
    assert "error" not in got["status"]
    assert r.recorder.events == []


async def test_persistent_conflict_ends_in_a_back_off_not_an_error() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, make_content("c", snap_uid="u", snap_name="s", volume_handle="vol"))
    r.kube.inject("patch", ApiError(409, "Conflict", "modified"), resource=VSC, times=100)
    assert await r.sync("c") is False
    got = r.content("c")
    assert got is not None and "status" not in got
    assert r.recorder.events == []
    assert r.csi.calls == []


async def test_transient_list_error_is_tagged() -> None:
    r = Reactor()
    await r.add(VSC, static(snapshot_class=""))
    r.csi.replies = {"ListSnapshots": [rpc_error(grpc.StatusCode.UNAVAILABLE, "down")]}
    assert await r.sync("pre") is False
    got = r.content("pre")
    assert got is not None
    assert got["status"]["error"]["message"].endswith(
        '"rpc error: code = Unavailable desc = down" (transient error)'
    )
