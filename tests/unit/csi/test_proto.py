"""The generated CSI and plugin-registration modules match the wire contract we rely on."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc, pluginregistration_pb2

# registrar-probe-spec.md §5.6: every `secrets` field marked csi_secret.
EXPECTED_SECRETS = {
    ("CreateVolumeRequest", 5),
    ("DeleteVolumeRequest", 2),
    ("ControllerPublishVolumeRequest", 5),
    ("ControllerUnpublishVolumeRequest", 3),
    ("ValidateVolumeCapabilitiesRequest", 5),
    ("ControllerModifyVolumeRequest", 2),
    ("CreateSnapshotRequest", 3),
    ("DeleteSnapshotRequest", 2),
    ("ListSnapshotsRequest", 5),
    ("GetSnapshotRequest", 2),
    ("ControllerExpandVolumeRequest", 3),
    ("NodeStageVolumeRequest", 5),
    ("NodePublishVolumeRequest", 7),
    ("NodeExpandVolumeRequest", 6),
    ("CreateVolumeGroupSnapshotRequest", 3),
    ("DeleteVolumeGroupSnapshotRequest", 3),
    ("GetVolumeGroupSnapshotRequest", 3),
    ("GetMetadataAllocatedRequest", 4),
    ("GetMetadataDeltaRequest", 5),
}


def _all_messages() -> list[Descriptor]:
    out: list[Descriptor] = []

    def walk(desc: Descriptor) -> None:
        out.append(desc)
        for nested in desc.nested_types:
            walk(nested)

    for desc in csi_pb2.DESCRIPTOR.message_types_by_name.values():
        walk(desc)
    return out


def test_package_and_go_package() -> None:
    assert csi_pb2.DESCRIPTOR.package == "csi.v1"
    assert (
        csi_pb2.DESCRIPTOR.GetOptions().go_package
        == "github.com/container-storage-interface/spec/lib/go/csi"
    )


def test_extension_numbers() -> None:
    assert csi_pb2.csi_secret.number == 1059
    for ext in (
        csi_pb2.alpha_field,
        csi_pb2.alpha_enum,
        csi_pb2.alpha_enum_value,
        csi_pb2.alpha_message,
        csi_pb2.alpha_method,
        csi_pb2.alpha_service,
    ):
        assert ext.number == 1060
    assert csi_pb2.alpha_enum.containing_type.full_name == "google.protobuf.EnumOptions"
    assert csi_pb2.csi_secret.containing_type.full_name == "google.protobuf.FieldOptions"


def test_secret_fields_are_exactly_the_spec_list() -> None:
    found = {
        (desc.name, field.number)
        for desc in _all_messages()
        for field in desc.fields
        if field.GetOptions().Extensions[csi_pb2.csi_secret]
    }
    assert found == EXPECTED_SECRETS
    for desc in _all_messages():
        for field in desc.fields:
            if field.GetOptions().Extensions[csi_pb2.csi_secret]:
                assert field.name == "secrets"


def test_rpc_counts_and_names() -> None:
    services = csi_pb2.DESCRIPTOR.services_by_name
    counts = {name: len(svc.methods) for name, svc in services.items()}
    assert counts == {
        "Identity": 3,
        "Controller": 15,
        "GroupController": 4,
        "SnapshotMetadata": 2,
        "Node": 8,
    }
    probe = services["Identity"].methods_by_name["Probe"]
    assert f"/{probe.full_name.rsplit('.', 1)[0]}/{probe.name}" == "/csi.v1.Identity/Probe"
    stream = services["SnapshotMetadata"].methods_by_name["GetMetadataDelta"]
    assert stream.server_streaming and not stream.client_streaming


def test_alpha_markers() -> None:
    services = csi_pb2.DESCRIPTOR.services_by_name
    alpha_services = {
        n for n, s in services.items() if s.GetOptions().Extensions[csi_pb2.alpha_service]
    }
    assert alpha_services == {"SnapshotMetadata"}
    alpha_methods = {
        f"{s.name}.{m.name}"
        for s in services.values()
        for m in s.methods
        if m.GetOptions().Extensions[csi_pb2.alpha_method]
    }
    assert alpha_methods == {"Controller.GetSnapshot", "Controller.ControllerGetVolume"}
    alpha_messages = {
        d.name for d in _all_messages() if d.GetOptions().Extensions[csi_pb2.alpha_message]
    }
    assert alpha_messages == {
        "ControllerGetVolumeRequest",
        "ControllerGetVolumeResponse",
        "GetSnapshotRequest",
        "GetSnapshotResponse",
        "VolumeCondition",
    }
    alpha_fields = {
        f"{d.full_name}.{f.name}"
        for d in _all_messages()
        for f in d.fields
        if f.GetOptions().Extensions[csi_pb2.alpha_field]
    }
    assert alpha_fields == {
        "csi.v1.ListVolumesResponse.VolumeStatus.volume_condition",
        "csi.v1.GetCapacityResponse.minimum_volume_size",
        "csi.v1.NodeGetVolumeStatsResponse.volume_condition",
        "csi.v1.NodeExpandVolumeRequest.secrets",
    }


def test_capability_enum_values() -> None:
    rpc = csi_pb2.ControllerServiceCapability.RPC
    assert rpc.GET_SNAPSHOT == 15
    assert rpc.MODIFY_VOLUME == 14
    assert csi_pb2.NodeServiceCapability.RPC.VOLUME_MOUNT_GROUP == 6
    assert csi_pb2.PluginCapability.Service.SNAPSHOT_METADATA_SERVICE == 4
    assert csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_MULTI_WRITER == 7
    assert csi_pb2.FIXED_LENGTH == 1
    value = csi_pb2.ControllerServiceCapability.RPC.Type.DESCRIPTOR.values_by_name["GET_SNAPSHOT"]
    assert value.GetOptions().Extensions[csi_pb2.alpha_enum_value]


def test_stubs_exist() -> None:
    assert hasattr(csi_pb2_grpc, "IdentityStub")
    assert hasattr(csi_pb2_grpc, "add_ControllerServicer_to_server")


def test_pluginregistration() -> None:
    desc = pluginregistration_pb2.DESCRIPTOR
    assert desc.package == "pluginregistration"
    info = desc.message_types_by_name["PluginInfo"]
    assert [(f.name, f.number) for f in info.fields] == [
        ("type", 1),
        ("name", 2),
        ("endpoint", 3),
        ("supported_versions", 4),
    ]
    status = desc.message_types_by_name["RegistrationStatus"]
    assert [(f.name, f.number) for f in status.fields] == [("plugin_registered", 1), ("error", 2)]
    svc = desc.services_by_name["Registration"]
    assert svc.full_name == "pluginregistration.Registration"
    assert [m.name for m in svc.methods] == ["GetInfo", "NotifyRegistrationStatus"]
