"""Attach plans: order of writes, every failure before publish, continuations, trivial handler."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csi_sidecars.attacher import names
from csi_sidecars.attacher.decide import decide_va
from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import normal, warning
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, PODS, VOLUME_ATTACHMENTS, ApiError
from tests.unit.attacher.sim import (
    DRIVER,
    FINALIZER,
    NOW_TEXT,
    RPC,
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
PV_PATCH = ("patch", "PersistentVolume", "json")
VA_PATCH = ("patch", "VolumeAttachment", "json")
VA_STATUS = ("patch-status", "VolumeAttachment", "merge")
POD = make_pod("app", "default", "node1", "logs", "claim1")
STRANGER = make_pod("other", "default", "node1", "logs")


def world(**kwargs: Any) -> World:
    defaults: dict[str, Any] = {
        "cfg": CFG,
        "va": make_va(),
        "pv": make_pv(),
        "csinode": make_csinode(),
    }
    defaults.update(kwargs)
    return World(**defaults)


def decide(va: dict[str, Any], **kwargs: Any) -> a.Plan:
    kwargs.setdefault("cfg", CFG)
    kwargs.setdefault("pv", make_pv())
    kwargs.setdefault("csinode", make_csinode())
    return decide_va(va, clock=clock, **kwargs)


def call_of(plan: a.Plan) -> a.Call:
    call = plan[-1]
    assert isinstance(call, a.Call)
    return call


def outcome_of(plan: a.Plan, pods: list[dict[str, Any]] | None = None) -> a.Action:
    """The outcome of an error plan (following the pod list with ``pods``)."""
    last = plan[-1]
    if isinstance(last, a.List):
        last = last.then(pods or [])[-1]
    return last


def test_attach_writes_in_go_order_then_is_idempotent():
    w = world()
    assert w.sync() == "forget"
    assert w.log == [PV_PATCH, VA_PATCH, ("publish", "vol-1", "csi-node-1"), VA_STATUS]
    # One decision; the only continuation is the reply of ControllerPublishVolume.
    assert (w.visits, w.continuations) == (1, 1)
    assert w.pv is not None and w.pv["metadata"]["finalizers"] == [FINALIZER]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == [FINALIZER]
    assert w.va["metadata"]["annotations"] == {
        names.NODE_ID_ANNOTATION: "csi-node-1",
        names.VOLUME_HANDLE_ANNOTATION: "vol-1",
    }
    assert w.va["status"] == {"attached": True, "attachmentMetadata": {"devicePath": "/dev/x"}}
    assert [(e.type, e.reason, kind) for e, kind, _ in w.events] == [
        ("Normal", "SuccessfulAttachVolume", "VolumeAttachment")
    ]
    assert "vol-1" in w.events[0][0].message and "node1" in w.events[0][0].message
    # Second pass: nothing to do.
    w.log.clear()
    assert w.sync() == "forget"
    assert w.log == []


def test_attach_plan_is_complete():
    va = make_va()
    plan = decide(va)
    assert plan[:2] == (
        a.Patch(
            PERSISTENT_VOLUMES,
            "pv1",
            [
                {"op": "test", "path": "/metadata/finalizers", "value": None},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ],
            type="json",
        ),
        a.Patch(
            VOLUME_ATTACHMENTS,
            "va1",
            [
                {"op": "test", "path": "/metadata/finalizers", "value": None},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                {"op": "test", "path": "/metadata/annotations", "value": None},
                {
                    "op": "add",
                    "path": "/metadata/annotations",
                    "value": {
                        names.NODE_ID_ANNOTATION: "csi-node-1",
                        names.VOLUME_HANDLE_ANNOTATION: "vol-1",
                    },
                },
            ],
            type="json",
        ),
    )
    call = call_of(plan)
    assert len(plan) == 3
    assert (call.service, call.method, call.timeout) == (
        "controller",
        "ControllerPublishVolume",
        None,
    )
    assert call.request.volume_id == "vol-1" and call.request.node_id == "csi-node-1"
    reply = csi_pb2.ControllerPublishVolumeResponse(publish_context={"dev": "/dev/x"})
    event = normal(
        "SuccessfulAttachVolume",
        'ControllerPublishVolume succeeded for volume "pv1" (handle "vol-1") on node "node1"',
    )
    assert call.then(reply) == (
        a.Patch(
            VOLUME_ATTACHMENTS,
            "va1",
            {
                "status": {
                    "attached": True,
                    "attachmentMetadata": {"dev": "/dev/x"},
                    "attachError": None,
                }
            },
            subresource="status",
        ),
        a.Emit(event, va, VOLUME_ATTACHMENTS),
        a.Done("attached"),
    )


def test_publish_failure_plan_puts_events_on_the_va_and_the_pods():
    va = make_va()
    failed = call_of(decide(va)).on_error(rpc_error(grpc.StatusCode.INTERNAL, "disk busy"))
    message = "rpc error: code = Internal desc = disk busy"
    event = warning(
        "FailedAttachVolume", f'AttachVolume failed for volume "pv1" on node "node1": {message}'
    )
    status = {"attachError": {"message": message, "time": NOW_TEXT, "errorCode": 13}}
    assert failed[:2] == (
        a.Patch(VOLUME_ATTACHMENTS, "va1", {"status": status}, subresource="status"),
        a.Emit(event, va, VOLUME_ATTACHMENTS),
    )
    listing = failed[2]
    assert len(failed) == 3 and isinstance(listing, a.List)
    assert (listing.resource, listing.namespace, listing.field_selector, listing.for_events) == (
        PODS,
        "default",
        "spec.nodeName=node1",
        True,
    )
    retry = a.Retry(f"attach failed: {message}")
    assert listing.then([POD, STRANGER, make_pod("x", "default", "node2", "claim1")]) == (
        a.Emit(event, POD, PODS),
        retry,
    )
    assert listing.on_error(ApiError(403, "Forbidden", "no")) == (retry,)
    # Without permission to list pods (or an unbound PV) the events stay on the VA.
    no_pods = call_of(decide(va, cfg=config(pod_events=False))).on_error(
        rpc_error(grpc.StatusCode.INTERNAL)
    )
    assert [type(x) for x in no_pods] == [a.Patch, a.Emit, a.Retry]
    unbound = call_of(decide(va, pv=make_pv(claim=None))).on_error(
        rpc_error(grpc.StatusCode.INTERNAL)
    )
    assert [type(x) for x in unbound] == [a.Patch, a.Emit, a.Retry]


def test_attach_request_content():
    w = world(
        pv=make_pv(
            access_modes=["ReadWriteOncePod"],
            block=True,
            read_only=True,
            attributes={"k": "v"},
        ),
        cfg=config(RPC.PUBLISH_READONLY, RPC.SINGLE_NODE_MULTI_WRITER),
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
    plan = decide(make_va(finalizers=[FINALIZER], annotations=dict(annotations)), pv=w.pv)
    (read,) = plan
    assert isinstance(read, a.Read) and (read.name, read.namespace) == ("publish-secret", "ns")
    follow = read.then(make_secret({"password": "s3cr3t-value"}))
    assert dict(call_of(follow).request.secrets) == {"password": "s3cr3t-value"}
    assert len(follow) == 1
    assert "s3cr3t" not in repr(follow)


def test_missing_secret_fails_attach_without_va_finalizer():
    w = world(pv=make_pv(secret=("ns", "gone")))
    assert w.sync() == "requeue"
    assert w.log == [PV_PATCH, ("get-secret", "ns", "gone"), VA_STATUS]
    assert w.va is not None and "finalizers" not in w.va["metadata"]
    assert w.va["status"]["attachError"] == {
        "message": 'failed to load secret "ns/gone": secrets "gone" not found',
        "time": NOW_TEXT,
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (ApiError(403, "Forbidden", 'secrets "s" is forbidden'), 'secrets "s" is forbidden'),
        ({"data": {"password": "not base64!"}}, "key 'password' is not valid base64"),
    ],
)
def test_unreadable_secret_is_an_attach_error_without_its_value(answer: Any, message: str):
    va = make_va(finalizers=[FINALIZER])
    (read,) = decide(va, pv=make_pv(finalizers=[FINALIZER], secret=("ns", "s")))
    assert isinstance(read, a.Read)
    failed = read.on_error(answer) if isinstance(answer, ApiError) else read.then(answer)
    patch = failed[0]
    assert isinstance(patch, a.Patch)
    text = patch.body["status"]["attachError"]["message"]
    assert text.startswith('failed to load secret "ns/s": ') and message in text
    assert "not base64!" not in repr(failed)
    assert isinstance(outcome_of(failed), a.Retry)


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
    w = world(va=va, pv=pv, csinode=csinode, pods=[POD])
    assert w.sync() == "requeue"
    assert w.log == ([PV_PATCH] if pv_finalized else []) + [VA_STATUS]
    assert w.requests == []
    assert w.va is not None and "finalizers" not in w.va["metadata"]
    assert w.va["status"]["attachError"] == {"message": message, "time": NOW_TEXT}
    warnings = [(e, kind) for e, kind, _ in w.events if e.reason == "FailedAttachVolume"]
    assert warnings and all(message in e.message for e, _ in warnings)
    # The pods using the volume hear of it too, when the PV (and so its claim) is known.
    assert [kind for _, kind in warnings] == ["VolumeAttachment"] + (["Pod"] if pv else [])


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

    w = world(publish=publish, pods=[POD, STRANGER])
    assert w.sync() == "requeue"
    assert w.log == [PV_PATCH, VA_PATCH, ("publish", "vol-1", "csi-node-1"), VA_STATUS]
    assert w.va is not None
    assert w.va["metadata"]["finalizers"] == [FINALIZER]
    assert w.va["status"]["attached"] is False
    attach_error = w.va["status"]["attachError"]
    assert attach_error["errorCode"] == code
    assert attach_error["message"].endswith("desc = disk busy")
    assert attach_error["time"] == NOW_TEXT
    assert [(kind, obj) for _, kind, obj in w.events] == [
        ("VolumeAttachment", "va1"),
        ("Pod", "app"),
    ]
    assert w.pod_lists == [("default", "spec.nodeName=node1")]
    failed = call_of(decide(make_va(finalizers=[FINALIZER]))).on_error(error)
    outcome = outcome_of(failed)
    assert isinstance(outcome, a.Retry)
    assert ("may still be working" not in outcome.reason) is final


def test_error_code_gate_off_and_non_grpc_errors():
    va = make_va()
    off = config(error_codes=False)
    failed = call_of(decide(va, cfg=off)).on_error(rpc_error(grpc.StatusCode.INTERNAL))
    patch = failed[0]
    assert isinstance(patch, a.Patch)
    assert patch.body["status"]["attachError"]["errorCode"] is None
    failed = call_of(decide(va)).on_error(RuntimeError("x"))
    patch = failed[0]
    assert isinstance(patch, a.Patch)
    assert patch.body["status"]["attachError"] == {
        "message": "x",
        "time": NOW_TEXT,
        "errorCode": None,
    }
    outcome = outcome_of(failed)
    assert isinstance(outcome, a.Retry) and "may still be working" in outcome.reason


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
    assert decide(va, pv=make_pv(handle="h")) == (a.Done("already attached"),)


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


def test_detach_info_backfill_is_best_effort():
    va = make_va(attached=True, finalizers=[FINALIZER], annotations={names.NODE_ID_ANNOTATION: "x"})
    patch, done = decide(va, pv=make_pv(finalizers=[FINALIZER]))
    assert isinstance(patch, a.Patch) and patch.on_error is not None
    assert isinstance(done, a.Done)
    assert isinstance(patch.on_error(ApiError(500, "InternalError", "x"))[-1], a.Done)
    assert isinstance(patch.on_error(ApiError(422, "Invalid", "test failed"))[-1], a.Redecide)


def test_no_backfill_without_finalizer_or_when_disabled():
    va = make_va(attached=True)
    assert decide(va, csinode=None) == (a.Done("already attached"),)
    va = make_va(attached=True, finalizers=[FINALIZER])
    cfg = config(record_detach_info=False)
    assert decide(va, cfg=cfg, csinode=None) == (a.Done("already attached"),)


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
    w = world(cfg=config(record_detach_info=False))
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
    def fail(patch: a.Patch) -> ApiError | None:
        if patch.resource.kind == failing_kind and patch.subresource is None:
            return ApiError(500, "InternalError", "etcd timeout")
        return None

    w = world(fail_patch=fail)
    assert w.sync() == "requeue"
    assert w.requests == []
    assert w.va is not None
    assert w.va["status"]["attachError"]["message"].startswith(message)
    assert "etcd timeout" in w.va["status"]["attachError"]["message"]


@pytest.mark.parametrize("failing_kind", ["PersistentVolume", "VolumeAttachment"])
@pytest.mark.parametrize("status", [409, 422])
def test_stale_copy_is_decided_again(failing_kind: str, status: int):
    failures = [ApiError(status, "Conflict" if status == 409 else "Invalid", "test failed")]

    def fail(patch: a.Patch) -> ApiError | None:
        if patch.resource.kind == failing_kind and patch.type == "json" and failures:
            return failures.pop()
        return None

    w = world(fail_patch=fail)
    assert w.sync() == "forget"
    assert w.visits == 2
    assert w.log[-2:] == [("publish", "vol-1", "csi-node-1"), VA_STATUS]
    assert w.va is not None and "attachError" not in w.va["status"]


def test_other_driver_is_ignored():
    va = make_va(attacher="other.csi.example.com")
    (done,) = decide(va)
    assert isinstance(done, a.Done) and "other.csi.example.com" in done.reason
    w = world(va=va)
    assert w.sync() == "forget" and w.log == []


def test_trivial_handler_marks_attached_without_finalizers():
    trivial = config(trivial=True)
    w = world(cfg=trivial, va=make_va(), pv=None, csinode=None)
    assert w.sync() == "forget"
    assert w.log == [VA_STATUS]
    assert w.va is not None
    assert w.va["status"] == {"attached": True}
    assert "finalizers" not in w.va["metadata"]
    w.log.clear()
    assert w.sync() == "forget" and w.log == []


def test_trivial_handler_ignores_deletion_like_go():
    trivial = config(trivial=True)
    patch, done = decide(make_va(deleting=True), cfg=trivial, pv=None, csinode=None)
    assert isinstance(patch, a.Patch) and isinstance(done, a.Done)
    assert patch.body == {
        "status": {"attached": True, "attachmentMetadata": None, "attachError": None}
    }
    attached = make_va(deleting=True, attached=True)
    assert decide(attached, cfg=trivial, pv=None, csinode=None) == (a.Done("already attached"),)
