"""CreateVolume response guards and the PersistentVolume object."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import Event
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import pv as pvmod
from csi_sidecars.provisioner.decide.request import plan_provision
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from tests.unit.provisioner.objs import DRIVER, UID, Cap, options, pvc, sc

P = "csi.storage.k8s.io/"
IDENTITY = "1700000000000-1234-" + DRIVER
GI = 1 << 30


def response(**volume: Any) -> csi_pb2.CreateVolumeResponse:
    volume.setdefault("volume_id", "vol-1")
    return csi_pb2.CreateVolumeResponse(volume=csi_pb2.Volume(**volume))


def make(claim: dict[str, Any] | None = None, cls: dict[str, Any] | None = None, **kw: Any) -> Any:
    claim = claim or pvc()
    cls = cls or sc()
    return plan_provision(claim, cls, options(**kw)), claim, cls


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (response(capacity_bytes=GI), GI),
        (response(capacity_bytes=2 * GI), 2 * GI),
        (response(capacity_bytes=0), GI),
    ],
)
def test_capacity(resp: csi_pb2.CreateVolumeResponse, expected: int) -> None:
    plan, claim, _ = make()
    assert pvmod.check_create_response(plan, claim, resp) == expected


@pytest.mark.parametrize(
    "resp",
    [None, csi_pb2.CreateVolumeResponse(), response(volume_id="")],
    ids=["none", "no-volume", "no-id"],
)
def test_missing_volume_is_an_error_not_a_crash(resp: Any) -> None:
    plan, claim, _ = make()
    with pytest.raises(ProvisionError) as exc:
        pvmod.check_create_response(plan, claim, resp)
    assert exc.value.state == ProvisioningState.IN_BACKGROUND
    assert not isinstance(exc.value, pvmod.CleanupRequired)


def test_short_capacity_needs_cleanup() -> None:
    plan, claim, _ = make()
    with pytest.raises(pvmod.CleanupRequired) as exc:
        pvmod.check_create_response(plan, claim, response(capacity_bytes=GI - 1))
    err = exc.value
    assert err.volume_id == "vol-1" and err.state == ProvisioningState.IN_BACKGROUND
    assert str(err) == f"created volume capacity {GI - 1} less than requested capacity {GI}"
    assert str(pvmod.cleanup_outcome(err, None)) == str(err)
    failed = pvmod.cleanup_outcome(err, "rpc error: code = Internal desc = boom")
    assert str(failed) == (
        f"created volume capacity {GI - 1} less than requested capacity {GI}. Cleanup of volume "
        "vol-1 failed, volume is orphaned: rpc error: code = Internal desc = boom"
    )
    assert failed.state == ProvisioningState.IN_BACKGROUND


def test_negative_capacity_is_short() -> None:
    plan, claim, _ = make()
    with pytest.raises(pvmod.CleanupRequired):
        pvmod.check_create_response(plan, claim, response(capacity_bytes=-5))


def test_clone_without_content_source_needs_cleanup() -> None:
    claim = pvc(dataSource={"kind": "PersistentVolumeClaim", "name": "src"})
    plan, claim, _ = make(
        claim, controller_capabilities={Cap.CREATE_DELETE_VOLUME, Cap.CLONE_VOLUME}
    )
    with pytest.raises(pvmod.CleanupRequired, match="volume content source missing") as exc:
        pvmod.check_create_response(plan, claim, response())
    assert "cleanup of volume vol-1 failed" in str(pvmod.cleanup_outcome(exc.value, "x"))
    ok = response(content_source=csi_pb2.VolumeContentSource(
        volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id="src")))  # fmt: skip
    assert pvmod.check_create_response(plan, claim, ok) == GI


def test_oversize_volume_context() -> None:
    plan, claim, _ = make()
    big = {"k": "x" * (pvmod.MAX_VOLUME_CONTEXT_BYTES + 1)}
    with pytest.raises(pvmod.CleanupRequired, match="volume context of") as exc:
        pvmod.check_create_response(plan, claim, response(volume_context=big))
    assert exc.value.state == ProvisioningState.FINISHED
    assert pvmod.cleanup_outcome(exc.value, "down").state == ProvisioningState.IN_BACKGROUND


def build(claim: dict[str, Any] | None = None, cls: dict[str, Any] | None = None,
          resp: csi_pb2.CreateVolumeResponse | None = None,
          **kw: Any) -> dict[str, Any]:  # fmt: skip
    build_kw = {k: kw.pop(k) for k in ("supports_topology", "controller_publish_readonly",
                                       "vac_gate") if k in kw}  # fmt: skip
    plan, claim, cls = make(claim, cls, **kw)
    resp = resp or response(capacity_bytes=GI)
    capacity = pvmod.check_create_response(plan, claim, resp)
    build_kw.setdefault("supports_topology", False)
    return pvmod.build_pv(
        plan, claim, cls, resp.volume, capacity, driver=DRIVER, identity=IDENTITY, **build_kw
    )


def test_pv_exactly() -> None:
    cls = sc(
        parameters={
            P + "fstype": "ext4",
            P + "provisioner-secret-name": "prov",
            P + "provisioner-secret-namespace": "ns1",
            P + "controller-publish-secret-name": "cp",
            P + "controller-publish-secret-namespace": "ns2",
            P + "node-stage-secret-name": "st",
            P + "node-stage-secret-namespace": "ns3",
            P + "node-publish-secret-name": "np",
            P + "node-publish-secret-namespace": "ns4",
            P + "controller-expand-secret-name": "ce",
            P + "controller-expand-secret-namespace": "ns5",
            P + "node-expand-secret-name": "ne",
            P + "node-expand-secret-namespace": "ns6",
            P + "controller-modify-secret-name": "cm",
            P + "controller-modify-secret-namespace": "ns7",
        },
        mountOptions=["noatime"],
    )
    resp = response(
        capacity_bytes=2 * GI,
        volume_context={"a": "b"},
        accessible_topology=[csi_pb2.Topology(segments={"zone": "z1"})],
    )
    got = build(pvc(volumeMode="Filesystem"), cls, resp, supports_topology=True)
    assert got == {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{UID}",
            "annotations": {
                "pv.kubernetes.io/provisioned-by": DRIVER,
                "volume.kubernetes.io/provisioner-deletion-secret-name": "prov",
                "volume.kubernetes.io/provisioner-deletion-secret-namespace": "ns1",
                "volume.kubernetes.io/controller-modify-secret-name": "cm",
                "volume.kubernetes.io/controller-modify-secret-namespace": "ns7",
            },
            "finalizers": ["external-provisioner.volume.kubernetes.io/finalizer"],
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "2Gi"},
            "mountOptions": ["noatime"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
            "nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}
            ]}},
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "namespace": "default",
                "name": "data",
                "uid": UID,
                "apiVersion": "v1",
                "resourceVersion": "42",
            },
            "csi": {
                "driver": DRIVER,
                "volumeHandle": "vol-1",
                "fsType": "ext4",
                "volumeAttributes": {
                    "a": "b",
                    "storage.kubernetes.io/csiProvisionerIdentity": IDENTITY,
                },
                "controllerPublishSecretRef": {"name": "cp", "namespace": "ns2"},
                "nodeStageSecretRef": {"name": "st", "namespace": "ns3"},
                "nodePublishSecretRef": {"name": "np", "namespace": "ns4"},
                "controllerExpandSecretRef": {"name": "ce", "namespace": "ns5"},
                "nodeExpandSecretRef": {"name": "ne", "namespace": "ns6"},
            },
        },
    }  # fmt: skip


def test_no_secrets_writes_empty_deletion_annotations() -> None:
    ann = build()["metadata"]["annotations"]
    assert ann["volume.kubernetes.io/provisioner-deletion-secret-name"] == ""
    assert ann["volume.kubernetes.io/provisioner-deletion-secret-namespace"] == ""
    assert "volume.kubernetes.io/controller-modify-secret-name" not in ann


@pytest.mark.parametrize(
    ("policy", "finalizers"),
    [("Delete", ["external-provisioner.volume.kubernetes.io/finalizer"]), ("Retain", None)],
)
def test_finalizer_only_for_delete(policy: str, finalizers: list[str] | None) -> None:
    got = build(cls=sc(reclaimPolicy=policy))
    assert got["metadata"].get("finalizers") == finalizers
    assert got["spec"]["persistentVolumeReclaimPolicy"] == policy


def test_block_pv_has_no_fstype_and_no_topology_without_support() -> None:
    resp = response(capacity_bytes=GI, accessible_topology=[csi_pb2.Topology(segments={"z": "1"})])
    got = build(pvc(volumeMode="Block"), sc(parameters={P + "fstype": "xfs"}), resp)
    assert "fsType" not in got["spec"]["csi"]
    assert got["spec"]["volumeMode"] == "Block"
    assert "nodeAffinity" not in got["spec"]


def test_driver_context_overrides_identity_key() -> None:
    resp = response(volume_context={"storage.kubernetes.io/csiProvisionerIdentity": "drv"})
    attrs = build(resp=resp)["spec"]["csi"]["volumeAttributes"]
    assert attrs == {"storage.kubernetes.io/csiProvisionerIdentity": "drv"}


@pytest.mark.parametrize(
    ("modes", "flag", "read_only"),
    [
        (["ReadOnlyMany"], True, True),
        (["ReadOnlyMany"], False, False),
        (["ReadOnlyMany", "ReadWriteMany"], True, False),
        (["ReadWriteOnce"], True, False),
    ],
)
def test_controller_publish_readonly(modes: list[str], flag: bool, read_only: bool) -> None:
    got = build(pvc(access_modes=modes), controller_publish_readonly=flag)
    assert got["spec"]["csi"].get("readOnly", False) is read_only


def test_vac_name_written_with_gate() -> None:
    caps = {Cap.CREATE_DELETE_VOLUME, Cap.MODIFY_VOLUME}
    claim = pvc(volumeAttributesClassName="gold")
    assert build(claim, controller_capabilities=caps)["spec"]["volumeAttributesClassName"] == "gold"
    assert (
        "volumeAttributesClassName"
        not in build(claim, controller_capabilities=caps, vac_gate=False)["spec"]
    )


def test_pv_belongs_to_claim() -> None:
    claim = pvc()
    pv = build(claim)
    assert pvmod.pv_belongs_to_claim(pv, claim)
    other = {**pv, "spec": {**pv["spec"], "claimRef": {"uid": "other"}}}
    assert not pvmod.pv_belongs_to_claim(other, claim)
    assert not pvmod.pv_belongs_to_claim(None, claim)


def test_save_pv_counts_our_own_pv_as_saved() -> None:
    claim = pvc()
    obj = build(claim)
    (create,) = pvmod.save_pv(obj, claim, announce=True)
    assert isinstance(create, a.Create) and create.exists_ok and create.body is obj
    assert create.then is not None
    event = Event("Normal", "ProvisioningSucceeded", f"Successfully provisioned volume pvc-{UID}")
    assert create.then(obj) == (a.Emit(event, claim, PERSISTENT_VOLUME_CLAIMS), a.Done())
    (quiet,) = pvmod.save_pv(obj, claim)
    assert isinstance(quiet, a.Create) and quiet.then is not None
    assert quiet.then(obj) == (a.Done(),)
    other = {**obj, "spec": {**obj["spec"], "claimRef": {"uid": "someone-else"}}}
    (retry,) = create.then(other)
    assert retry == a.Retry(
        f'persistentvolumes "pvc-{UID}" already exists and is bound to another claim'
    )
