"""Spec rules on replies: each case breaks one rule (or none) and names it."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.csi.messages import csi_pb2 as pb
from csi_sidecars.csicli.speccheck import check_reply
from csi_sidecars.csicli.streamcheck import StreamCheck

GIB = 1 << 30


def _snap(**kw: Any) -> Any:
    snap = pb.Snapshot(**kw)
    snap.creation_time.seconds = 1
    return snap


def _range(required: int = 0, limit: int = 0) -> Any:
    return pb.CreateVolumeRequest(
        name="n", capacity_range=pb.CapacityRange(required_bytes=required, limit_bytes=limit)
    )


CASES = [
    ("GetPluginInfo", None, pb.GetPluginInfoResponse(name="a.b-c", vendor_version="1"), []),
    (
        "GetPluginInfo",
        None,
        pb.GetPluginInfoResponse(name="x" * 64, vendor_version="1"),
        ["name 'xxxx"],
    ),
    ("CreateVolume", _range(GIB), pb.CreateVolumeResponse(), ["volume is missing"]),
    (
        "CreateVolume",
        _range(GIB),
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v", capacity_bytes=GIB)),
        [],
    ),
    (
        "CreateVolume",
        pb.CreateVolumeRequest(name="n"),
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v")),
        [],
    ),  # 0 = unknown, no range
    (
        "CreateVolume",
        _range(0, GIB),
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v", capacity_bytes=2 * GIB)),
        ["above the requested limit_bytes"],
    ),
    (
        "CreateVolume",
        _range(),
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v" * 129)),
        ["is 129 bytes long"],
    ),
    (
        "CreateVolume",
        _range(),
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v", volume_context={"k": "x" * 5000})),
        ["volume.volume_context holds 5001 bytes"],
    ),
    (
        "ControllerGetVolume",
        pb.ControllerGetVolumeRequest(volume_id="v"),
        pb.ControllerGetVolumeResponse(volume=pb.Volume(volume_id="w")),
        ["volume.volume_id is 'w', not the requested 'v'", "status is missing"],
    ),
    (
        "ValidateVolumeCapabilities",
        None,
        pb.ValidateVolumeCapabilitiesResponse(
            confirmed=pb.ValidateVolumeCapabilitiesResponse.Confirmed()
        ),
        ["confirmed.volume_capabilities is empty"],
    ),
    (
        "GetCapacity",
        None,
        pb.GetCapacityResponse(available_capacity=-1),
        ["available_capacity is negative"],
    ),
    (
        "ListVolumes",
        pb.ListVolumesRequest(),
        pb.ListVolumesResponse(entries=[pb.ListVolumesResponse.Entry()]),
        ["entries[0].volume is missing"],
    ),
    (
        "GetSnapshot",
        None,
        pb.GetSnapshotResponse(snapshot=_snap(snapshot_id="s")),
        ["snapshot.source_volume_id is empty"],
    ),
    (
        "GetSnapshot",
        None,
        pb.GetSnapshotResponse(snapshot=_snap(snapshot_id="s", source_volume_id="v")),
        [],
    ),
    ("NodeGetInfo", None, pb.NodeGetInfoResponse(node_id="n" * 200), []),  # 256 bytes allowed
    (
        "NodeGetInfo",
        None,
        pb.NodeGetInfoResponse(node_id="n", max_volumes_per_node=-1),
        ["max_volumes_per_node is negative"],
    ),
    (
        "NodeGetVolumeStats",
        None,
        pb.NodeGetVolumeStatsResponse(usage=[pb.VolumeUsage(total=1, used=-2)]),
        ["usage[0].unit is UNKNOWN", "usage[0].used is negative"],
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(capacity_range=pb.CapacityRange(required_bytes=2 * GIB)),
        pb.NodeExpandVolumeResponse(capacity_bytes=GIB),
        ["below the requested required_bytes"],
    ),
    ("NodeExpandVolume", pb.NodeExpandVolumeRequest(), pb.NodeExpandVolumeResponse(), []),
    (
        "GetVolumeGroupSnapshot",
        None,
        pb.GetVolumeGroupSnapshotResponse(
            group_snapshot=pb.VolumeGroupSnapshot(group_snapshot_id="g")
        ),
        ["group_snapshot.snapshots is empty", "group_snapshot.creation_time is missing"],
    ),
    ("DeleteVolume", None, pb.DeleteVolumeResponse(), []),
]


@pytest.mark.parametrize(("method", "request_msg", "reply", "expected"), CASES)
def test_check_reply(method: str, request_msg: Any, reply: Any, expected: list[str]) -> None:
    warnings = [str(w) for w in check_reply(method, request_msg, reply)]
    assert len(warnings) == len(expected), warnings
    for text, want in zip(warnings, expected, strict=True):
        assert want in text
        assert text.startswith(f"{method} reply: ")
        assert "(CSI spec v1.12, " in text


def test_topology_needs_the_plugin_capability() -> None:
    vol = pb.Volume(volume_id="v")
    vol.accessible_topology.add().segments["zone"] = "a"
    reply = pb.CreateVolumeResponse(volume=vol)
    assert check_reply("CreateVolume", _range(), reply) == []
    assert check_reply("CreateVolume", _range(), reply, {"VOLUME_ACCESSIBILITY_CONSTRAINTS"}) == []
    [warning] = check_reply("CreateVolume", _range(), reply, {"CONTROLLER_SERVICE"})
    assert "VOLUME_ACCESSIBILITY_CONSTRAINTS" in warning.rule


def _msg(*blocks: tuple[int, int], kind: int = 2, capacity: int = GIB) -> Any:
    return pb.GetMetadataAllocatedResponse(
        block_metadata_type=kind,
        volume_capacity_bytes=capacity,
        block_metadata=[pb.BlockMetadata(byte_offset=o, size_bytes=s) for o, s in blocks],
    )


def test_stream_check() -> None:
    check = StreamCheck(
        "GetMetadataAllocated", pb.GetMetadataAllocatedRequest(starting_offset=100, max_results=2)
    )
    assert check.feed(_msg((0, 4096), (4096, 10))) == []
    assert check.resume_offset() == 4106
    problems = [str(w) for w in check.feed(_msg((4000, 0), (5000, 1), (6000, 1), kind=1))]
    assert any("changed mid-stream" in p for p in problems)
    assert any("has 3 tuples for max_results 2" in p for p in problems)
    assert any("size_bytes is 0" in p for p in problems)
    assert any("byte_offset is 4000, before the end 4106" in p for p in problems)
    late = StreamCheck("GetMetadataDelta", pb.GetMetadataDeltaRequest(starting_offset=8192))
    assert "ends before starting_offset 8192" in str(late.feed(_msg((0, 4096)))[0])
    unknown = StreamCheck("GetMetadataDelta", pb.GetMetadataDeltaRequest())
    texts = [str(w) for w in unknown.feed(_msg(kind=0, capacity=0))]
    assert any("block_metadata_type is UNKNOWN" in t for t in texts)
    assert any("volume_capacity_bytes is 0" in t for t in texts)
