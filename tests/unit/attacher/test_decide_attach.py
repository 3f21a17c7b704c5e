"""Attach decisions: order of writes, every failure before publish, outcomes, trivial handler."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.attacher import actions as a
from csi_sidecars.attacher import names
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import attach_outcome, decide_va
from csi_sidecars.attacher.events import PodSelector
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
PV_PATCH = ("patch", "PersistentVolume", "json")
VA_PATCH = ("patch", "VolumeAttachment", "json")
VA_STATUS = ("patch-status", "VolumeAttachment", "merge")


def world(**kwargs: Any) -> World:
    defaults: dict[str, Any] = {
        "cfg": CFG,
        "va": make_va(),
        "pv": make_pv(),
        "csinode": make_csinode(),
    }
    defaults.update(kwargs)
    return World(**defaults)


def test_attach_writes_in_go_order_then_is_idempotent():
    w = world()
    assert w.sync() == "forget"
    assert w.log == [PV_PATCH, VA_PATCH, ("publish", "vol-1", "csi-node-1"), VA_STATUS]
    assert w.pv is not None and w.pv["metadata"]["finalizers"] == [FINALIZER]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == [FINALIZER]
    assert w.va["metadata"]["annotations"] == {
        names.NODE_ID_ANNOTATION: "csi-node-1",
        names.VOLUME_HANDLE_ANNOTATION: "vol-1",
    }
    assert w.va["status"] == {"attached": True, "attachmentMetadata": {"devicePath": "/dev/x"}}
    assert [(e.type, e.reason, e.pods) for e in w.events] == [
        ("Normal", "SuccessfulAttachVolume", None)
    ]
    assert "vol-1" in w.events[0].message and "node1" in w.events[0].message
    # Second pass: nothing to do.
    w.log.clear()
    assert w.sync() == "forget"
    assert w.log == []


def test_attach_request_content():
    w = world(
        pv=make_pv(
            access_modes=["ReadWriteOncePod"],
            block=True,
            read_only=True,
            attributes={"k": "v"},
        ),
        cfg=AttacherConfig(
            DRIVER, supports_publish_readonly=True, supports_single_node_multi_writer=True
        ),
    )
    w.sync()
    (req,) = w.requests
    assert isinstance(req, csi_pb2.ControllerPublishVolumeRequest)
    assert (req.volume_id, req.node_id, req.readonly) == ("vol-1", "csi-node-1", True)
    assert req.volume_capability.WhichOneof("access_type") == "block"
    assert (
        req.volume_capability.access_mode.mode
        == csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER
    )
    assert dict(req.volume_context) == {"k": "v"}


def test_secrets_are_loaded_before_the_va_finalizer_and_not_shown_in_repr():
    w = world(
        pv=make_pv(secret=("ns", "publish-secret")),
        secrets={("ns", "publish-secret"): make_secret({"password": "s3cr3t-value"})},
    )
    assert w.sync() == "forget"
    assert w.log == [
        PV_PATCH,
        ("get-secret", "ns", "publish-secret"),
        VA_PATCH,
        ("publish", "vol-1", "csi-node-1"),
        VA_STATUS,
    ]
    assert dict(w.requests[0].secrets) == {"password": "s3cr3t-value"}
    assert w.va is not None
    annotations = w.va["metadata"]["annotations"]
    assert annotations[names.SECRET_NAME_ANNOTATION] == "publish-secret"
    assert annotations[names.SECRET_NAMESPACE_ANNOTATION] == "ns"
    assert "s3cr3t" not in repr(annotations)
    action = decide_va(
        make_va(finalizers=[FINALIZER], annotations=dict(annotations)),
        cfg=CFG,
        pv=w.pv,
        csinode=make_csinode(),
        now=NOW,
        secrets={"password": "s3cr3t-value"},
    )
    assert isinstance(action, a.Attach)
    assert "s3cr3t" not in repr(action)


def test_missing_secret_fails_attach_without_va_finalizer():
    w = world(pv=make_pv(secret=("ns", "gone")))
    assert w.sync() == "requeue"
    assert w.log == [PV_PATCH, ("get-secret", "ns", "gone"), VA_STATUS]
    assert w.va is not None and "finalizers" not in w.va["metadata"]
    assert w.va["status"]["attachError"] == {
        "message": 'failed to load secret "ns/gone": secrets "gone" not found',
        "time": NOW_TEXT,
    }


BOTH = {"persistentVolumeName": "pv1", "inlineVolumeSpec": {"csi": {"volumeHandle": "x"}}}


@pytest.mark.parametrize(
    ("va", "pv", "csinode", "message", "pv_finalized"),
    [
        (make_va(), None, make_csinode(), 'persistentvolume "pv1" not found', False),
        (
            make_va(),
            make_pv(deleting=True),
            make_csinode(),
            'PersistentVolume "pv1" is marked for deletion',
            False,
        ),
        (make_va(), make_pv(), None, 'csinode.storage.k8s.io "node1" not found', True),
        (
            make_va(),
            make_pv(),
            make_csinode(driver="other.csi"),
            "CSINode node1 does not contain driver hostpath.csi.k8s.io",
            True,
        ),
        (
            make_va(),
            make_pv(access_modes=["ReadWriteOnce", "ReadOnlyMany"]),
            make_csinode(),
            "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume",
            True,
        ),
        (
            make_va(pv=None),
            None,
            make_csinode(),
            "neither InlineCSIVolumeSource nor PersistentVolumeName specified in VA source",
            False,
        ),
        (
            make_va(inline={"csi": {"volumeHandle": "x"}}),
            make_pv(),
            make_csinode(),
            "both InlineCSIVolumeSource and PersistentVolumeName specified in VA source",
            False,
        ),
        (
            make_va(pv=None, inline={"accessModes": ["ReadWriteOnce"]}),
            None,
            make_csinode(),
            "inline volume spec contains nil CSI source",
            False,
        ),
    ],
)
def test_failures_before_publish(
    va: dict[str, Any],
    pv: dict[str, Any] | None,
    csinode: dict[str, Any] | None,
    message: str,
    pv_finalized: bool,
):
    w = world(va=va, pv=pv, csinode=csinode)
    assert w.sync() == "requeue"
    assert w.log == ([PV_PATCH] if pv_finalized else []) + [VA_STATUS]
    assert w.requests == []
    assert w.va is not None and "finalizers" not in w.va["metadata"]
    assert w.va["status"]["attachError"] == {"message": message, "time": NOW_TEXT}
    warnings = [e for e in w.events if e.reason == "FailedAttachVolume"]
    assert warnings and all(message in e.message for e in warnings)


def test_in_tree_pv_is_rejected_with_a_clear_error():
    pv = make_pv()
    del pv["spec"]["csi"]
    pv["spec"]["awsElasticBlockStore"] = {"volumeID": "vol-x"}
    w = world(pv=pv)
    assert w.sync() == "requeue"
    assert w.va is not None
    message = w.va["status"]["attachError"]["message"]
    assert "kubernetes.io/aws-ebs" in message and "not supported" in message


def test_waits_for_csinode_cache_instead_of_failing():
    w = world(csinode=None, csinode_synced=False)
    assert w.sync() == "wait"
    assert w.log == [PV_PATCH]
    assert w.va is not None and "attachError" not in w.va["status"]
    w.csinode, w.csinode_synced = make_csinode(), True
    assert w.sync() == "forget"
    assert w.va is not None and w.va["status"]["attached"] is True


@pytest.mark.parametrize(
    ("error", "code", "final"),
    [
        (rpc_error(grpc.StatusCode.INTERNAL, "disk busy"), 13, True),
        (rpc_error(grpc.StatusCode.NOT_FOUND, "disk busy"), 5, True),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "disk busy"), 4, False),
        (rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "disk busy"), 8, False),
    ],
)
def test_publish_error_is_saved_with_grpc_code(error: grpc.RpcError, code: int, final: bool):
    def publish(req: Any) -> dict[str, str]:
        raise error

    w = world(publish=publish)
    assert w.sync() == "requeue"
    assert w.log == [PV_PATCH, VA_PATCH, ("publish", "vol-1", "csi-node-1"), VA_STATUS]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == [FINALIZER]
    assert w.va["status"]["attached"] is False
    attach_error = w.va["status"]["attachError"]
    assert attach_error["errorCode"] == code
    assert attach_error["message"].endswith("desc = disk busy")
    assert attach_error["time"] == NOW_TEXT
    assert [e.pods for e in w.events] == [None, PodSelector("default", "claim1", "node1")]
    va = make_va(finalizers=[FINALIZER])
    outcome = attach_outcome(va, _attach_action(), cfg=CFG, now=NOW, error=error)
    assert isinstance(outcome, a.SetAttachError)
    assert (outcome.code, outcome.final, outcome.retry) == (code, final, True)


def _attach_action() -> a.Attach:
    return a.Attach(csi_pb2.ControllerPublishVolumeRequest(), "pv1", "vol-1", "n")


def test_error_code_gate_off_and_non_grpc_errors():
    va = make_va()
    off = AttacherConfig(DRIVER, error_codes=False)
    err = rpc_error(grpc.StatusCode.INTERNAL)
    outcome = attach_outcome(va, _attach_action(), cfg=off, now=NOW, error=err)
    assert isinstance(outcome, a.SetAttachError) and outcome.code is None
    assert outcome.patch.body["status"]["attachError"]["errorCode"] is None
    outcome = attach_outcome(va, _attach_action(), cfg=CFG, now=NOW, error=RuntimeError("x"))
    assert isinstance(outcome, a.SetAttachError)
    assert (outcome.code, outcome.final, outcome.message) == (None, False, "x")


def test_attach_success_clears_previous_error():
    w = world(va=make_va(status={"attachError": {"message": "old", "time": "t", "errorCode": 4}}))
    assert w.sync() == "forget"
    assert w.va is not None and "attachError" not in w.va["status"]


def test_already_attached_is_ignored():
    va = make_va(
        attached=True,
        finalizers=[FINALIZER],
        annotations={names.NODE_ID_ANNOTATION: "csi-node-1", names.VOLUME_HANDLE_ANNOTATION: "h"},
    )
    action = decide_va(va, cfg=CFG, pv=make_pv(handle="h"), csinode=make_csinode(), now=NOW)
    assert action == a.Ignore("already attached")


def test_attached_by_older_attacher_gets_detach_info_recorded_once():
    va = make_va(attached=True, finalizers=[FINALIZER], annotations={names.NODE_ID_ANNOTATION: "x"})
    w = world(va=va, pv=make_pv(finalizers=[FINALIZER], secret=("ns", "s")))
    assert w.sync() == "forget"
    assert w.log == [VA_PATCH]
    assert w.requests == []
    assert w.va is not None
    assert w.va["metadata"]["annotations"] == {
        names.NODE_ID_ANNOTATION: "x",
        names.VOLUME_HANDLE_ANNOTATION: "vol-1",
        names.SECRET_NAME_ANNOTATION: "s",
        names.SECRET_NAMESPACE_ANNOTATION: "ns",
    }
    w.log.clear()
    assert w.sync() == "forget" and w.log == []


def test_no_backfill_without_finalizer_or_when_disabled():
    va = make_va(attached=True)
    assert decide_va(va, cfg=CFG, pv=make_pv(), csinode=None, now=NOW) == a.Ignore(
        "already attached"
    )
    va = make_va(attached=True, finalizers=[FINALIZER])
    cfg = AttacherConfig(DRIVER, record_detach_info=False)
    assert isinstance(decide_va(va, cfg=cfg, pv=make_pv(), csinode=None, now=NOW), a.Ignore)


def test_force_sync_publishes_again_even_when_attached():
    va = make_va(
        attached=True,
        finalizers=[FINALIZER],
        annotations={
            names.NODE_ID_ANNOTATION: "csi-node-1",
            names.VOLUME_HANDLE_ANNOTATION: "vol-1",
        },
    )
    w = world(va=va, pv=make_pv(finalizers=[FINALIZER]))
    assert w.sync(force_sync=True) == "forget"
    assert w.log == [("publish", "vol-1", "csi-node-1"), VA_STATUS]


def test_go_identical_writes_without_detach_info():
    w = world(cfg=AttacherConfig(DRIVER, record_detach_info=False))
    w.sync()
    assert w.va is not None
    assert w.va["metadata"]["annotations"] == {names.NODE_ID_ANNOTATION: "csi-node-1"}


def test_node_id_annotation_is_updated_when_csinode_changes():
    va = make_va(finalizers=[FINALIZER], annotations={names.NODE_ID_ANNOTATION: "stale"})
    w = world(va=va, pv=make_pv(finalizers=[FINALIZER]))
    w.sync()
    assert w.log[0] == VA_PATCH
    assert w.va is not None
    assert w.va["metadata"]["annotations"][names.NODE_ID_ANNOTATION] == "csi-node-1"


def test_inline_volume_spec_is_published_without_pv():
    inline = {
        "accessModes": ["ReadWriteMany"],
        "csi": {"driver": DRIVER, "volumeHandle": "inline-1", "fsType": "ext4"},
        "mountOptions": ["ro"],
    }
    w = world(va=make_va(pv=None, inline=inline), pv=None)
    assert w.sync() == "forget"
    assert w.log == [VA_PATCH, ("publish", "inline-1", "csi-node-1"), VA_STATUS]
    req = w.requests[0]
    assert list(req.volume_capability.mount.mount_flags) == ["ro"]
    assert (
        req.volume_capability.access_mode.mode
        == csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
    )
    assert w.va is not None
    assert w.va["metadata"]["annotations"] == {names.NODE_ID_ANNOTATION: "csi-node-1"}


@pytest.mark.parametrize(
    ("failing_kind", "message"),
    [
        ("PersistentVolume", "could not add PersistentVolume finalizer: "),
        ("VolumeAttachment", "could not save VolumeAttachment: "),
    ],
)
def test_failed_metadata_patch_is_saved_as_attach_error(failing_kind: str, message: str):
    def fail(patch: Any) -> ApiError | None:
        if patch.kind == failing_kind and patch.subresource is None:
            return ApiError(500, "InternalError", "etcd timeout")
        return None

    w = world(fail_patch=fail)
    assert w.sync() == "requeue"
    assert w.requests == []
    assert w.va is not None
    assert w.va["status"]["attachError"]["message"].startswith(message)
    assert "etcd timeout" in w.va["status"]["attachError"]["message"]


def test_other_driver_is_ignored():
    va = make_va(attacher="other.csi.example.com")
    action = decide_va(va, cfg=CFG, pv=make_pv(), csinode=make_csinode(), now=NOW)
    assert isinstance(action, a.Ignore) and "other.csi.example.com" in action.reason
    w = world(va=va)
    assert w.sync() == "forget" and w.log == []


def test_trivial_handler_marks_attached_without_finalizers():
    trivial = AttacherConfig(DRIVER, trivial=True)
    w = world(cfg=trivial, va=make_va(), pv=None, csinode=None)
    assert w.sync() == "forget"
    assert w.log == [VA_STATUS]
    assert w.va is not None
    assert w.va["status"] == {"attached": True}
    assert "finalizers" not in w.va["metadata"]
    w.log.clear()
    assert w.sync() == "forget" and w.log == []


def test_trivial_handler_ignores_deletion_like_go():
    trivial = AttacherConfig(DRIVER, trivial=True)
    action = decide_va(make_va(deleting=True), cfg=trivial, pv=None, csinode=None, now=NOW)
    assert isinstance(action, a.MarkAttached)
    assert action.patch.body == {
        "status": {"attached": True, "attachmentMetadata": None, "attachError": None}
    }
    attached = make_va(deleting=True, attached=True)
    assert isinstance(decide_va(attached, cfg=trivial, pv=None, csinode=None, now=NOW), a.Ignore)
