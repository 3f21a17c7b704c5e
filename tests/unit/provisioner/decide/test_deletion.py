"""Deletion decisions."""

from __future__ import annotations

import base64
from typing import Any

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.patch import JSON_PATCH_REJECTED
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, SECRETS, ApiError
from csi_sidecars.provisioner.decide import deletion as dl
from csi_sidecars.provisioner.decide.secrets import SecretRef
from tests.unit.provisioner.objs import DRIVER, sc

FIN = "external-provisioner.volume.kubernetes.io/finalizer"
PROTECTION = "kubernetes.io/pv-protection"
NOT_FOUND = grpc.StatusCode.NOT_FOUND
P = "csi.storage.k8s.io/"


def pv(
    *,
    annotations: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    policy: str = "Delete",
    phase: str = "Released",
    deleting: bool = False,
    csi: dict[str, Any] | None = None,
    storage_class: str = "fast",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "pvc-1", "annotations": annotations or {}}
    if finalizers is not None:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": storage_class,
            "csi": {"driver": DRIVER, "volumeHandle": "vol-1"} if csi is None else csi,
            "claimRef": {"name": "data", "namespace": "team"},
        },
        "status": {"phase": phase},
    }


BY = "pv.kubernetes.io/provisioned-by"
MIG = "pv.kubernetes.io/migrated-to"


@pytest.mark.parametrize(
    ("obj", "owned"),
    [
        (pv(annotations={BY: DRIVER}), True),
        (pv(annotations={BY: "other"}), False),
        (pv(annotations={BY: "kubernetes.io/aws-ebs", MIG: DRIVER}), True),
        (pv(), True),  # statically provisioned CSI PV of our driver
        (pv(csi={"driver": "other", "volumeHandle": "h"}), False),
        ({"metadata": {"annotations": {MIG: DRIVER}}, "spec": {}}, True),
        ({"metadata": {}, "spec": {"nfs": {}}}, False),
    ],
)
def test_owns_volume(obj: dict[str, Any], owned: bool) -> None:
    assert dl.owns_volume(obj, {DRIVER}) is owned


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pv(phase="Bound", finalizers=["x"]), ["x", FIN]),
        (pv(phase="Bound", finalizers=[FIN]), None),
        (pv(phase="Released"), None),
        (pv(phase="Bound", deleting=True), None),
        (pv(phase="Bound", policy="Retain", finalizers=["x", FIN]), ["x"]),
        (pv(phase="Bound", policy="Recycle", finalizers=[FIN]), []),
        (pv(phase="Bound", policy="Retain"), None),
    ],
)
def test_protection_finalizers(obj: dict[str, Any], expected: list[str] | None) -> None:
    assert dl.protection_finalizers(obj) == expected


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pv(), True),
        (pv(phase="Bound"), False),
        (pv(policy="Retain"), False),
        (pv(deleting=True, finalizers=[FIN]), True),
        (pv(deleting=True, finalizers=["other"]), False),
    ],
)
def test_should_delete(obj: dict[str, Any], expected: bool) -> None:
    assert dl.should_delete(obj) is expected


def test_release_plan_removes_only_our_entry() -> None:
    done = a.Done("x")
    (patch,) = dl.release_plan(pv(finalizers=["a", FIN]), done)
    assert isinstance(patch, a.Patch) and patch.type == "json" and patch.name == "pvc-1"
    assert patch.body == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": FIN},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    assert patch.then is not None and patch.then({}) == (done,)
    assert dl.release_plan(pv(finalizers=["a"]), done) == (done,)


def test_release_plan_rereads_after_a_conflict_and_gives_up_in_the_end() -> None:
    (patch,) = dl.release_plan(pv(finalizers=["a", FIN]))
    assert patch.on_error is not None
    (read,) = patch.on_error(ApiError(422, "Invalid", JSON_PATCH_REJECTED))
    assert isinstance(read, a.Read) and read.resource == PERSISTENT_VOLUMES
    (again,) = read.then(pv(finalizers=[FIN]))
    assert isinstance(again, a.Patch) and again.body[0]["path"] == "/metadata/finalizers/0"
    assert read.then(None) == (a.Done(),)  # the PV is gone: nothing to remove
    assert patch.on_error(ApiError(404, "NotFound", "gone")) == (a.Done(),)
    (failed,) = patch.on_error(ApiError(500, "InternalError", "etcd"))
    assert failed == dl.FinalizerPending("failed to remove the PV finalizer: etcd")
    (last,) = dl.release_plan(pv(finalizers=[FIN]), attempts=1)
    assert isinstance(last, a.Patch) and last.on_error is not None
    assert isinstance(last.on_error(ApiError(409, "Conflict", "changed"))[0], dl.FinalizerPending)


