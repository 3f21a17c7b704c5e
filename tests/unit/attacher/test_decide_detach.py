"""Detach decisions: unpublish, finalizer before status, PV gone (#235), no duplicate unpublish."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.attacher import actions as a
from csi_sidecars.attacher import names
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import decide_va, detach_outcome, step_failed
from csi_sidecars.attacher.events import PodSelector
from csi_sidecars.attacher.objects import SecretRef
from csi_sidecars.attacher.patches import Patch
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.resources import ApiError
from tests.unit.attacher.sim import (
    DRIVER,
    FINALIZER,
    NOW,
    NOW_TEXT,
    World,
    make_csinode,
    make_pv,
    make_secret,
    make_va,
    rpc_error,
)

CFG = AttacherConfig(DRIVER)
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


def test_detach_unpublishes_then_removes_finalizer_then_status():
    w = world(va=deleting_va(finalizers=["other/keep", FINALIZER]))
    assert w.sync() == "forget"
    assert w.log == [("unpublish", "vol-1", "csi-node-1"), VA_PATCH, VA_STATUS]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == ["other/keep"]
    assert w.va["status"] == {"attached": False}
    assert [(e.type, e.reason) for e in w.events] == [("Normal", "SuccessfulDetachVolume")]
    req = w.requests[0]
    assert isinstance(req, csi_pb2.ControllerUnpublishVolumeRequest)
    assert (req.volume_id, req.node_id, dict(req.secrets)) == ("vol-1", "csi-node-1", {})


def test_status_write_after_last_finalizer_tolerates_not_found():
    w = world()
    assert w.sync() == "forget"
    assert w.log == [
        ("unpublish", "vol-1", "csi-node-1"),
        VA_PATCH,
        ("not-found", "VolumeAttachment", "status"),
    ]
    assert w.va is None


def test_failed_status_write_does_not_cause_second_unpublish():
    def fail(patch: Any) -> ApiError | None:
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

    w = world(unpublish=unpublish)
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
    assert [(e.reason, e.pods) for e in w.events] == [
        ("FailedDetachVolume", None),
        ("FailedDetachVolume", PodSelector("default", "claim1", "node1")),
    ]
    va = deleting_va()
    detach = a.Detach(csi_pb2.ControllerUnpublishVolumeRequest(), "pv1", "vol-1", "csi-node-1")
    (outcome,) = detach_outcome(va, detach, cfg=CFG, now=NOW, error=rpc_error(code))
    assert isinstance(outcome, a.SetDetachError) and outcome.final is final and outcome.retry


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
    action = decide_va(
        deleting_va(annotations=annotations),
        cfg=CFG,
        pv=None,
        csinode=make_csinode(),
        now=NOW,
        secrets={"token": "abc"},
    )
    assert isinstance(action, a.Detach) and action.from_annotations
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
    action = decide_va(va, cfg=CFG, pv=make_pv(handle="new"), csinode=make_csinode(), now=NOW)
    assert isinstance(action, a.Detach)
    assert (action.volume_handle, action.from_annotations) == ("new", False)


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
    action = decide_va(va, cfg=CFG, pv=make_pv(), csinode=csinode, now=NOW)
    assert isinstance(action, a.Detach) and action.node_id == expected


@pytest.mark.parametrize(
    ("csinode", "message"),
    [
        (None, 'csinode.storage.k8s.io "node1" not found'),
        (make_csinode(driver="other"), "CSINode node1 does not contain driver " + DRIVER),
    ],
)
def test_no_node_id_at_all_is_detach_error(csinode: dict[str, Any] | None, message: str):
    va = deleting_va(annotations={})
    action = decide_va(va, cfg=CFG, pv=make_pv(), csinode=csinode, now=NOW)
    assert isinstance(action, a.SetDetachError) and action.message == message


def test_detach_waits_for_csinode_cache():
    action = decide_va(
        deleting_va(), cfg=CFG, pv=make_pv(), csinode=None, now=NOW, csinode_synced=False
    )
    assert action == a.WaitForCSINode("node1")


def test_detach_secret_load_failure():
    va = deleting_va()
    pv = make_pv(secret=("ns", "s"))
    action = decide_va(va, cfg=CFG, pv=pv, csinode=make_csinode(), now=NOW)
    assert action == a.LoadSecrets(SecretRef("ns", "s"))
    action = decide_va(
        va, cfg=CFG, pv=pv, csinode=make_csinode(), now=NOW, secrets_error="forbidden"
    )
    assert isinstance(action, a.SetDetachError)
    assert action.message == 'failed to load secret "ns/s": forbidden'


def test_without_finalizer_detach_is_done_unless_forced():
    va = deleting_va(finalizers=["other"])
    assert decide_va(va, cfg=CFG, pv=make_pv(), csinode=make_csinode(), now=NOW) == a.Ignore(
        "already detached"
    )
    forced = decide_va(va, cfg=CFG, pv=make_pv(), csinode=make_csinode(), now=NOW, force_sync=True)
    assert isinstance(forced, a.Detach)
    (mark,) = detach_outcome(va, forced, cfg=CFG, now=NOW)
    assert isinstance(mark, a.MarkDetached)
    not_attached = make_va(deleting=True, finalizers=["other"])
    assert detach_outcome(not_attached, forced, cfg=CFG, now=NOW) == ()


def test_inline_volume_detach():
    inline = {"accessModes": ["ReadWriteOnce"], "csi": {"driver": DRIVER, "volumeHandle": "i-1"}}
    va = deleting_va(pv=None, inline=inline)
    action = decide_va(va, cfg=CFG, pv=None, csinode=make_csinode(), now=NOW)
    assert isinstance(action, a.Detach)
    assert (action.volume_handle, action.pv_name, action.from_annotations) == ("i-1", None, False)


def test_step_failed_messages():
    va = deleting_va()
    remove = a.RemoveVAFinalizer(Patch("VolumeAttachment", "va1", "json", []))
    failed = step_failed(va, remove, "conflict", cfg=CFG, now=NOW)
    assert isinstance(failed, a.SetDetachError)
    assert failed.message == "could not mark as detached: conflict"
    annotate = a.AnnotateVA(Patch("VolumeAttachment", "va1", "json", []))
    assert step_failed(va, annotate, "x", cfg=CFG, now=NOW) is None
    assert step_failed(va, a.Ignore("x"), "x", cfg=CFG, now=NOW) is None
