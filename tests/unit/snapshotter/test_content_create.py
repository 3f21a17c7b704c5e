"""Create and readiness table tests (Go's ``TestSyncContent`` cases 1-1 .. 1-9, then ours).

Each row: initial objects -> one sync -> expected content status, annotations, events and CSI
requests. Names with Go's numbers are Go's cases; messages carry our final/transient suffix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.resources import SECRETS, ApiError
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CLASSES as CLASSES
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS as VSC
from csi_sidecars.kube.workqueue import After
from csi_sidecars.snapshotter import names
from tests.unit.snapshotter.reactor import (
    NAMESPACE,
    NOW_NS,
    NOW_TEXT,
    SECRET_ANNOTATIONS,
    SIZE,
    Reactor,
    created,
    make_class,
    make_content,
    rpc_error,
)

EXTRA = {
    api.PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: NAMESPACE,
}


def extra(snap: str, content: str) -> dict[str, str]:
    return {
        api.PREFIXED_VOLUME_SNAPSHOT_NAME_KEY: snap,
        api.PREFIXED_VOLUME_SNAPSHOT_NAMESPACE_KEY: NAMESPACE,
        api.PREFIXED_VOLUME_SNAPSHOT_CONTENT_NAME_KEY: content,
    }


@dataclass
class Case:
    name: str
    content: dict[str, Any]
    replies: dict[str, list[Any]] = field(default_factory=dict)
    prepare: Callable[[Reactor], Awaitable[None]] | None = None
    expected_status: dict[str, Any] | None = None
    expected_annotations: dict[str, str] | None = None
    events: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    result: Any = True


def dyn(n: str, status: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    return make_content(
        f"content{n}",
        snap_uid=f"snapuid{n}",
        snap_name=f"snap{n}",
        volume_handle=f"volume-handle-{n}",
        status=status,
        **kw,
    )


def create_call(n: str, secrets: dict[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    return (
        "CreateSnapshot",
        {
            "name": f"snapshot-snapuid{n}",
            "source_volume_id": f"volume-handle-{n}",
            "parameters": {"param1": "value1", **extra(f"snap{n}", f"content{n}")},
            "secrets": secrets or {},
        },
    )


async def with_secret(r: Reactor) -> None:
    await r.secret()


async def secret_get_fails(r: Reactor) -> None:
    r.kube.inject("get", ApiError(500, "InternalError", "mock secrets error"), resource=SECRETS)


CASES = [
    Case(
        "1-1: Basic content update ready to use",
        dyn("1-1", {"snapshotHandle": "sid1-1", "readyToUse": False, "restoreSize": SIZE}),
        replies={"CreateSnapshot": [created("sid1-1")]},
        expected_status={
            "snapshotHandle": "sid1-1",
            "readyToUse": True,
            "restoreSize": SIZE,
            "creationTime": NOW_NS - 5_000_000_000,
        },
        calls=[create_call("1-1")],
    ),
    Case(
        "1-2: Basic sync content create snapshot",
        dyn("1-2", None),
        replies={"CreateSnapshot": [created("snapuid1-2")]},
        expected_status={
            "snapshotHandle": "snapuid1-2",
            "readyToUse": True,
            "restoreSize": SIZE,
            "creationTime": NOW_NS - 5_000_000_000,
        },
        expected_annotations={},
        calls=[create_call("1-2")],
    ),
    Case(
        "1-3: Basic sync content create snapshot with non-existent secret",
        dyn(
            "1-3",
            {},
            annotations={
                api.ANN_DELETION_SECRET_REF_NAME: "",
                api.ANN_DELETION_SECRET_REF_NAMESPACE: "",
            },
        ),
        expected_status={
            "readyToUse": False,
            "error": {
                "message": "Failed to check and update snapshot content: failed to get input "
                'parameters to create snapshot for content content1-3: "cannot retrieve '
                'secrets for snapshot content \\"content1-3\\", err: secret name or namespace '
                'not specified" (final error)',
                "time": NOW_TEXT,
            },
        },
        events=["Warning SnapshotContentCheckandUpdateFailed"],
        result=False,
    ),
    Case(
        "1-4: Basic sync content create snapshot with valid secret",
        dyn("1-4", None, annotations=dict(SECRET_ANNOTATIONS)),
        prepare=with_secret,
        replies={"CreateSnapshot": [created("snapuid1-4")]},
        expected_status={
            "snapshotHandle": "snapuid1-4",
            "readyToUse": True,
            "restoreSize": SIZE,
            "creationTime": NOW_NS - 5_000_000_000,
        },
        expected_annotations=dict(SECRET_ANNOTATIONS),
        calls=[create_call("1-4", {"foo": "bar"})],
    ),
    Case(
        "1-5: Basic sync content create snapshot with failed secret call",
        dyn("1-5", {}, annotations=dict(SECRET_ANNOTATIONS)),
        prepare=secret_get_fails,
        expected_status={
            "readyToUse": False,
            "error": {
                "message": "Failed to check and update snapshot content: failed to get input "
                'parameters to create snapshot for content content1-5: "cannot get '
                'credentials for snapshot content \\"content1-5\\"" (final error)',
                "time": NOW_TEXT,
            },
        },
        events=["Warning SnapshotContentCheckandUpdateFailed"],
        result=False,
    ),
    Case(
        "1-6: Basic content update ready to use bad snapshot class",
        dyn(
            "1-6",
            {"snapshotHandle": "sid1-6", "readyToUse": False, "restoreSize": SIZE},
            snapshot_class="bad-class",
        ),
        expected_status={
            "snapshotHandle": "sid1-6",
            "readyToUse": False,
            "restoreSize": SIZE,
            "error": {
                "message": "Failed to check and update snapshot content: failed to get input "
                'parameters to create snapshot for content content1-6: "volumesnapshotclass.'
                'snapshot.storage.k8s.io \\"bad-class\\" not found" (final error)',
                "time": NOW_TEXT,
            },
        },
        events=["Warning SnapshotContentCheckandUpdateFailed"],
        result=False,
    ),
    Case(
        "1-7: Just created un-ready snapshot should be requeued",
        dyn("1-7", None),
        replies={"CreateSnapshot": [created("snapuid1-7", ready=False, created=None)]},
        expected_status={
            "snapshotHandle": "snapuid1-7",
            "readyToUse": False,
            "restoreSize": SIZE,
            "creationTime": NOW_NS,
        },
        expected_annotations={},
        calls=[create_call("1-7")],
        result=After(1.0),
    ),
    Case(
        "1-8: Un-ready snapshot that remains un-ready should be requeued",
        dyn("1-8", {"snapshotHandle": "snapuid1-8", "restoreSize": SIZE, "readyToUse": False}),
        replies={"CreateSnapshot": [created("snapuid1-8", ready=False)]},
        expected_status={
            "snapshotHandle": "snapuid1-8",
            "readyToUse": False,
            "restoreSize": SIZE,
            "creationTime": NOW_NS - 5_000_000_000,
        },
        calls=[create_call("1-8")],
        result=After(1.0),
    ),
    Case(
        "1-9: Un-ready snapshot that becomes ready should not be requeued",
        dyn("1-9", {"snapshotHandle": "snapuid1-9", "restoreSize": SIZE, "readyToUse": False}),
        replies={"CreateSnapshot": [created("snapuid1-9")]},
        expected_status={
            "snapshotHandle": "snapuid1-9",
            "readyToUse": True,
            "restoreSize": SIZE,
            "creationTime": NOW_NS - 5_000_000_000,
        },
        calls=[create_call("1-9")],
    ),
]


def request_fields(req: Any) -> dict[str, Any]:
    return {
        "name": req.name,
        "source_volume_id": req.source_volume_id,
        "parameters": dict(req.parameters),
        "secrets": dict(req.secrets),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_sync_content(case: Case) -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, case.content)
    if case.prepare is not None:
        await case.prepare(r)
    r.csi.replies = {k: list(v) for k, v in case.replies.items()}
    result = await r.sync(case.content["metadata"]["name"])
    assert result == case.result
    got = r.content(case.content["metadata"]["name"])
    assert got is not None
    if case.expected_status is not None:
        assert got.get("status") == case.expected_status
    if case.expected_annotations is not None:
        assert got["metadata"].get("annotations", {}) == case.expected_annotations
    assert r.recorder.reasons() == case.events
    assert [(c.method, request_fields(c.request)) for c in r.csi.calls] == case.calls
    # Capabilities and the driver name were read at start-up, never per call (Go asks both).
    assert not {"GetPluginInfo", "ControllerGetCapabilities"} & set(r.csi.methods())
    assert got["metadata"]["finalizers"] == [api.VSC_FINALIZER]


async def test_marker_and_request_are_written_before_create_snapshot() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, dyn("m", None, finalizer=False))
    seen: list[dict[str, Any] | None] = []

    def answer(_: Any) -> Any:
        seen.append(r.content("contentm"))
        return created("sid-m")

    r.csi.replies = {"CreateSnapshot": [answer]}
    assert await r.sync("contentm") is True
    during = seen[0]
    assert during is not None
    ann = during["metadata"]["annotations"]
    assert ann[api.ANN_VOLUME_SNAPSHOT_BEING_CREATED] == "yes"
    assert '"name":"snapshot-snapuidm"' in ann[names.ANN_CREATE_REQUEST]
    # The content could not vanish while the call was in flight.
    assert during["metadata"]["finalizers"] == [api.VSC_FINALIZER]
    after = r.content("contentm")
    assert after is not None and after["metadata"]["annotations"] == {}


@pytest.mark.parametrize(
    ("code", "final", "marker_kept"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, False, True),
        (grpc.StatusCode.UNAVAILABLE, False, True),
        (grpc.StatusCode.ABORTED, False, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True, False),  # Go: transient (#1434)
        (grpc.StatusCode.INVALID_ARGUMENT, True, False),
        (grpc.StatusCode.INTERNAL, True, False),
    ],
)
async def test_create_error_classification(
    code: grpc.StatusCode, final: bool, marker_kept: bool
) -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, dyn("e", None))
    r.csi.replies = {"CreateSnapshot": [rpc_error(code, "mock create error")]}
    assert await r.sync("contente") is False
    got = r.content("contente")
    assert got is not None
    ann = got["metadata"].get("annotations", {})
    assert (api.ANN_VOLUME_SNAPSHOT_BEING_CREATED in ann) is marker_kept
    assert (names.ANN_CREATE_REQUEST in ann) is marker_kept
    suffix = "(final error)" if final else "(transient error)"
    code_name = "".join(w.capitalize() for w in code.name.split("_"))
    assert got["status"]["error"]["message"] == (
        "Failed to create snapshot: failed to take snapshot of the volume volume-handle-e: "
        f'"rpc error: code = {code_name} desc = mock create error" {suffix}'
    )
    assert got["status"]["readyToUse"] is False
    assert r.recorder.reasons() == ["Warning SnapshotCreationFailed"]


async def test_same_error_is_not_written_or_reported_twice() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, dyn("s", {}, snapshot_class="missing"))
    assert await r.sync("contents") is False
    writes = len(r.kube.actions_of("patch", VSC))
    assert await r.sync("contents") is False
    assert len(r.kube.actions_of("patch", VSC)) == writes
    assert len(r.recorder.events) == 1


async def test_unbound_dynamic_content_fails_final_without_marker() -> None:
    # Go sets the being-created annotation before it notices the missing UID, and keeps it.
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, make_content("c-unbound", snap_name="snap", volume_handle="vol-1"))
    assert await r.sync("c-unbound") is False
    got = r.content("c-unbound")
    assert got is not None
    assert api.ANN_VOLUME_SNAPSHOT_BEING_CREATED not in got["metadata"].get("annotations", {})
    assert got["status"]["error"]["message"].endswith('not bound to a snapshot" (final error)')
    assert r.csi.calls == []


async def test_reserved_parameter_is_an_error_before_any_call() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class(parameters={"csi.storage.k8s.io/unknown": "x"}))
    await r.add(VSC, dyn("p", None))
    assert await r.sync("contentp") is False
    got = r.content("contentp")
    assert got is not None
    assert got["status"]["error"]["message"] == (
        "Failed to create snapshot: failed to remove CSI Parameters of prefixed keys: found "
        'unknown parameter key "csi.storage.k8s.io/unknown" with reserved namespace '
        "csi.storage.k8s.io/ (final error)"
    )
    assert r.csi.calls == []
    assert api.ANN_VOLUME_SNAPSHOT_BEING_CREATED not in got["metadata"].get("annotations", {})


async def test_reserved_secret_parameters_are_stripped() -> None:
    r = Reactor()
    params = {
        "param1": "value1",
        api.PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY: "s",
        api.PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY: "ns",
    }
    await r.add(CLASSES, make_class(parameters=params))
    await r.add(VSC, dyn("q", None))
    r.csi.replies = {"CreateSnapshot": [created("sid-q")]}
    assert await r.sync("contentq") is True
    assert dict(r.csi.calls[0].request.parameters) == {
        "param1": "value1",
        **extra("snapq", "contentq"),
    }


async def test_without_extra_create_metadata_and_with_uuid_length() -> None:
    from csi_sidecars.snapshotter.view import Config

    r = Reactor(
        Config(
            driver="hostpath.csi.k8s.io",
            snapshot_name_prefix="snap",
            snapshot_name_uuid_length=8,
        )
    )
    await r.add(CLASSES, make_class())
    await r.add(
        VSC,
        make_content("c1", snap_uid="1234abcd-5678-90ef", snap_name="s1", volume_handle="vol-1"),
    )
    r.csi.replies = {"CreateSnapshot": [created("sid")]}
    assert await r.sync("c1") is True
    req = r.csi.calls[0].request
    assert req.name == "snap-1234abcd"
    assert dict(req.parameters) == {"param1": "value1"}


async def test_driver_without_a_snapshot_id_is_transient_and_keeps_the_marker() -> None:
    r = Reactor()
    await r.add(CLASSES, make_class())
    await r.add(VSC, dyn("z", None))
    r.csi.replies = {"CreateSnapshot": [created("")]}
    assert await r.sync("contentz") is False
    got = r.content("contentz")
    assert got is not None
    assert got["status"]["error"]["message"].endswith('no snapshot ID" (transient error)')
    assert got["metadata"]["annotations"][api.ANN_VOLUME_SNAPSHOT_BEING_CREATED] == "yes"


async def test_left_over_marker_on_a_ready_content_is_removed() -> None:
    r = Reactor()
    await r.add(
        VSC,
        dyn(
            "r",
            {"snapshotHandle": "sid", "readyToUse": True},
            annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes", "keep": "me"},
        ),
    )
    assert await r.sync("contentr") is True
    got = r.content("contentr")
    assert got is not None and got["metadata"]["annotations"] == {"keep": "me"}
    assert r.csi.calls == []


# -- no first CreateSnapshot while the content's snapshot is deleted or gone (chaos seeds 4, 6) --


async def _snapshot(r: Reactor, name: str, *, deleting: bool) -> str:
    """Store VolumeSnapshot ``name`` (with a finalizer); return its UID."""
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name, "namespace": NAMESPACE, "finalizers": ["keep"]},
        "spec": {"source": {"persistentVolumeClaimName": "pvc"}},
    }
    await r.add(api.VOLUME_SNAPSHOTS, body, deleting=deleting)
    snap = r.kube.peek(api.VOLUME_SNAPSHOTS, name, NAMESPACE)
    assert snap is not None
    return str(snap["metadata"]["uid"])


async def _world(*, deleting: bool, **content: Any) -> Reactor:
    """Dynamic content ``c1`` bound to snapshot ``s1`` (being deleted or not); the driver
    answers one CreateSnapshot."""
    r = Reactor()
    await r.add(CLASSES, make_class())
    uid = await _snapshot(r, "s1", deleting=deleting)
    body = make_content("c1", snap_uid=uid, snap_name="s1", volume_handle="vol-1", **content)
    await r.add(VSC, body)
    r.csi.replies = {"CreateSnapshot": [created("sid")]}
    return r


async def test_no_first_create_for_a_snapshot_being_deleted() -> None:
    r = await _world(deleting=True)
    assert await r.sync("c1") is False
    assert r.csi.calls == []
    got = r.content("c1")
    assert got is not None
    assert api.ANN_VOLUME_SNAPSHOT_BEING_CREATED not in (got["metadata"].get("annotations") or {})
    assert "status" not in got
    assert r.recorder.events == []


async def test_first_create_goes_on_for_a_live_snapshot() -> None:
    r = await _world(deleting=False)
    assert await r.sync("c1") is True
    assert r.csi.methods() == ["CreateSnapshot"]


@pytest.mark.parametrize("case", ["gone", "another-object"])
async def test_no_first_create_for_an_orphaned_content(case: str) -> None:
    # The snapshot was deleted (and its finalizers removed) before any sidecar looked at the
    # content, or a new snapshot took its name: the content is an orphan the snapshot-controller
    # deletes; a backend snapshot would be deleted again at once (or, Retain, kept for no one).
    r = Reactor()
    await r.add(CLASSES, make_class())
    if case == "another-object":
        await _snapshot(r, "s1", deleting=False)
    body = make_content(
        "c1", snap_uid="uid-of-a-deleted-object", snap_name="s1", volume_handle="vol-1"
    )
    await r.add(VSC, body, with_snapshot=False)
    r.csi.replies = {"CreateSnapshot": [created("sid")]}
    assert await r.sync("c1") is False
    assert r.csi.calls == []
    got = r.content("c1")
    assert got is not None and "status" not in got


async def test_without_read_access_to_snapshots_the_create_goes_on_as_in_go() -> None:
    r = await _world(deleting=True)
    r.kube.inject("get", ApiError(403, "Forbidden", "no"), resource=api.VOLUME_SNAPSHOTS)
    assert await r.sync("c1") is True
    assert r.csi.methods() == ["CreateSnapshot"]


async def test_a_failed_snapshot_read_retries_without_create() -> None:
    r = await _world(deleting=False)
    r.kube.inject("get", ApiError(500, "InternalError", "etcd"), resource=api.VOLUME_SNAPSHOTS)
    assert await r.sync("c1") is False
    assert r.csi.calls == []


async def test_a_marked_content_is_created_even_when_its_snapshot_is_being_deleted() -> None:
    # A call may have reached the driver: the handle must be learnt, so it can be deleted.
    r = await _world(deleting=True, annotations={api.ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"})
    assert await r.sync("c1") is True
    assert r.csi.methods() == ["CreateSnapshot"]
    assert r.kube.actions_of("get", api.VOLUME_SNAPSHOTS) == []