def _rpc(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def plan_of(obj: dict[str, Any], **kw: Any) -> a.Plan:
    kw.setdefault("storage_class", None)
    kw.setdefault("attachments", None)
    return dl.volume_plan(obj, known_names={DRIVER}, **kw)


@pytest.mark.parametrize(
    ("obj", "op"),
    [
        (pv(phase="Bound", finalizers=["x"]), "add"),
        (pv(phase="Bound", policy="Retain", finalizers=["x", FIN]), "remove"),
    ],
)
def test_volume_plan_keeps_the_protection_finalizer(obj: dict[str, Any], op: str) -> None:
    (patch,) = plan_of(obj)
    assert isinstance(patch, a.Patch) and patch.type == "json"
    assert patch.body[-1]["op"] == op
    assert patch.then is not None and patch.then({}) == (a.Done(),)


@pytest.mark.parametrize(
    "obj",
    [
        pv(annotations={BY: "other"}),  # not ours
        pv(phase="Bound", finalizers=[FIN]),  # protected already
        pv(policy="Retain"),  # Released, kept
        pv(deleting=True, finalizers=["other"]),  # deleted by someone, our part done
    ],
)
def test_volume_plan_has_nothing_to_do(obj: dict[str, Any]) -> None:
    assert plan_of(obj) == (a.Done(),)


def test_volume_plan_deletes_volume_then_object_then_finalizer() -> None:
    obj = pv(finalizers=[FIN, PROTECTION])
    obj["metadata"]["uid"] = "pv-uid"
    (call,) = plan_of(obj)
    assert isinstance(call, a.Call) and (call.service, call.method) == (
        "controller",
        "DeleteVolume",
    )
    assert call.request == csi_pb2.DeleteVolumeRequest(volume_id="vol-1")
    for after in (call.then(csi_pb2.DeleteVolumeResponse()), call.on_error(_rpc(NOT_FOUND))):
        delete, patch = after
        assert delete == a.Delete(PERSISTENT_VOLUMES, "pvc-1", uid="pv-uid")
        assert isinstance(patch, a.Patch) and patch.body[0]["path"] == "/metadata/finalizers/0"
        assert patch.then is not None
        assert patch.then({}) == (dl.VolumeDeleted(storage_class="fast", volume_id="vol-1"),)
    emit, failed = call.on_error(_rpc(grpc.StatusCode.INTERNAL, "busy"))
    assert isinstance(emit, a.Emit) and emit.resource == PERSISTENT_VOLUMES
    assert emit.event.reason == "VolumeFailedDelete"
    assert emit.event.message == "rpc error: code = Internal desc = busy"
    assert failed == dl.DeleteFailed("rpc error: code = Internal desc = busy", storage_class="fast")


def test_volume_plan_reads_the_secret_and_never_sends_half_of_it() -> None:
    obj = pv(annotations={NAME: "creds", NS: "team"})
    (read,) = plan_of(obj)
    assert isinstance(read, a.Read) and (read.resource, read.name, read.namespace) == (
        SECRETS,
        "creds",
        "team",
    )
    good = {"metadata": {"name": "creds"}, "data": {"user": base64.b64encode(b"admin").decode()}}
    (call,) = read.then(good)
    assert isinstance(call, a.Call) and dict(call.request.secrets) == {"user": "admin"}
    # A Secret that cannot be read does not stop the deletion (as Go) ...
    for without in (read.then(None), read.on_error(ApiError(403, "Forbidden", "no"))):
        (call,) = without
        assert isinstance(call, a.Call) and not call.request.secrets
    # ... a malformed one does: an event naming it, never the value.
    emit, failed = read.then({**good, "data": {"user": "not base64!"}})
    assert isinstance(emit, a.Emit) and "team/creds" in emit.event.message
    assert "not base64" not in emit.event.message
    assert isinstance(failed, dl.DeleteFailed)


@pytest.mark.parametrize(
    ("obj", "attachments", "message"),
    [
        (pv(), [{"spec": {"nodeName": "n1", "source": {"persistentVolumeName": "pvc-1"}}}],
         "persistentvolume pvc-1 is still attached to node n1"),
        (pv(csi={"driver": DRIVER}), None, "invalid CSI PV"),
    ],
)  # fmt: skip
def test_volume_plan_refuses_with_an_event(
    obj: dict[str, Any], attachments: list[dict[str, Any]] | None, message: str
) -> None:
    emit, failed = plan_of(obj, attachments=attachments)
    assert isinstance(emit, a.Emit) and emit.event.message == message
    assert failed == dl.DeleteFailed(message, storage_class="fast")


def test_volume_plan_after_our_delete_only_removes_the_finalizer() -> None:
    obj = pv(deleting=True, finalizers=[FIN])
    (patch,) = plan_of(obj, volume_deleted=True)
    assert isinstance(patch, a.Patch) and patch.body[-1] == {
        "op": "remove",
        "path": "/metadata/finalizers/0",
    }
    assert isinstance(plan_of(obj)[0], a.Call)  # without that memory: DeleteVolume again


NAME = "volume.kubernetes.io/provisioner-deletion-secret-name"
NS = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
SC_SECRET = sc(parameters={P + "provisioner-secret-name": "${pvc.name}-s",
                           P + "provisioner-secret-namespace": "${pvc.namespace}"})  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "cls", "expected"),
    [
        (pv(annotations={NAME: "s", NS: "n"}), SC_SECRET,
         dl.DeletionSecret(SecretRef("s", "n"), "annotations")),
        (pv(annotations={NAME: "", NS: ""}), SC_SECRET, dl.DeletionSecret(None, "none")),
        (pv(annotations={NAME: "s", NS: ""}), SC_SECRET, dl.DeletionSecret(None, "none")),
        (pv(), SC_SECRET, dl.DeletionSecret(SecretRef("data-s", "team"), "storageclass")),
        (pv(annotations={NAME: "s"}), SC_SECRET,
         dl.DeletionSecret(SecretRef("data-s", "team"), "storageclass")),
        (pv(), None, dl.DeletionSecret(None, "none")),
        (pv(storage_class=""), SC_SECRET, dl.DeletionSecret(None, "none")),
        (pv(), sc(), dl.DeletionSecret(None, "none")),
    ],
)  # fmt: skip
def test_deletion_secret(
    obj: dict[str, Any], cls: dict[str, Any] | None, expected: dl.DeletionSecret
) -> None:
    assert dl.deletion_secret(obj, cls) == expected


