"""Which contents are ours and which changes are queued; names; error classification."""

from __future__ import annotations

import copy
from typing import Any

import grpc
import pytest

from csi_sidecars.kube import snapshots as api
from csi_sidecars.snapshotter import errors, names
from csi_sidecars.snapshotter.objects import driver_matches, needs_work, should_enqueue_change
from tests.unit.snapshotter.reactor import DRIVER, make_class, make_content, rpc_error

CLASSES = {"gold": make_class("gold"), "other": make_class("other", driver="other.csi")}


def lookup(name: str) -> dict[str, Any] | None:
    return CLASSES.get(name)


@pytest.mark.parametrize(
    ("content", "matches"),
    [
        (make_content("c", volume_handle="v"), True),
        (make_content("c", snapshot_handle="h", snapshot_class=""), True),
        (make_content("c", volume_handle="v", driver="other.csi"), False),
        (make_content("c", volume_handle="v", snapshot_class="other"), False),
        (make_content("c", volume_handle="v", snapshot_class="unknown"), True),
        (make_content("c", snapshot_handle=""), False),
    ],
    ids=[
        "dynamic",
        "static",
        "other driver",
        "class of another driver",
        "unknown class",
        "no source",
    ],
)
def test_driver_matches(content: dict[str, Any], matches: bool) -> None:
    assert driver_matches(content, DRIVER, lookup) is matches


def test_group_driver_matches() -> None:
    vgsc = {"spec": {"driver": DRIVER, "source": {"volumeHandles": ["a"]}}}
    assert driver_matches(vgsc, DRIVER, lambda _: None, group=True)
    assert not driver_matches(
        {"spec": {"driver": DRIVER, "source": {}}}, DRIVER, lookup, group=True
    )


def ready(rv: str = "5", **kw: Any) -> dict[str, Any]:
    obj = make_content(
        "c", volume_handle="v", status={"snapshotHandle": "h", "readyToUse": True}, **kw
    )
    obj["metadata"]["resourceVersion"] = rv
    return obj


def changed(
    obj: dict[str, Any], path: tuple[str, ...], value: Any, rv: str = "6"
) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    node = new
    for step in path[:-1]:
        node = node.setdefault(step, {})
    node[path[-1]] = value
    new["metadata"]["resourceVersion"] = rv
    return new


ENQUEUE = [
    ("resync of a ready content: nothing to do (Go queues it, #1148)", ready(), ready(), False),
    (
        "resync of a content being deleted",
        ready(),
        changed(ready(), ("metadata", "deletionTimestamp"), "t", rv="5"),
        True,
    ),
    ("status only", ready(), changed(ready(), ("status", "restoreSize"), 5), False),
    ("finalizers only", ready(), changed(ready(), ("metadata", "finalizers"), []), False),
    (
        "our own annotation only",
        ready(),
        changed(
            ready(), ("metadata", "annotations"), {api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}
        ),
        False,
    ),
    (
        "another annotation",
        ready(),
        changed(
            ready(), ("metadata", "annotations"), {api.ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}
        ),
        True,
    ),
    ("deletion timestamp", ready(), changed(ready(), ("metadata", "deletionTimestamp"), "t"), True),
    ("spec change", ready(), changed(ready(), ("spec", "deletionPolicy"), "Retain"), True),
    (
        "becomes ready (Go's #1388 fix)",
        changed(ready(), ("status", "readyToUse"), False, rv="5"),
        ready("6"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "queued"), [(o, n, q) for _, o, n, q in ENQUEUE], ids=[e[0] for e in ENQUEUE]
)
def test_should_enqueue_change(old: dict[str, Any], new: dict[str, Any], queued: bool) -> None:
    assert should_enqueue_change(old, new) is queued


def test_needs_work() -> None:
    assert not needs_work(ready())
    assert needs_work(make_content("c", volume_handle="v"))
    assert needs_work(ready(annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}))
    assert needs_work(changed(ready(), ("metadata", "deletionTimestamp"), "t"))


@pytest.mark.parametrize(
    ("prefix", "uid", "length", "expected"),
    [
        ("snapshot", "1a2b-3c4d", -1, "snapshot-1a2b-3c4d"),
        ("snapshot", "1a2b-3c4d", 6, "snapshot-1a2b3c"),
        ("snap", "1a2b-3c4d", 0, "snap-"),
        ("groupsnapshot", "0123-4567", 32, "groupsnapshot-01234567"),
    ],
)
def test_object_name(prefix: str, uid: str, length: int, expected: str) -> None:
    assert names.object_name(prefix, uid, length) == expected


def test_lease_name_and_component() -> None:
    assert (
        names.lease_name("hostpath.csi.k8s.io") == "external-snapshotter-leader-hostpath.csi.k8s.io"
    )
    assert names.lease_name("vendor/driver") == "external-snapshotter-leader-vendor-driver"
    assert names.event_component(DRIVER) == "csi-snapshotter hostpath.csi.k8s.io"


@pytest.mark.parametrize(
    ("err", "final"),
    [
        (rpc_error(grpc.StatusCode.CANCELLED), False),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), False),
        (rpc_error(grpc.StatusCode.UNAVAILABLE), False),
        (rpc_error(grpc.StatusCode.ABORTED), False),
        (rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED), True),
        (rpc_error(grpc.StatusCode.INVALID_ARGUMENT), True),
        (rpc_error(grpc.StatusCode.ALREADY_EXISTS), True),
        (rpc_error(grpc.StatusCode.NOT_FOUND), True),
        (TimeoutError(), False),
        (ConnectionError("reset"), False),
    ],
)
def test_is_final(err: BaseException, final: bool) -> None:
    assert errors.is_final(err) is final


def test_go_quote() -> None:
    assert errors.go_quote('say "hi"') == '"say \\"hi\\""'
