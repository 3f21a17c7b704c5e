"""``csi-sidecars csi`` against the playground driver: every RPC it serves, checked against the
driver's own state, plus ``csi check`` passing, failing and always cleaning up."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import grpc

from csi_sidecars.csicli import exitcodes
from tests.component.csicli.conftest import Cli, Playground

GIB = 1 << 30


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def test_identity(playground: Playground) -> None:
    drv = playground.start()
    cli = Cli(drv.endpoint)
    assert _json(cli("identity", "info"))["name"] == "hostpath.csi.k8s.io"
    services = {c["service"]["type"] for c in _json(cli("identity", "caps"))["capabilities"]}
    assert {"CONTROLLER_SERVICE", "GROUP_CONTROLLER_SERVICE"} <= services
    probe = cli("identity", "probe", "-o", "table")
    assert probe.exit_code == 0
    assert probe.stdout.startswith("ready: true")
    assert drv.methods() == ["GetPluginInfo", "GetPluginCapabilities", "Probe"]


def test_volume_lifecycle_through_every_controller_and_node_rpc(
    playground: Playground, short_dir: Path
) -> None:
    drv = playground.start(
        enable_attach=True,
        enable_controller_modify_volume=True,
        accepted_mutable_parameter_names=["iops"],
    )
    cli = Cli(drv.endpoint)
    rpcs = {c["rpc"]["type"] for c in _json(cli("controller", "caps"))["capabilities"]}
    assert {"PUBLISH_UNPUBLISH_VOLUME", "MODIFY_VOLUME", "GET_VOLUME"} <= rpcs
    node_rpcs = {c["rpc"]["type"] for c in _json(cli("node", "caps"))["capabilities"]}
    assert "STAGE_UNSTAGE_VOLUME" in node_rpcs
    info = _json(cli("node", "info"))
    assert info["node_id"] == "node-1"

    created = _json(
        cli("controller", "create-volume", "pvc-1", "--size", "5Gi", "--params", "type=fast")
    )
    vol_id = created["volume"]["volume_id"]
    assert created["volume"]["capacity_bytes"] == 5 * GIB
    state = drv.state.data.volumes[vol_id]
    assert (state.name, state.capacity_bytes, state.parameters) == (
        "pvc-1",
        5 * GIB,
        {"type": "fast"},
    )

    validated = cli("controller", "validate", vol_id, "--vol-context", "type=fast", "-o", "table")
    assert validated.exit_code == 0
    assert validated.stdout.startswith("confirmed")

    _json(cli("controller", "publish", vol_id, "--node-id", "node-1"))
    assert drv.state.data.volumes[vol_id].attached == {"node-1": False}
    got = _json(cli("controller", "get-volume", vol_id))
    assert got["status"]["published_node_ids"] == ["node-1"]

    staging, target = short_dir / "staging", short_dir / "target"
    staging.mkdir()
    _json(cli("node", "stage", vol_id, "--staging-path", str(staging)))
    assert drv.state.data.volumes[vol_id].staged == [str(staging)]
    _json(
        cli("node", "publish", vol_id, "--target-path", str(target), "--staging-path", str(staging))
    )
    assert target.is_dir()
    stats = _json(cli("node", "stats", vol_id, "--volume-path", str(target)))
    assert {u["unit"] for u in stats["usage"]} == {"BYTES", "INODES"}

    expanded = _json(cli("controller", "expand", vol_id, "--size", "6Gi"))
    assert expanded == {"capacity_bytes": 6 * GIB, "node_expansion_required": True}
    node_expanded = _json(
        cli("node", "expand", vol_id, "--volume-path", str(target), "--size", "6Gi")
    )
    assert node_expanded == {"capacity_bytes": 6 * GIB}
    assert drv.state.data.volumes[vol_id].capacity_bytes == 6 * GIB
    _json(cli("controller", "modify", vol_id, "--mutable-params", "iops=300"))
    assert drv.state.data.volumes[vol_id].mutable_parameters == {"iops": "300"}
    capacity = _json(cli("controller", "get-capacity"))
    assert capacity["available_capacity"] > 0

    _json(cli("node", "unpublish", vol_id, "--target-path", str(target)))
    assert not target.exists()
    _json(cli("node", "unstage", vol_id, "--staging-path", str(staging)))
    _json(cli("controller", "unpublish", vol_id, "--node-id", "node-1"))
    assert drv.state.data.volumes[vol_id].attached == {}
    _json(cli("controller", "delete-volume", vol_id))
    assert drv.state.data.volumes == {}
    assert drv.calls[-1].method == "DeleteVolume"


def test_list_pagination_all_and_tables(playground: Playground) -> None:
    drv = playground.start()
    cli = Cli(drv.endpoint)
    ids = {
        _json(cli("controller", "create-volume", f"pvc-{i}", "--size", "1Mi"))["volume"][
            "volume_id"
        ]
        for i in range(5)
    }
    page = _json(cli("controller", "list-volumes", "--max-entries", "2"))
    assert len(page["entries"]) == 2 and page["next_token"]
    every = _json(cli("controller", "list-volumes", "--max-entries", "2", "--all"))
    assert {e["volume"]["volume_id"] for e in every["entries"]} == ids
    assert every["next_token"] == ""  # every page merged
    assert [r.max_entries for r in drv.calls_of("ListVolumes")][-3:] == [2, 2, 2]
    table = cli("controller", "list-volumes", "-o", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["VOLUME", "ID", "CAPACITY"]
    assert sorted(row.split()[0] for row in table[1:]) == sorted(ids)
    assert {row.split()[1] for row in table[1:]} == {"1Mi"}


def test_snapshots_and_group_snapshots(playground: Playground) -> None:
    drv = playground.start()
    cli = Cli(drv.endpoint)
    vol_a = _json(cli("controller", "create-volume", "a", "--size", "1Gi"))["volume"]["volume_id"]
    vol_b = _json(cli("controller", "create-volume", "b", "--size", "1Gi"))["volume"]["volume_id"]
    snap = _json(cli("controller", "create-snapshot", "snap-a", "--source-volume", vol_a))
    snap_id = snap["snapshot"]["snapshot_id"]
    assert snap["snapshot"]["source_volume_id"] == vol_a
    assert snap["snapshot"]["creation_time"].endswith("Z")
    listed = _json(cli("controller", "list-snapshots", "--source-volume", vol_a, "--all"))
    assert [e["snapshot"]["snapshot_id"] for e in listed["entries"]] == [snap_id]
    assert _json(cli("controller", "get-snapshot", snap_id))["snapshot"]["snapshot_id"] == snap_id
    _json(cli("controller", "delete-snapshot", snap_id))
    assert snap_id not in drv.state.data.snapshots

    assert _json(cli("group", "caps"))["capabilities"][0]["rpc"]["type"] == (
        "CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT"
    )
    group = _json(cli("group", "create", "g1", "--source-volume", vol_a, "--source-volume", vol_b))
    group_id = group["group_snapshot"]["group_snapshot_id"]
    members = [s["snapshot_id"] for s in group["group_snapshot"]["snapshots"]]
    assert {s["source_volume_id"] for s in group["group_snapshot"]["snapshots"]} == {vol_a, vol_b}
    member_args = [a for m in members for a in ("--snapshot-id", m)]
    got = _json(cli("group", "get", group_id, *member_args))
    assert got["group_snapshot"]["group_snapshot_id"] == group_id
    table = cli("group", "get", group_id, "-o", "table").stdout
    assert group_id in table and all(m in table for m in members)
    _json(cli("group", "delete", group_id, *member_args))
    assert drv.state.data.group_snapshots == {}


def test_driver_errors_exit_with_their_class(playground: Playground) -> None:
    drv = playground.start()
    cli = Cli(drv.endpoint)
    missing = cli("controller", "get-volume", "no-such-volume")
    assert missing.exit_code == exitcodes.NOT_FOUND
    assert "code = NotFound" in missing.stderr
    unsupported = cli("controller", "publish", "v", "--node-id", "node-1")
    assert unsupported.exit_code == exitcodes.UNIMPLEMENTED
    drv.faults.add("CreateVolume", code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="pool full")
    full = cli("controller", "create-volume", "x", "--size", "1Gi")
    assert full.exit_code == exitcodes.RETRYABLE
    assert "code = ResourceExhausted desc = pool full" in full.stderr


def test_spec_warning_from_a_patched_reply(playground: Playground) -> None:
    drv = playground.start()
    drv.faults.add("CreateVolume", reply={"volume": {"capacityBytes": "0"}})
    result = Cli(drv.endpoint)("controller", "create-volume", "x", "--size", "2Gi")
    assert result.exit_code == 0
    assert "volume.capacity_bytes is 0, below the requested required_bytes 2147483648" in (
        result.stderr
    )


def _check_rows(result: Any) -> list[dict[str, Any]]:
    data = json.loads(result.stdout)
    assert data["summary"]
    return list(data["steps"])


def test_check_passes_and_leaves_nothing_behind(playground: Playground) -> None:
    drv = playground.start(enable_attach=True)
    cli = Cli(drv.endpoint)
    keep = _json(cli("controller", "create-volume", "users-volume", "--size", "1Gi"))
    keep_id = keep["volume"]["volume_id"]
    before = len(drv.calls)
    result = cli("check", "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    rows = _check_rows(result)
    by_step = {r["step"]: r["result"] for r in rows}
    for step in (
        "create volume again",
        "controller publish again",
        "node stage again",
        "node publish again",
        "node unpublish again",
        "node unstage again",
        "controller unpublish again",
        "create snapshot again",
        "delete snapshot again",
        "delete volume again",
        "list volumes",
        "volume stats",
    ):
        assert by_step[step] == "PASS", (step, rows)
    assert not any(r["step"].startswith("cleanup") for r in rows)
    assert set(drv.state.data.volumes) == {keep_id}
    assert drv.state.data.snapshots == {}
    deleted = [c.request.volume_id for c in drv.calls[before:] if c.method == "DeleteVolume"]
    assert deleted and keep_id not in deleted


def test_check_cleans_up_when_a_step_fails(playground: Playground, short_dir: Path) -> None:
    drv = playground.start(enable_attach=True)
    cli = Cli(drv.endpoint)
    keep_id = _json(cli("controller", "create-volume", "users-volume"))["volume"]["volume_id"]
    drv.faults.add("NodePublishVolume", code=grpc.StatusCode.INTERNAL, message="mount failed")
    workdir = short_dir / "work"
    result = cli("check", "-o", "json", "--workdir", str(workdir))
    assert result.exit_code == exitcodes.FAILURE
    rows = _check_rows(result)
    failed = [r for r in rows if r["result"] == "FAIL"]
    assert [r["step"] for r in failed] == ["node publish"]
    assert "mount failed" in failed[0]["detail"]
    cleanup = [(r["step"], r["result"]) for r in rows if r["step"].startswith("cleanup")]
    assert cleanup == [
        ("cleanup: node unstage", "PASS"),
        ("cleanup: controller unpublish", "PASS"),
        ("cleanup: delete volume", "PASS"),
    ]
    assert set(drv.state.data.volumes) == {keep_id}
    assert drv.state.data.volumes[keep_id].staged == []
    assert os.listdir(workdir) == []  # staging removed, nothing recursive needed


def test_check_recovers_a_volume_whose_create_reply_was_lost(playground: Playground) -> None:
    drv = playground.start()
    drv.faults.add("CreateVolume", code=grpc.StatusCode.UNAVAILABLE, when="after", times=1)
    result = Cli(drv.endpoint)("check", "-o", "json")
    assert result.exit_code == exitcodes.FAILURE
    rows = _check_rows(result)
    assert [(r["step"], r["result"]) for r in rows if r["result"] == "FAIL"] == [
        ("create volume", "FAIL")
    ]
    assert ("cleanup: delete volume (created by a failed call?)", "PASS") in [
        (r["step"], r["result"]) for r in rows
    ]
    assert drv.state.data.volumes == {}


def test_check_table_and_skips_for_missing_capabilities(playground: Playground) -> None:
    drv = playground.start(remove_capabilities=["controller:CREATE_DELETE_SNAPSHOT"])
    result = Cli(drv.endpoint)("check", "-o", "table", "--size", "16Mi")
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STEP", "RPC", "RESULT", "TIME", "DETAIL"]
    assert any(ln.startswith("controller publish ") and "SKIP" in ln for ln in lines)
    assert any(
        "create snapshot" in ln and "no CREATE_DELETE_SNAPSHOT capability" in ln for ln in lines
    )
    assert lines[-1].startswith("PASSED: ") and " 0 failed" in lines[-1]
    sizes = [r.capacity_range.required_bytes for r in drv.calls_of("CreateVolume")]
    assert sizes == [16 << 20, 16 << 20]