def test_deletion_secret_without_claim_ref() -> None:
    obj = pv()
    del obj["spec"]["claimRef"]
    assert dl.deletion_secret(obj, SC_SECRET) == dl.DeletionSecret(None, "none")


def test_deletion_secret_template_error() -> None:
    cls = sc(parameters={P + "provisioner-secret-name": "${pvc.annotations['a']}",
                         P + "provisioner-secret-namespace": "ns"})  # fmt: skip
    with pytest.raises(dl.DeleteError, match="failed to get secretreference for volume pvc-1: "):
        dl.deletion_secret(pv(), cls)


def test_attachment_blocker() -> None:
    vas = [
        {"spec": {"nodeName": "n1", "source": {"persistentVolumeName": "other"}}},
        {"spec": {"nodeName": "n2", "source": {"persistentVolumeName": "pvc-1"}}},
    ]
    assert (
        dl.attachment_blocker("pvc-1", vas) == "persistentvolume pvc-1 is still attached to node n2"
    )
    assert dl.attachment_blocker("pvc-1", vas[:1]) is None
    assert dl.attachment_blocker("pvc-1", [{"spec": {"source": {"inlineVolumeSpec": {}}}}]) is None


def test_build_delete_request() -> None:
    assert dl.build_delete_request(pv(), {"k": "v"}) == csi_pb2.DeleteVolumeRequest(
        volume_id="vol-1", secrets={"k": "v"}
    )
    with pytest.raises(dl.DeleteError, match="invalid CSI PV"):
        dl.build_delete_request({"metadata": {}, "spec": {"nfs": {}}})
