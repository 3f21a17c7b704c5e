"""``csi-sidecars csi`` against a scripted driver: errors, exit codes, spec warnings, streams,
request files and secrets that never show."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from csi_sidecars.csi.messages import csi_pb2 as pb
from csi_sidecars.csicli import exitcodes
from tests.component.csicli.conftest import Cli
from tests.support.fake_csi import FakeCSI, fail, reply

Code = grpc.StatusCode
GIB = 1 << 30
SECRET = "hunter2-very-secret"


@pytest.fixture
def cli(fake: FakeCSI) -> Cli:
    return Cli(fake.endpoint)


@pytest.mark.parametrize(
    ("code", "exit_code", "go_name"),
    [
        (Code.NOT_FOUND, exitcodes.NOT_FOUND, "NotFound"),
        (Code.INVALID_ARGUMENT, exitcodes.BAD_REQUEST, "InvalidArgument"),
        (Code.OUT_OF_RANGE, exitcodes.BAD_REQUEST, "OutOfRange"),
        (Code.ALREADY_EXISTS, exitcodes.CONFLICT, "AlreadyExists"),
        (Code.FAILED_PRECONDITION, exitcodes.CONFLICT, "FailedPrecondition"),
        (Code.UNIMPLEMENTED, exitcodes.UNIMPLEMENTED, "Unimplemented"),
        (Code.UNAVAILABLE, exitcodes.RETRYABLE, "Unavailable"),
        (Code.RESOURCE_EXHAUSTED, exitcodes.RETRYABLE, "ResourceExhausted"),
        (Code.PERMISSION_DENIED, exitcodes.DENIED, "PermissionDenied"),
        (Code.INTERNAL, exitcodes.DRIVER_ERROR, "Internal"),
        (Code.DATA_LOSS, exitcodes.DRIVER_ERROR, "DataLoss"),
    ],
)
def test_grpc_errors_print_code_and_message_and_exit_per_class(
    fake: FakeCSI, cli: Cli, code: Code, exit_code: int, go_name: str
) -> None:
    fake.handlers["DeleteVolume"] = fail(code, "volume vol-1 is busy")
    result = cli("controller", "delete-volume", "vol-1")
    assert result.exit_code == exit_code
    assert result.stdout == ""
    assert f"error: DeleteVolume: rpc error: code = {go_name} desc = volume vol-1 is busy" in (
        result.stderr
    )
    assert fake.requests_of("DeleteVolume")[0].volume_id == "vol-1"


def test_unscripted_method_is_unimplemented(cli: Cli) -> None:
    result = cli("controller", "get-volume", "v")
    assert result.exit_code == exitcodes.UNIMPLEMENTED
    assert "code = Unimplemented" in result.stderr


def test_unreachable_endpoint_exits_3_quickly(short_dir: Path) -> None:
    start = time.monotonic()
    result = Cli(f"unix://{short_dir}/none.sock")("--connect-timeout", "0.3s", "identity", "info")
    assert result.exit_code == exitcodes.UNREACHABLE
    assert "no socket at that path" in result.stderr
    assert time.monotonic() - start < 5


def test_timeout_bounds_the_call(fake: FakeCSI, cli: Cli) -> None:
    import asyncio

    async def slow(request: Any, context: Any) -> Any:
        await asyncio.sleep(3)
        return pb.ProbeResponse()

    fake.handlers["Probe"] = slow
    start = time.monotonic()
    result = cli("--timeout", "200ms", "identity", "probe")
    assert result.exit_code == exitcodes.RETRYABLE
    assert "code = DeadlineExceeded" in result.stderr
    assert time.monotonic() - start < 2.5


def test_probe_not_ready_exits_1(fake: FakeCSI, cli: Cli) -> None:
    msg = pb.ProbeResponse()
    msg.ready.value = False
    fake.handlers["Probe"] = reply(msg)
    result = cli("identity", "probe", "-o", "table")
    assert result.exit_code == 1
    assert result.stdout.strip() == "ready: false"


def test_spec_warnings_name_the_rule_and_strict_exits_4(fake: FakeCSI, cli: Cli) -> None:
    fake.handlers["CreateVolume"] = reply(
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="", capacity_bytes=0))
    )
    result = cli("controller", "create-volume", "pvc-1", "--size", "5Gi")
    assert result.exit_code == 0
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert any(
        "CreateVolume reply: volume.volume_id is empty" in ln
        and 'Volume: "This field is REQUIRED."' in ln
        for ln in lines
    ), lines
    assert any(
        "volume.capacity_bytes is 0, below the requested required_bytes 5368709120" in ln
        and "Volume MUST be at least this big" in ln
        for ln in lines
    ), lines
    assert json.loads(result.stdout) == {"volume": {"capacity_bytes": 0, "volume_id": ""}}
    strict = cli("--strict", "controller", "create-volume", "pvc-1", "--size", "5Gi")
    assert strict.exit_code == exitcodes.SPEC_VIOLATION


def test_a_correct_reply_has_no_warnings(fake: FakeCSI, cli: Cli) -> None:
    fake.handlers["CreateVolume"] = reply(
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v1", capacity_bytes=5 * GIB))
    )
    result = cli("--strict", "controller", "create-volume", "pvc-1", "--size", "5Gi")
    assert result.exit_code == 0
    assert "warning" not in result.stderr
    assert json.loads(result.stdout) == {"volume": {"volume_id": "v1", "capacity_bytes": 5 * GIB}}


def test_missing_required_fields_in_other_replies(fake: FakeCSI, cli: Cli) -> None:
    fake.handlers["GetPluginInfo"] = reply(pb.GetPluginInfoResponse(name="-bad_name-"))
    fake.handlers["NodeGetInfo"] = reply(pb.NodeGetInfoResponse())
    fake.handlers["ControllerExpandVolume"] = reply(pb.ControllerExpandVolumeResponse())
    fake.handlers["CreateSnapshot"] = reply(
        pb.CreateSnapshotResponse(snapshot=pb.Snapshot(snapshot_id="s1", source_volume_id="v2"))
    )
    info = cli("identity", "info").stderr
    assert "name '-bad_name-' is not a valid name" in info
    assert (
        'vendor_version is empty (CSI spec v1.12, GetPluginInfo: "This field is REQUIRED."' in info
    )
    assert "NodeGetInfo reply: node_id is empty" in cli("node", "info").stderr
    expand = cli("controller", "expand", "v1", "--size", "2Gi").stderr
    assert "ControllerExpandVolume reply: capacity_bytes is 0" in expand
    snap = cli("controller", "create-snapshot", "s", "--source-volume", "v1").stderr
    assert "snapshot.source_volume_id is 'v2', not the requested 'v1'" in snap
    assert "snapshot.creation_time is missing" in snap


def test_group_snapshot_members_must_name_their_group(fake: FakeCSI, cli: Cli) -> None:
    group = pb.VolumeGroupSnapshot(group_snapshot_id="g1", ready_to_use=True)
    group.creation_time.GetCurrentTime()
    member = group.snapshots.add(
        snapshot_id="s1", source_volume_id="v1", group_snapshot_id="other", ready_to_use=False
    )
    member.creation_time.GetCurrentTime()
    fake.handlers["CreateVolumeGroupSnapshot"] = reply(
        pb.CreateVolumeGroupSnapshotResponse(group_snapshot=group)
    )
    result = cli("group", "create", "g", "--source-volume", "v1", "--source-volume", "v2")
    assert result.exit_code == 0
    err = result.stderr
    assert "group_snapshot.snapshots[0].group_snapshot_id is 'other', not the group's 'g1'" in err
    assert "group_snapshot.ready_to_use is true with a member not ready" in err
    assert "the request named ['v1', 'v2']" in err
    assert fake.requests_of("CreateVolumeGroupSnapshot")[0].source_volume_ids == ["v1", "v2"]


def test_all_stops_on_a_repeating_token(fake: FakeCSI, cli: Cli) -> None:
    async def pages(request: Any, context: Any) -> Any:
        out = pb.ListVolumesResponse(next_token="again")
        out.entries.add().volume.volume_id = f"v-{request.starting_token or 'first'}"
        return out

    fake.handlers["ListVolumes"] = pages
    result = cli("controller", "list-volumes", "--all")
    assert result.exit_code == 0
    ids = [e["volume"]["volume_id"] for e in json.loads(result.stdout)["entries"]]
    assert ids == ["v-first", "v-again"]
    assert "next_token repeats 'again'" in result.stderr
    assert len(fake.requests_of("ListVolumes")) == 2


def test_more_entries_than_max_entries_is_a_warning(fake: FakeCSI, cli: Cli) -> None:
    out = pb.ListSnapshotsResponse()
    for i in range(3):
        snap = out.entries.add().snapshot
        snap.snapshot_id, snap.source_volume_id = f"s{i}", "v"
        snap.creation_time.GetCurrentTime()
    fake.handlers["ListSnapshots"] = reply(out)
    result = cli("controller", "list-snapshots", "--max-entries", "2")
    assert "entries has 3 entries for max_entries 2" in result.stderr
    assert fake.requests_of("ListSnapshots")[0].max_entries == 2


def _blocks(*ranges: tuple[int, int], kind: int = 1, capacity: int = GIB) -> Any:
    msg = pb.GetMetadataAllocatedResponse(block_metadata_type=kind, volume_capacity_bytes=capacity)
    for offset, size in ranges:
        msg.block_metadata.add(byte_offset=offset, size_bytes=size)
    return msg


def test_snapshot_metadata_streams_one_json_line_per_message(fake: FakeCSI, cli: Cli) -> None:
    async def stream(request: Any, context: Any) -> Any:
        yield _blocks((0, 4096), (8192, 4096))
        yield _blocks((16384, 4096))

    fake.handlers["GetMetadataAllocated"] = stream
    result = cli("snapshot-metadata", "allocated", "snap-1", "--max-results", "2")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [[b["byte_offset"] for b in ln["block_metadata"]] for ln in lines] == [
        [0, 8192],
        [16384],
    ]
    assert lines[0]["block_metadata_type"] == "FIXED_LENGTH"
    assert "warning" not in result.stderr
    req = fake.requests_of("GetMetadataAllocated")[0]
    assert (req.snapshot_id, req.max_results) == ("snap-1", 2)
    table = cli("snapshot-metadata", "allocated", "snap-1", "-o", "table").stdout.splitlines()
    assert table[0] == "type: FIXED_LENGTH  volume capacity: 1Gi"
    assert table[1].split() == ["BYTE", "OFFSET", "SIZE"]
    assert [row.split() for row in table[2:]] == [
        ["0", "4096"],
        ["8192", "4096"],
        ["16384", "4096"],
    ]


def test_snapshot_metadata_stream_rules_across_messages(fake: FakeCSI, cli: Cli) -> None:
    async def stream(request: Any, context: Any) -> Any:
        yield _blocks((0, 4096), (8192, 4096))
        yield _blocks((8192, 8192), capacity=2 * GIB)

    fake.handlers["GetMetadataDelta"] = stream
    result = cli("snapshot-metadata", "delta", "base", "target", "-o", "yaml")
    assert result.exit_code == 0
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(docs) == 2
    err = result.stderr
    assert "message[1].volume_capacity_bytes changed mid-stream" in err
    assert "message[1].block_metadata[0].byte_offset is 8192, before the end 12288" in err
    assert "is 8192, not the fixed 4096" in err
    req = fake.requests_of("GetMetadataDelta")[0]
    assert (req.base_snapshot_id, req.target_snapshot_id) == ("base", "target")


def test_broken_stream_resumes_after_the_last_tuple(fake: FakeCSI, cli: Cli) -> None:
    async def stream(request: Any, context: Any) -> Any:
        if request.starting_offset == 0:
            yield _blocks((0, 4096), (4096, 4096))
            await context.abort(Code.UNAVAILABLE, "connection reset")
        yield _blocks((request.starting_offset, 4096))

    fake.handlers["GetMetadataAllocated"] = stream
    no_retry = cli("snapshot-metadata", "allocated", "s")
    assert no_retry.exit_code == exitcodes.RETRYABLE
    assert "code = Unavailable desc = connection reset" in no_retry.stderr
    result = cli("snapshot-metadata", "allocated", "s", "--retries", "2")
    assert result.exit_code == 0, result.stderr
    offsets = [
        b["byte_offset"]
        for ln in result.stdout.splitlines()
        for b in json.loads(ln)["block_metadata"]
    ]
    assert offsets == [0, 4096, 8192]
    assert [r.starting_offset for r in fake.requests_of("GetMetadataAllocated")][-2:] == [0, 8192]
    assert "resuming at offset 8192" in result.stderr


def test_request_file_with_flag_overrides_and_stdin(
    fake: FakeCSI, cli: Cli, short_dir: Path
) -> None:
    fake.handlers["CreateVolume"] = reply(
        pb.CreateVolumeResponse(volume=pb.Volume(volume_id="v1", capacity_bytes=8 * GIB))
    )
    req = short_dir / "req.yaml"
    req.write_text(
        "name: from-file\n"
        "capacityRange: {required_bytes: 2Gi}\n"
        "volume_capabilities:\n"
        "- access_mode: {mode: MULTI_NODE_MULTI_WRITER}\n"
        "  block: {}\n"
        "parameters: {a: '1'}\n"
    )
    result = cli("controller", "create-volume", "-f", str(req), "--size", "8Gi")
    assert result.exit_code == 0, result.stderr
    sent = fake.requests_of("CreateVolume")[-1]
    assert sent.name == "from-file"
    assert sent.capacity_range.required_bytes == 8 * GIB  # the flag wins over the file
    assert sent.volume_capabilities[0].WhichOneof("access_type") == "block"
    assert dict(sent.parameters) == {"a": "1"}
    stdin = cli("controller", "create-volume", "-f", "-", input='{"name": "piped"}')
    assert stdin.exit_code == 0, stdin.stderr
    assert fake.requests_of("CreateVolume")[-1].name == "piped"
    assert not fake.requests_of("CreateVolume")[-1].volume_capabilities  # sent as written
    bad = cli("controller", "create-volume", "-f", "-", input='{"nmae": "typo"}')
    assert bad.exit_code == exitcodes.USAGE
    assert "nmae" in bad.stderr


def test_usage_errors(cli: Cli) -> None:
    missing = cli("controller", "create-volume")
    assert missing.exit_code == exitcodes.USAGE
    assert "missing NAME" in missing.stderr
    size = cli("controller", "create-volume", "x", "--size", "5 gigs")
    assert size.exit_code == exitcodes.USAGE
    assert "invalid size '5 gigs'" in size.stderr
    cap = cli("controller", "create-volume", "x", "--cap", "SINGLE_NODE_WRITER,tape")
    assert cap.exit_code == exitcodes.USAGE
    assert "the type must be mount or block" in cap.stderr


def _echoing_driver(fake: FakeCSI) -> None:
    async def create(request: Any, context: Any) -> Any:
        if request.name == "fail":
            await context.abort(
                Code.UNAUTHENTICATED,
                f"login as {request.secrets['user']} with {request.secrets['password']} refused",
            )
        vol = pb.Volume(volume_id="v1", capacity_bytes=GIB)
        vol.volume_context["echo"] = f"pw={request.secrets['password']}"
        return pb.CreateVolumeResponse(volume=vol)

    fake.handlers["CreateVolume"] = create


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
def test_secrets_from_a_file_never_appear_in_output_or_logs(
    fake: FakeCSI, cli: Cli, short_dir: Path, fmt: str
) -> None:
    _echoing_driver(fake)
    secrets = short_dir / "secrets.yaml"
    secrets.write_text(f"user: admin-user\npassword: {SECRET}\n")
    ok = cli("-v=5", "-o", fmt, "controller", "create-volume", "ok", "--secrets-file", str(secrets))
    assert ok.exit_code == 0, ok.stderr
    assert dict(fake.requests_of("CreateVolume")[-1].secrets) == {
        "user": "admin-user",
        "password": SECRET,
    }
    assert "GRPC call" in ok.stderr and "GRPC response" in ok.stderr
    assert '\\"secrets\\":\\"***stripped***\\"' in ok.stderr
    assert "pw=***stripped***" in ok.stdout  # the driver echoed it in volume_context
    failed = cli("-v=5", "controller", "create-volume", "fail", "--secrets-file", str(secrets))
    assert failed.exit_code == exitcodes.DENIED
    assert "login as ***stripped*** with ***stripped*** refused" in failed.stderr
    for result in (ok, failed):
        assert SECRET not in result.output
        assert "admin-user" not in result.output


def test_secrets_from_the_environment(fake: FakeCSI, cli: Cli) -> None:
    _echoing_driver(fake)
    env = {"DRIVER_SECRETS": f"user=admin-user,password={SECRET}"}
    result = cli(
        "-v", "5", "controller", "create-volume", "ok", "--secrets-env", "DRIVER_SECRETS", env=env
    )
    assert result.exit_code == 0, result.stderr
    assert fake.requests_of("CreateVolume")[-1].secrets["password"] == SECRET
    assert SECRET not in result.output
    unset = cli("controller", "create-volume", "ok", "--secrets-env", "NOT_SET_ANYWHERE")
    assert unset.exit_code == exitcodes.USAGE
    assert "NOT_SET_ANYWHERE" in unset.stderr


def test_a_malformed_secrets_file_is_reported_without_its_content(
    cli: Cli, short_dir: Path
) -> None:
    secrets = short_dir / "secrets.yaml"
    secrets.write_text(f"- {SECRET}\n- [unclosed\n")
    result = cli("controller", "delete-volume", "v", "--secrets-file", str(secrets))
    assert result.exit_code == exitcodes.USAGE
    assert str(secrets) in result.stderr
    assert SECRET not in result.output
