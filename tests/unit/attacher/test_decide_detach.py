"""Detach plans: unpublish, finalizer before status, PV gone (#235), no duplicate unpublish."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.attacher import names
from csi_sidecars.attacher.decide import decide_va
from csi_sidecars.attacher.detach import unpublished
from csi_sidecars.attacher.plans import CSINODE_WAIT, Facts
from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import normal
from csi_sidecars.kube.resources import SECRETS, VOLUME_ATTACHMENTS, ApiError
from tests.unit.attacher.sim import (
    DRIVER,
    FINALIZER,
    NOW_TEXT,
    World,
    clock,
    config,
    make_csinode,
    make_pod,
    make_pv,
    make_secret,
    make_va,
    rpc_error,
)

CFG = config()
VA_PATCH = ("patch", "VolumeAttachment", "json")
VA_STATUS = ("patch-status", "VolumeAttachment", "merge")
ATTACHED_ANNOTATIONS = {
    names.NODE_ID_ANNOTATION: "csi-node-1",
    names.VOLUME_HANDLE_ANNOTATION: "vol-1",
}


def deleting_va(
    finalizers: list[str] | None = None, annotations: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    return make_va(
        deleting=True,
        attached=True,
        finalizers=[FINALIZER] if finalizers is None else finalizers,
        annotations=ATTACHED_ANNOTATIONS if annotations is None else annotations,
        status={"attachmentMetadata": {"devicePath": "/dev/x"}},
        **kw,
    )


def world(**kwargs: Any) -> World:
    defaults: dict[str, Any] = {
        "cfg": CFG,
        "va": deleting_va(),
        "pv": make_pv(finalizers=[FINALIZER]),
        "csinode": make_csinode(),
    }
    defaults.update(kwargs)
    return World(**defaults)


def decide(va: dict[str, Any], **kwargs: Any) -> a.Plan:
    kwargs.setdefault("cfg", CFG)
    kwargs.setdefault("pv", make_pv())
    kwargs.setdefault("csinode", make_csinode())
    return decide_va(va, clock=clock, **kwargs)


def unpublish_of(plan: a.Plan) -> a.Call:
    (call,) = plan
    assert isinstance(call, a.Call) and call.method == "ControllerUnpublishVolume"
    return call


def test_detach_unpublishes_then_removes_finalizer_then_status():
    w = world(va=deleting_va(finalizers=["other/keep", FINALIZER]))
    assert w.sync() == "forget"
    assert w.log == [("unpublish", "vol-1", "csi-node-1"), VA_PATCH, VA_STATUS]
    assert w.visits == 1
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == ["other/keep"]
    assert w.va["status"] == {"attached": False}
    assert [(e.type, e.reason) for e, _, _ in w.events] == [("Normal", "SuccessfulDetachVolume")]
    req = w.requests[0]
    assert isinstance(req, csi_pb2.ControllerUnpublishVolumeRequest)
    assert (req.volume_id, req.node_id, dict(req.secrets)) == ("vol-1", "csi-node-1", {})


def test_detach_plan_continuations():
    va = deleting_va(finalizers=["other/keep", FINALIZER])
    call = unpublish_of(decide(va))
    assert call.request == csi_pb2.ControllerUnpublishVolumeRequest(
        volume_id="vol-1", node_id="csi-node-1"
    )
    (remove,) = call.then(csi_pb2.ControllerUnpublishVolumeResponse())
    assert remove == a.Patch(
        VOLUME_ATTACHMENTS,
        "va1",
        [
            {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/1"},
        ],
        type="json",
        missing_ok=True,
    )
    assert remove.then is not None and remove.on_error is not None
    event = a.Emit(
        normal(
            "SuccessfulDetachVolume",
            'ControllerUnpublishVolume succeeded for volume "pv1" (handle "vol-1") on node "node1"',
        ),
        va,
        VOLUME_ATTACHMENTS,
    )
    mark = a.Patch(
        VOLUME_ATTACHMENTS,
        "va1",
        {"status": {"attached": False, "detachError": None, "attachmentMetadata": None}},
        subresource="status",
        missing_ok=True,
    )
    # Another finalizer is left: the status is written.
    kept = {"metadata": {"name": "va1", "deletionTimestamp": "t", "finalizers": ["other/keep"]}}
    assert remove.then(kept) == (mark, event, a.Done("detached"))
    # Ours was the last one: the VA is gone, no status write.
    gone = {"metadata": {"name": "va1", "deletionTimestamp": "t", "finalizers": []}}
    assert remove.then(gone) == (event, a.Done("detached"))
    assert remove.on_error(ApiError(404, "NotFound", "gone")) == (event, a.Done("detached"))
    assert remove.on_error(ApiError(422, "Invalid", "test failed")) == (a.Redecide("test failed"),)
    failed = remove.on_error(ApiError(500, "InternalError", "etcd down"))
    patch = failed[0]
    assert isinstance(patch, a.Patch)
    assert patch.body["status"]["detachError"]["message"] == (
        "could not mark as detached: etcd down"
    )


def test_status_write_after_last_finalizer_is_not_sent():
    w = world()
    assert w.sync() == "forget"
    assert w.log == [("unpublish", "vol-1", "csi-node-1"), VA_PATCH]
    assert w.va is None
    assert [e.reason for e, _, _ in w.events] == ["SuccessfulDetachVolume"]


def test_status_write_tolerates_not_found():
    va = deleting_va(finalizers=["other/keep", FINALIZER])
    plan = unpublished(Facts(va, CFG, make_pv(), make_csinode(), clock), "vol-1")
    (remove,) = plan
    assert isinstance(remove, a.Patch) and remove.then is not None
    mark, emit, done = remove.then({"metadata": {"finalizers": ["other/keep"]}})
    assert isinstance(mark, a.Patch) and mark.missing_ok and mark.on_error is not None
    assert mark.on_error(ApiError(404, "NotFound", "gone")) == (emit, done)
    failed = mark.on_error(ApiError(500, "InternalError", "etcd down"))
    assert isinstance(failed[0], a.Patch) and isinstance(failed[-1], a.List)


def test_failed_status_write_does_not_cause_second_unpublish():
    def fail(patch: a.Patch) -> ApiError | None:
        if patch.subresource == "status":
            return ApiError(500, "InternalError", "etcd down")
        return None

    w = world(va=deleting_va(finalizers=["other/keep", FINALIZER]), fail_patch=fail)
    assert w.sync() == "requeue"
    assert w.sync() == "forget"
    assert [entry for entry in w.log if entry[0] == "unpublish"] == [
        ("unpublish", "vol-1", "csi-node-1")
    ]


@pytest.mark.parametrize(
    ("code", "final"),
    [(grpc.StatusCode.FAILED_PRECONDITION, True), (grpc.StatusCode.ABORTED, False)],
)
def test_unpublish_error_saved_with_code_and_finalizer_kept(code: grpc.StatusCode, final: bool):
    def unpublish(req: Any) -> None:
        raise rpc_error(code, "still mounted")

    pods = [
        make_pod("app", "default", "node1", "claim1"),
        make_pod("b", "default", "node2", "claim1"),
    ]
    w = world(unpublish=unpublish, pods=pods)
    assert w.sync() == "requeue"
    assert w.log == [("unpublish", "vol-1", "csi-node-1"), VA_STATUS]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == [FINALIZER]
    assert w.va["status"]["attached"] is True
    assert w.va["status"]["detachError"] == {
        "message": f"rpc error: code = {_go(code)} desc = still mounted",
        "time": NOW_TEXT,
        "errorCode": code.value[0],
    }
    assert [(e.reason, kind, obj) for e, kind, obj in w.events] == [
        ("FailedDetachVolume", "VolumeAttachment", "va1"),
        ("FailedDetachVolume", "Pod", "app"),
    ]
    assert w.pod_lists == [("default", "spec.nodeName=node1")]
    failed = unpublish_of(decide(deleting_va())).on_error(rpc_error(code))
    listing = failed[-1]
    assert isinstance(listing, a.List)
    (retry,) = listing.then([])
    assert isinstance(retry, a.Retry) and ("may still be working" not in retry.reason) is final


def _go(code: grpc.StatusCode) -> str:
    return {"FAILED_PRECONDITION": "FailedPrecondition", "ABORTED": "Aborted"}[code.name]


def test_detach_works_when_pv_is_gone():
    annotations = {
        **ATTACHED_ANNOTATIONS,
        names.SECRET_NAME_ANNOTATION: "s",
        names.SECRET_NAMESPACE_ANNOTATION: "ns",
    }
    w = world(
        va=deleting_va(annotations=annotations),
        pv=None,
        secrets={("ns", "s"): make_secret({"token": "abc"})},
    )
    (read,) = decide(deleting_va(annotations=annotations), pv=None)
    assert isinstance(read, a.Read) and (read.namespace, read.name) == ("ns", "s")
    call = unpublish_of(read.then(make_secret({"token": "abc"})))
    assert (call.request.volume_id, dict(call.request.secrets)) == ("vol-1", {"token": "abc"})
    assert w.sync() == "forget"
    assert w.log[:2] == [("get-secret", "ns", "s"), ("unpublish", "vol-1", "csi-node-1")]
    assert dict(w.requests[0].secrets) == {"token": "abc"}
    assert w.va is None


def test_pv_gone_without_annotation_is_go_error():
    w = world(va=deleting_va(annotations={names.NODE_ID_ANNOTATION: "csi-node-1"}), pv=None)
    assert w.sync() == "requeue"
    assert w.requests == []
    assert w.va is not None
    assert w.va["status"]["detachError"]["message"] == 'persistentvolume "pv1" not found'


def test_pv_takes_precedence_over_annotations():
    va = deleting_va(annotations={**ATTACHED_ANNOTATIONS, names.VOLUME_HANDLE_ANNOTATION: "old"})
    call = unpublish_of(decide(va, pv=make_pv(handle="new")))
    assert call.request.volume_id == "new"


@pytest.mark.parametrize(
    ("csinode", "annotations", "expected"),
    [
        (make_csinode(node_id="from-csinode"), {}, "from-csinode"),
        (make_csinode(node_id="from-csinode"), ATTACHED_ANNOTATIONS, "from-csinode"),
        (None, ATTACHED_ANNOTATIONS, "csi-node-1"),
        (make_csinode(driver="other"), ATTACHED_ANNOTATIONS, "csi-node-1"),
    ],
)
def test_node_id_from_csinode_else_annotation(
    csinode: dict[str, Any] | None, annotations: dict[str, str], expected: str
):
    va = deleting_va(annotations=annotations)
    assert unpublish_of(decide(va, csinode=csinode)).request.node_id == expected


@pytest.mark.parametrize(
    ("csinode", "message"),
    [
        (None, 'csinode.storage.k8s.io "node1" not found'),
        (make_csinode(driver="other"), "CSINode node1 does not contain driver " + DRIVER),
    ],
)
def test_no_node_id_at_all_is_detach_error(csinode: dict[str, Any] | None, message: str):
    plan = decide(deleting_va(annotations={}), csinode=csinode)
    patch = plan[0]
    assert isinstance(patch, a.Patch)
    assert patch.body["status"]["detachError"]["message"] == message
    assert isinstance(plan[-1], a.List)
    assert plan[-1].then([]) == (a.Retry(f"detach failed: {message}"),)


def test_detach_waits_for_csinode_cache():
    plan = decide(deleting_va(), csinode=None, csinode_synced=False)
    assert plan == (a.RetryAfter(CSINODE_WAIT, "waiting for the CSINode cache"),)


def test_detach_secret_load_failure():
    va = deleting_va()
    pv = make_pv(secret=("ns", "s"))
    (read,) = decide(va, pv=pv)
    assert read == a.Read(SECRETS, "s", "ns")
    failed = read.on_error(ApiError(403, "Forbidden", "forbidden"))
    patch = failed[0]
    assert isinstance(patch, a.Patch)
    assert patch.body["status"]["detachError"]["message"] == (
        'failed to load secret "ns/s": forbidden'
    )


def test_without_finalizer_detach_is_done_unless_forced():
    va = deleting_va(finalizers=["other"])
    assert decide(va) == (a.Done("already detached"),)
    forced = unpublish_of(decide(va, force_sync=True))
    # Forced and still attached in the status: mark it detached (no finalizer to remove).
    mark, _, done = forced.then(None)
    assert isinstance(mark, a.Patch) and mark.subresource == "status"
    assert done == a.Done("detached")
    not_attached = make_va(deleting=True, finalizers=["other"])
    forced = unpublish_of(decide(not_attached, force_sync=True))
    assert forced.then(None) == (a.Done("already detached"),)


def test_inline_volume_detach():
    inline = {"accessModes": ["ReadWriteOnce"], "csi": {"driver": DRIVER, "volumeHandle": "i-1"}}
    va = deleting_va(pv=None, inline=inline)
    call = unpublish_of(decide(va, pv=None))
    assert call.request.volume_id == "i-1"
    (remove,) = call.then(None)
    assert isinstance(remove, a.Patch) and remove.then is not None
    _, emit, _ = remove.then({"metadata": {"finalizers": ["x"]}})
    assert isinstance(emit, a.Emit) and 'inline volume "i-1"' in emit.event.message
