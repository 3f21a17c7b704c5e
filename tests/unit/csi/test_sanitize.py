"""Secret stripping: every csi_secret field is replaced, everything else is rendered faithfully."""

from __future__ import annotations

import json

import pytest
from google.protobuf.message import Message

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.sanitize import STRIPPED, Stripped, is_secret, strip_secrets, to_dict

SECRET = "s3cr3t-value"


def _secrets() -> dict[str, str]:
    return {"password": SECRET, "token": SECRET + "-2"}


def test_create_volume_request_full_rendering() -> None:
    req = csi_pb2.CreateVolumeRequest(
        name="pvc-1",
        capacity_range=csi_pb2.CapacityRange(required_bytes=1024),
        volume_capabilities=[
            csi_pb2.VolumeCapability(
                mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4", mount_flags=["ro"]),
                access_mode=csi_pb2.VolumeCapability.AccessMode(
                    mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
                ),
            )
        ],
        parameters={"type": "fast"},
        secrets=_secrets(),
    )
    out = strip_secrets(req)
    assert "\n" not in out
    assert json.loads(out) == {
        "name": "pvc-1",
        "capacity_range": {"required_bytes": 1024},
        "volume_capabilities": [
            {
                "mount": {"fs_type": "ext4", "mount_flags": ["ro"]},
                "access_mode": {"mode": "SINGLE_NODE_WRITER"},
            }
        ],
        "parameters": {"type": "fast"},
        "secrets": STRIPPED,
    }
    assert SECRET not in out
    assert out.startswith('{"capacity_range":')  # sorted keys, compact


# One request per message type that has a csi_secret field (registrar-probe-spec §5.6).
SECRET_REQUESTS: list[Message] = [
    csi_pb2.CreateVolumeRequest(name="v", secrets=_secrets()),
    csi_pb2.DeleteVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.ControllerPublishVolumeRequest(volume_id="v", node_id="n", secrets=_secrets()),
    csi_pb2.ControllerUnpublishVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.ControllerModifyVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.CreateSnapshotRequest(source_volume_id="v", name="s", secrets=_secrets()),
    csi_pb2.DeleteSnapshotRequest(snapshot_id="s", secrets=_secrets()),
    csi_pb2.ListSnapshotsRequest(snapshot_id="s", secrets=_secrets()),
    csi_pb2.GetSnapshotRequest(snapshot_id="s", secrets=_secrets()),
    csi_pb2.ControllerExpandVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.NodeStageVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.NodePublishVolumeRequest(volume_id="v", target_path="/t", secrets=_secrets()),
    csi_pb2.NodeExpandVolumeRequest(volume_id="v", secrets=_secrets()),
    csi_pb2.CreateVolumeGroupSnapshotRequest(name="g", secrets=_secrets()),
    csi_pb2.DeleteVolumeGroupSnapshotRequest(group_snapshot_id="g", secrets=_secrets()),
    csi_pb2.GetVolumeGroupSnapshotRequest(group_snapshot_id="g", secrets=_secrets()),
    csi_pb2.GetMetadataAllocatedRequest(snapshot_id="s", secrets=_secrets()),
    csi_pb2.GetMetadataDeltaRequest(base_snapshot_id="s", secrets=_secrets()),
]


@pytest.mark.parametrize("req", SECRET_REQUESTS, ids=lambda m: type(m).__name__)
def test_every_secret_field_is_stripped(req: Message) -> None:
    out = strip_secrets(req)
    assert SECRET not in out
    assert "password" not in out  # keys of the secrets map are hidden too
    assert json.loads(out)["secrets"] == STRIPPED


def test_every_message_with_a_secret_is_covered() -> None:
    covered = {type(m).DESCRIPTOR.name for m in SECRET_REQUESTS}
    with_secret = {
        d.name
        for d in csi_pb2.DESCRIPTOR.message_types_by_name.values()
        if any(is_secret(f) for f in d.fields)
    }
    assert covered == with_secret


def test_alpha_node_expand_secret_is_a_secret() -> None:
    field = csi_pb2.NodeExpandVolumeRequest.DESCRIPTOR.fields_by_name["secrets"]
    assert is_secret(field)
    assert not is_secret(csi_pb2.NodeExpandVolumeRequest.DESCRIPTOR.fields_by_name["volume_id"])


def test_non_secret_maps_are_kept() -> None:
    req = csi_pb2.NodePublishVolumeRequest(
        volume_id="v",
        publish_context={"dev": "/dev/sda"},
        volume_context={"csi.storage.k8s.io/pod.name": "p"},
        secrets=_secrets(),
        readonly=True,
    )
    data = json.loads(strip_secrets(req))
    assert data["publish_context"] == {"dev": "/dev/sda"}
    assert data["volume_context"] == {"csi.storage.k8s.io/pod.name": "p"}
    assert data["readonly"] is True


def test_unset_fields_are_omitted_and_empty_message_is_braces() -> None:
    assert strip_secrets(csi_pb2.DeleteVolumeRequest()) == "{}"
    assert strip_secrets(csi_pb2.DeleteVolumeRequest(volume_id="x")) == '{"volume_id":"x"}'


def test_enums_repeated_messages_and_wrappers() -> None:
    resp = csi_pb2.ControllerGetCapabilitiesResponse(
        capabilities=[
            csi_pb2.ControllerServiceCapability(
                rpc=csi_pb2.ControllerServiceCapability.RPC(
                    type=csi_pb2.ControllerServiceCapability.RPC.CREATE_DELETE_VOLUME
                )
            ),
            csi_pb2.ControllerServiceCapability(
                rpc=csi_pb2.ControllerServiceCapability.RPC(
                    type=csi_pb2.ControllerServiceCapability.RPC.GET_SNAPSHOT
                )
            ),
        ]
    )
    assert json.loads(strip_secrets(resp)) == {
        "capabilities": [
            {"rpc": {"type": "CREATE_DELETE_VOLUME"}},
            {"rpc": {"type": "GET_SNAPSHOT"}},
        ]
    }
    probe = csi_pb2.ProbeResponse()
    probe.ready.value = True
    assert strip_secrets(probe) == '{"ready":{"value":true}}'


def test_unknown_enum_value_renders_as_number() -> None:
    cap = csi_pb2.ControllerServiceCapability.RPC(type=99)  # type: ignore[arg-type]
    assert to_dict(cap) == {"type": 99}


def test_nested_topology_maps() -> None:
    req = csi_pb2.CreateVolumeRequest(
        accessibility_requirements=csi_pb2.TopologyRequirement(
            requisite=[csi_pb2.Topology(segments={"zone": "a"})]
        )
    )
    assert json.loads(strip_secrets(req)) == {
        "accessibility_requirements": {"requisite": [{"segments": {"zone": "a"}}]}
    }


def test_non_proto_values_and_lazy_wrapper() -> None:
    assert strip_secrets(None) == "null"
    assert strip_secrets({"a": 1}) == '{"a":1}'
    lazy = Stripped(csi_pb2.DeleteVolumeRequest(volume_id="x", secrets=_secrets()))
    assert str(lazy) == '{"secrets":"***stripped***","volume_id":"x"}'
