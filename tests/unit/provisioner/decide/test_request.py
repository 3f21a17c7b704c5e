"""CreateVolumeRequest building."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner.decide import request as rq
from csi_sidecars.provisioner.decide import sources as src
from csi_sidecars.provisioner.decide.request import (
    build_create_request,
    make_volume_name,
    plan_provision,
)
from csi_sidecars.provisioner.decide.secrets import SecretRef
from csi_sidecars.provisioner.decide.states import (
    Ignored,
    IgnoredError,
    ProvisionError,
    ProvisioningState,
)
from csi_sidecars.provisioner.decide.topology import TopologyRequirement
from tests.unit.provisioner.objs import DRIVER, UID, Cap, Plugin, options, pvc, sc

Mode = csi_pb2.VolumeCapability.AccessMode
P = "csi.storage.k8s.io/"


@pytest.mark.parametrize(
    ("prefix", "length", "expected"),
    [
        ("pvc", -1, f"pvc-{UID}"),
        ("vol", 8, "vol-0b1c2d3e"),
        ("pvc", 32, "pvc-" + UID.replace("-", "")),
        ("pvc", 1, "pvc-0"),
    ],
)
def test_volume_name(prefix: str, length: int, expected: str) -> None:
    assert make_volume_name(prefix, UID, length) == expected


@pytest.mark.parametrize(
    ("prefix", "uid", "length", "message"),
    [
        ("", UID, -1, "volume name prefix cannot be of length 0"),
        ("pvc", "", -1, "corrupted PVC object, it is missing UID"),
        ("pvc", UID, 33, "out of range"),
        ("pvc", UID, -5, "out of range"),
    ],
)
def test_volume_name_errors(prefix: str, uid: str, length: int, message: str) -> None:
    with pytest.raises(ProvisionError, match=message) as exc:
        make_volume_name(prefix, uid, length)
    assert exc.value.state == ProvisioningState.FINISHED


def test_strip_parameters_keeps_deprecated_and_drops_reserved() -> None:
    params = {
        "type": "ssd",
        "fstype": "xfs",
        "csiProvisionerSecretName": "s",
        P + "fstype": "ext4",
        P + "provisioner-secret-name": "x",
        P + "controller-modify-secret-namespace": "y",
    }
    assert rq.strip_reserved_parameters(params) == {
        "type": "ssd",
        "fstype": "xfs",
        "csiProvisionerSecretName": "s",
    }


def test_strip_parameters_unknown_reserved_key() -> None:
    with pytest.raises(ProvisionError) as exc:
        rq.strip_reserved_parameters({P + "pvc/name": "x"})
    assert str(exc.value) == (
        "failed to strip CSI Parameters of prefixed keys: found unknown parameter key "
        '"csi.storage.k8s.io/pvc/name" with reserved namespace csi.storage.k8s.io/'
    )
    assert exc.value.state == ProvisioningState.FINISHED


@pytest.mark.parametrize(
    ("params", "default", "expected"),
    [
        ({}, "", ("", False)),
        ({}, "ext4", ("ext4", False)),
        ({P + "fstype": "xfs"}, "ext4", ("xfs", False)),
        ({"fstype": "xfs"}, "ext4", ("xfs", True)),
        ({"FsType": "btrfs"}, "", ("btrfs", True)),
        ({P + "fstype": ""}, "ext4", ("ext4", False)),
    ],
)
def test_fstype(params: dict[str, str], default: str, expected: tuple[str, bool]) -> None:
    assert rq.resolve_fstype(params, default) == expected


@pytest.mark.parametrize(
    "params", [{"fstype": "a", P + "fstype": "b"}, {"fstype": "a", "FSTYPE": "b"}]
)
def test_fstype_twice(params: dict[str, str]) -> None:
    with pytest.raises(ProvisionError, match=r'with both "fstype" and "csi\.storage\.k8s\.io/'):
        rq.resolve_fstype(params, "")


@pytest.mark.parametrize(
    ("mode", "snmw", "expected"),
    [
        ("ReadWriteOnce", False, Mode.SINGLE_NODE_WRITER),
        ("ReadWriteOnce", True, Mode.SINGLE_NODE_MULTI_WRITER),
        ("ReadWriteOncePod", False, Mode.SINGLE_NODE_WRITER),
        ("ReadWriteOncePod", True, Mode.SINGLE_NODE_SINGLE_WRITER),
        ("ReadOnlyMany", False, Mode.MULTI_NODE_READER_ONLY),
        ("ReadOnlyMany", True, Mode.MULTI_NODE_READER_ONLY),
        ("ReadWriteMany", False, Mode.MULTI_NODE_MULTI_WRITER),
        ("ReadWriteMany", True, Mode.MULTI_NODE_MULTI_WRITER),
    ],
)
def test_access_modes(mode: str, snmw: bool, expected: int) -> None:
    assert rq.access_mode(mode, snmw) == expected


def test_unknown_access_mode() -> None:
    with pytest.raises(ProvisionError, match=r"unsupported AccessMode combination: \[Foo\]"):
        rq.access_mode("Foo", False)


def test_capabilities_mount_and_block() -> None:
    claim = pvc(access_modes=["ReadWriteOnce", "ReadOnlyMany"])
    caps = rq.volume_capabilities(claim, sc(mountOptions=["ro", "noatime"]), "ext4", False)
    assert [c.access_mode.mode for c in caps] == [
        Mode.SINGLE_NODE_WRITER,
        Mode.MULTI_NODE_READER_ONLY,
    ]
    assert all(c.mount.fs_type == "ext4" for c in caps)
    assert list(caps[0].mount.mount_flags) == ["ro", "noatime"]
    block = rq.volume_capabilities(pvc(volumeMode="Block"), sc(mountOptions=["x"]), "ext4", False)
    assert block[0].HasField("block") and not block[0].HasField("mount")


@pytest.mark.parametrize(
    ("storage", "expected"),
    [("1Gi", 1 << 30), ("1.5Gi", 3 << 29), ("100m", 1), ("1e9", 10**9), (None, 0), ("0", 0)],
)
def test_requested_bytes(storage: str | None, expected: int) -> None:
    assert src.requested_bytes(pvc(storage=storage)) == expected


def test_requested_bytes_malformed() -> None:
    with pytest.raises(ProvisionError, match="invalid storage request"):
        src.requested_bytes(pvc(storage="lots"))


def full_plan(**kw: Any) -> rq.ProvisionPlan:
    claim = kw.pop("claim", pvc())
    cls = kw.pop("cls", sc())
    return plan_provision(claim, cls, options(**kw))


def test_plan_and_request_exactly() -> None:
    cls = sc(
        parameters={
            "type": "ssd",
            P + "fstype": "xfs",
            P + "provisioner-secret-name": "prov-${pvc.name}",
            P + "provisioner-secret-namespace": "${pvc.namespace}",
            P + "node-stage-secret-name": "stage",
            P + "node-stage-secret-namespace": "kube-system",
        },
        mountOptions=["noatime"],
    )
    plan = full_plan(cls=cls, extra_create_metadata=True)
    assert plan.name == f"pvc-{UID}"
    assert plan.provisioner_secret == SecretRef("prov-data", "default")
    assert plan.secret_refs["NodeStage"] == SecretRef("stage", "kube-system")
    assert plan.secret_refs["NodePublish"] is None
    req = build_create_request(
        plan,
        secrets_data={"password": "s3cr3t"},
        requirement=TopologyRequirement(((("zone", "a"),),), ((("zone", "a"),),)),
        mutable={"iops": "100"},
    )
    expected = csi_pb2.CreateVolumeRequest(
        name=f"pvc-{UID}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[
            csi_pb2.VolumeCapability(
                mount=csi_pb2.VolumeCapability.MountVolume(fs_type="xfs", mount_flags=["noatime"]),
                access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER),
            )
        ],
        parameters={
            "type": "ssd",
            P + "pvc/name": "data",
            P + "pvc/namespace": "default",
            P + "pv/name": f"pvc-{UID}",
        },
        secrets={"password": "s3cr3t"},
        accessibility_requirements=csi_pb2.TopologyRequirement(
            requisite=[csi_pb2.Topology(segments={"zone": "a"})],
            preferred=[csi_pb2.Topology(segments={"zone": "a"})],
        ),
        mutable_parameters={"iops": "100"},
    )
    assert req == expected
    assert not req.capacity_range.limit_bytes


def test_default_fstype_and_block() -> None:
    assert full_plan(default_fstype="ext4").fs_type == "ext4"
    plan = full_plan(claim=pvc(volumeMode="Block"), default_fstype="ext4")
    assert plan.block and plan.capabilities[0].HasField("block")


def test_snmw_capability_changes_rwo() -> None:
    plan = full_plan(
        controller_capabilities={Cap.CREATE_DELETE_VOLUME, Cap.SINGLE_NODE_MULTI_WRITER},
        claim=pvc(access_modes=["ReadWriteOncePod", "ReadWriteOnce"]),
    )
    assert [c.access_mode.mode for c in plan.capabilities] == [
        Mode.SINGLE_NODE_SINGLE_WRITER,
        Mode.SINGLE_NODE_MULTI_WRITER,
    ]


@pytest.mark.parametrize(
    ("kw", "message", "state"),
    [
        ({"plugin_capabilities": set()}, "plugin CONTROLLER_SERVICE capability", "Finished"),
        ({"controller_capabilities": set()}, "controller CREATE_DELETE_VOLUME", "Finished"),
        ({"claim": pvc(selector={})}, "claim Selector is not supported", "Finished"),
        ({"claim": pvc(uid="")}, "missing UID", "Finished"),
        ({"cls": sc(parameters={P + "bogus": "1"})}, "found unknown parameter key", "Finished"),
        ({"cls": sc(parameters={P + "secret-name": "x"})}, "Both must be specified", "NoChange"),
        (
            {"claim": pvc(volumeAttributesClassName="gold")},
            "CSI driver does not support VolumeAttributesClass: controller MODIFY_VOLUME",
            "Finished",
        ),
        (
            {"claim": pvc(dataSource={"kind": "PersistentVolumeClaim", "name": "src"})},
            "CSI driver does not support clone operations: controller CLONE_VOLUME",
            "Finished",
        ),
        (
            {"claim": pvc(dataSource={"kind": "PersistentVolumeClaim", "name": ""})},
            "the PVC source not found for PVC data",
            "Finished",
        ),
        (
            {"claim": pvc(dataSource={"kind": "VolumeSnapshot", "name": "s",
                                      "apiGroup": "snapshot.storage.k8s.io"})},
            "CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT "
            "capability is not reported",
            "Finished",
        ),
        (
            {"claim": pvc(dataSource={"kind": "VolumeSnapshot", "name": "s", "apiGroup": "x"})},
            "the PVC source does not belong to the right APIGroup. Expected "
            "snapshot.storage.k8s.io, Got x",
            "Finished",
        ),
        (
            {"claim": pvc(dataSourceRef={"kind": "PersistentVolumeClaim", "name": "s",
                                         "namespace": "other"})},
            "CrossNamespaceVolumeDataSource feature is disabled",
            "Finished",
        ),
    ],
)  # fmt: skip
def test_plan_errors(kw: dict[str, Any], message: str, state: str) -> None:
    with pytest.raises(ProvisionError, match=message) as exc:
        full_plan(**kw)
    assert exc.value.state.value == state


def test_storage_class_nil() -> None:
    with pytest.raises(ProvisionError, match="storage class was nil"):
        plan_provision(pvc(), None, options())


def test_vac_gate_off_ignores_vac() -> None:
    plan = full_plan(claim=pvc(volumeAttributesClassName="gold"), vac_gate=False)
    assert plan.vac_name == ""


def test_vac_needs_modify_and_matching_driver() -> None:
    plan = full_plan(
        claim=pvc(volumeAttributesClassName="gold"),
        controller_capabilities={Cap.CREATE_DELETE_VOLUME, Cap.MODIFY_VOLUME},
    )
    assert plan.vac_name == "gold"
    vac = {"metadata": {"name": "gold"}, "driverName": DRIVER, "parameters": {"iops": "3000"}}
    assert src.mutable_parameters(vac, DRIVER) == {"iops": "3000"}
    with pytest.raises(ProvisionError) as exc:
        src.mutable_parameters({**vac, "driverName": "other"}, DRIVER)
    assert str(exc.value) == (
        f"VAC gold referenced in PVC is for driver other which does not match driver name {DRIVER}"
    )


def test_other_data_source_is_ignored_for_populators() -> None:
    claim = pvc(dataSourceRef={"kind": "Backup", "name": "b", "apiGroup": "x.io"})
    with pytest.raises(IgnoredError) as exc:
        full_plan(claim=claim)
    assert str(exc.value).startswith("ignored because data source (Backup) is not handled")
    assert exc.value.why == Ignored.EXTERNAL_POPULATOR  # typed: Go's populator event follows


def test_data_source_wins_over_ref() -> None:
    claim = pvc(
        dataSource={"kind": "PersistentVolumeClaim", "name": "a"},
        dataSourceRef={"kind": "PersistentVolumeClaim", "name": "b"},
    )
    source = src.data_source(claim)
    assert source is not None and (source.name, source.namespace) == ("a", "default")


CLONE_CAPS = {Cap.CREATE_DELETE_VOLUME, Cap.CLONE_VOLUME}


def clone_setup(
    **src_spec: Any,
) -> tuple[rq.ProvisionPlan, dict[str, Any], dict[str, Any], dict[str, Any]]:
    claim = pvc(dataSource={"kind": "PersistentVolumeClaim", "name": "src"}, storage="2Gi")
    plan = full_plan(claim=claim, controller_capabilities=CLONE_CAPS)
    source = pvc(name="src", uid="src-uid", storage="1Gi", volumeName="pv-src")
    source["status"] = {"phase": "Bound"}
    pv = {
        "metadata": {"name": "pv-src"},
        "spec": {
            "csi": {"driver": DRIVER, "volumeHandle": "vol-src"},
            "claimRef": {"uid": "src-uid", "namespace": "default", "name": "src"},
            **src_spec,
        },
        "status": {"phase": "Bound"},
    }
    return plan, claim, source, pv


def test_clone_source_ok() -> None:
    plan, claim, source, pv = clone_setup()
    assert plan.data_source is not None and plan.data_source.kind == "PersistentVolumeClaim"
    got = src.clone_content_source(plan, claim, sc(), source, pv)
    assert got == csi_pb2.VolumeContentSource(
        volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id="vol-src")
    )


def _mutate(path: str, value: Any) -> Any:
    def apply(plan: Any, claim: Any, source: Any, pv: Any) -> tuple[Any, Any, Any, Any]:
        target = {"source": source, "pv": pv}
        obj, _, rest = path.partition(".")
        node = target[obj]
        parts = rest.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
        return plan, claim, source, pv

    return apply


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_mutate("source.status.phase", "Pending"), "must have a status of Bound"),
        (_mutate("source.metadata.deletionTimestamp", "2024-01-01T00:00:00Z"),
         "is currently being deleted"),
        (_mutate("source.spec.storageClassName", None), "the source PVC (src) storageclass"),
        (_mutate("source.spec.resources", {"requests": {"storage": "3Gi"}}),
         "requested 2147483648 but source is 3221225472"),
        (_mutate("source.spec.volumeName", ""), "volume name is empty in source PVC src"),
        (_mutate("pv.spec.csi", None), "claim in dataSource not bound or invalid"),
        (_mutate("pv.spec.csi.driver", "other"), "claim in dataSource not bound or invalid"),
        (_mutate("pv.spec.claimRef.uid", "x"), "claim in dataSource not bound or invalid"),
        (_mutate("pv.status.phase", "Released"), "claim in dataSource not bound or invalid"),
        (_mutate("pv.spec.volumeMode", "Block"),
         "Source is Block, but new PVC requested Filesystem"),
    ],
)  # fmt: skip
def test_clone_source_errors(mutate: Any, message: str) -> None:
    plan, claim, source, pv = mutate(*clone_setup())
    with pytest.raises(ProvisionError) as exc:
        src.clone_content_source(plan, claim, sc(), source, pv)
    assert exc.value.state == ProvisioningState.NO_CHANGE
    assert str(exc.value).startswith(
        "error getting handle for DataSource Type PersistentVolumeClaim by Name src: "
    )
    assert message in str(exc.value)


def test_clone_missing_objects() -> None:
    plan, claim, source, pv = clone_setup()
    with pytest.raises(ProvisionError, match='persistentvolumeclaims "src" not found'):
        src.clone_content_source(plan, claim, sc(), None, pv)
    with pytest.raises(ProvisionError, match="claim in dataSource not bound or invalid"):
        src.clone_content_source(plan, claim, sc(), source, None)


def test_clone_block_needs_block_source() -> None:
    claim = pvc(dataSource={"kind": "PersistentVolumeClaim", "name": "src"}, volumeMode="Block")
    plan = full_plan(claim=claim, controller_capabilities=CLONE_CAPS)
    _, _, source, pv = clone_setup()
    with pytest.raises(ProvisionError, match="Source is Filesystem, but new PVC requested Block"):
        src.clone_content_source(plan, claim, sc(), source, pv)


def test_clone_source_finalizer() -> None:
    source = pvc(name="src")
    assert src.clone_source_finalizers(source) == [
        "provisioner.storage.kubernetes.io/cloning-protection"
    ]
    source["metadata"]["finalizers"] = ["a", "provisioner.storage.kubernetes.io/cloning-protection"]
    assert src.clone_source_finalizers(source) is None


def test_request_is_deterministic_and_digest_ignores_secrets() -> None:
    params = {f"k{i}": str(i) for i in range(20)}
    a = build_create_request(full_plan(cls=sc(parameters=params)), secrets_data={"a": "1"})
    b = build_create_request(
        full_plan(cls=sc(parameters=dict(reversed(params.items())))), secrets_data={"a": "2"}
    )
    assert rq.request_digest(a) == rq.request_digest(b)
    c = build_create_request(full_plan(cls=sc(parameters={**params, "k0": "x"})))
    assert rq.request_digest(a) != rq.request_digest(c)


def test_request_json_roundtrip_drops_secrets() -> None:
    req = build_create_request(full_plan(), secrets_data={"password": "hunter2-secret"})
    data = rq.request_to_json(req)
    assert "secrets" not in data and "hunter2-secret" not in str(data)
    back = rq.request_from_json(data)
    assert rq.request_digest(back) == rq.request_digest(req)
    assert not back.secrets
    with pytest.raises(ValueError):
        rq.request_from_json({"name": 5, "bogus": 1})


def test_supports_topology() -> None:
    topo = {Plugin.CONTROLLER_SERVICE, Plugin.VOLUME_ACCESSIBILITY_CONSTRAINTS}
    assert options(plugin_capabilities=topo).supports_topology
    assert not options(plugin_capabilities=topo, topology_gate=False).supports_topology
    assert not options().supports_topology
