"""Deletion decisions."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner import deletion as dl
from csi_sidecars.provisioner.secrets import SecretRef
from tests.unit.provisioner.objs import DRIVER, sc

FIN = "external-provisioner.volume.kubernetes.io/finalizer"
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


def test_finalizers_after_delete() -> None:
    assert dl.finalizers_after_delete(pv(finalizers=["a", FIN])) == ["a"]
    assert dl.finalizers_after_delete(pv(finalizers=["a"])) is None


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
