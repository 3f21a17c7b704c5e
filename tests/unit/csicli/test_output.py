"""Reply data, output formats, tables, secret scrubbing and exit codes."""

from __future__ import annotations

import io
import json

import yaml

from csi_sidecars.csi.messages import csi_pb2 as pb
from csi_sidecars.csicli import exitcodes, tables
from csi_sidecars.csicli.convert import build_request, message_to_data
from csi_sidecars.csicli.output import choose_format, format_tables, render
from csi_sidecars.csicli.redact import Redactor


def test_message_to_data_scalars_wrappers_timestamps_secrets() -> None:
    snap = pb.Snapshot(snapshot_id="s", size_bytes=1 << 40)
    snap.creation_time.FromJsonString("2024-05-01T10:00:00Z")
    assert message_to_data(pb.CreateSnapshotResponse(snapshot=snap)) == {
        "snapshot": {
            "size_bytes": 1 << 40,
            "snapshot_id": "s",
            "source_volume_id": "",
            "creation_time": "2024-05-01T10:00:00Z",
            "ready_to_use": False,
            "group_snapshot_id": "",
        }
    }
    cap = pb.GetCapacityResponse(available_capacity=5)
    cap.maximum_volume_size.value = 7
    assert message_to_data(cap) == {"available_capacity": 5, "maximum_volume_size": 7}
    req = pb.NodeStageVolumeRequest(volume_id="v", secrets={"password": "pw"})
    data = message_to_data(req)
    assert data["secrets"] == "***stripped***"
    assert "publish_context" not in data  # empty maps are left out


def test_build_request_round_trip_and_errors() -> None:
    msg = build_request(
        "CreateVolumeRequest",
        {
            "name": "n",
            "capacityRange": {"required_bytes": 5},
            "volume_capabilities": [{"access_mode": {"mode": "SINGLE_NODE_WRITER"}, "mount": {}}],
        },
    )
    assert isinstance(msg, pb.CreateVolumeRequest)
    assert msg.capacity_range.required_bytes == 5
    for bad, want in (
        ({"secrets": {"k": ["supersecret"]}}, "the secrets must be a mapping"),
        ({"nmae": "x"}, "its fields: name, capacity_range"),
        ({"volume_capabilities": [{"access_mode": {"mode": "BOGUS"}}]}, "BOGUS"),
    ):
        try:
            build_request("CreateVolumeRequest", bad)
        except ValueError as err:
            assert want in str(err)
            assert "supersecret" not in str(err)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_formats() -> None:
    data = {"volume": {"volume_id": "v", "capacity_bytes": 5 << 30}}
    assert json.loads(render(data, "json", tables.volume)) == data
    assert yaml.safe_load(render(data, "yaml", tables.volume)) == data
    lines = render(data, "table", tables.volume).splitlines()
    assert lines[0].split()[:3] == ["VOLUME", "ID", "CAPACITY"]
    assert lines[1].split()[:2] == ["v", "5Gi"]


def test_choose_format() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert choose_format(None, io.StringIO()) == "json"
    assert choose_format(None, Tty()) == "table"
    assert choose_format("yaml", Tty()) == "yaml"


def test_fields_table_flattens() -> None:
    text = format_tables(tables.fields({"name": "d", "manifest": {"a": "1"}, "list": [1, 2]}))
    assert [ln.split() for ln in text.splitlines()] == [
        ["FIELD", "VALUE"],
        ["name", "d"],
        ["manifest.a", "1"],
        ["list", "1,2"],
    ]
    assert format_tables(tables.fields({})) == "OK"


def test_stats_and_validate_tables() -> None:
    stats = {
        "usage": [{"unit": "BYTES", "total": 1 << 30, "used": 0, "available": 1 << 30}],
        "volume_condition": {"abnormal": True, "message": "disk gone"},
    }
    text = format_tables(tables.stats(stats))
    assert "BYTES  1Gi    0     1Gi" in text
    assert "condition: abnormal: disk gone" in text
    assert format_tables(tables.validate({"message": "no block"})) == "not confirmed: no block"


def test_redactor() -> None:
    r = Redactor(["longsecret", "abc", "longsecret-plus"])
    assert r.text("x longsecret-plus y longsecret") == "x ***stripped*** y ***stripped***"
    assert r.text("abc stays: shorter than the minimum") == "abc stays: shorter than the minimum"
    assert r.data({"k": ["a longsecret", 1, True]}) == {"k": ["a ***stripped***", 1, True]}
    out = io.StringIO()
    stream = r.stream(out)
    stream.write("half long")
    stream.write("secret\nrest")
    assert out.getvalue() == "half ***stripped***\n"
    stream.flush()
    assert out.getvalue() == "half ***stripped***\nrest"


def test_exit_codes() -> None:
    assert exitcodes.for_grpc_code("NOT_FOUND") == 11
    assert exitcodes.for_grpc_code("OK") == 0
    assert exitcodes.for_grpc_code("SOMETHING_NEW") == exitcodes.DRIVER_ERROR
    codes = [code for code, _ in exitcodes.TABLE]
    assert len(codes) == len(set(codes))
    assert "11 NotFound" in exitcodes.help_text()
