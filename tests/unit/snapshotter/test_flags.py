"""Flags: Go's names and defaults, and the start-up checks."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import GoCommand
from csi_sidecars.snapshotter.flags import SnapshotterFlags, snapshotter_options, validate


def parse(*argv: str) -> SnapshotterFlags:
    got: list[SnapshotterFlags] = []

    @click.command(cls=GoCommand)
    @snapshotter_options
    def cmd(*, flags: SnapshotterFlags) -> None:
        got.append(flags)

    result = CliRunner().invoke(cmd, list(argv))
    assert result.exit_code == 0, result.output
    return got[0]


def test_defaults_are_go_s() -> None:
    f = parse()
    assert (f.csi.address, f.csi.timeout) == ("/run/csi/socket", 60.0)
    assert (f.retry.start, f.retry.maximum) == (1.0, 300.0)
    assert f.resync_period == 900.0
    assert f.worker_threads == 10
    assert (f.snapshot_name_prefix, f.snapshot_name_uuid_length) == ("snapshot", -1)
    assert (f.groupsnapshot_name_prefix, f.groupsnapshot_name_uuid_length) == ("groupsnapshot", -1)
    assert not f.extra_create_metadata and not f.node_deployment
    assert f.gates["CSIVolumeGroupSnapshot"] is False  # v8.6.0: beta, off
    assert f.gates["ReleaseLeaderElectionOnExit"] is False
    assert (f.kube.qps, f.kube.burst, f.kube.leader_election) == (5.0, 10, False)
    assert f.http.metrics_path == "/metrics"


def test_go_style_argv() -> None:
    f = parse(
        "-csi-address=/csi/csi.sock",
        "-timeout=2m",
        "--extra-create-metadata=true",
        "-snapshot-name-prefix=snap",
        "-snapshot-name-uuid-length=8",
        "-worker-threads=3",
        "-feature-gates=CSIVolumeGroupSnapshot=true",
        "-leader-election",
        "-v=5",
    )
    assert (f.csi.address, f.csi.timeout, f.worker_threads) == ("/csi/csi.sock", 120.0, 3)
    assert f.extra_create_metadata and f.kube.leader_election
    assert (f.snapshot_name_prefix, f.snapshot_name_uuid_length, f.v) == ("snap", 8, 5)
    assert f.group_snapshots is True


def test_unknown_feature_gate_is_a_usage_error() -> None:
    @click.command(cls=GoCommand)
    @snapshotter_options
    def cmd(*, flags: SnapshotterFlags) -> None:
        raise AssertionError("not reached")

    result = CliRunner().invoke(cmd, ["--feature-gates=Nope=true"])
    assert result.exit_code == 1
    assert "unrecognized feature gate: Nope" in result.output


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--snapshot-name-uuid-length=33"], {}, "--snapshot-name-uuid-length must be -1"),
        (["--snapshot-name-uuid-length=-2"], {}, "--snapshot-name-uuid-length must be -1"),
        (
            ["--groupsnapshot-name-uuid-length=40", "--feature-gates=CSIVolumeGroupSnapshot=true"],
            {},
            "--groupsnapshot-name-uuid-length must",
        ),
        (["--snapshot-name-prefix="], {}, "Snapshot name prefix cannot be of length 0"),
        (
            ["--groupsnapshot-name-prefix=", "--feature-gates=CSIVolumeGroupSnapshot=true"],
            {},
            "group snapshot name prefix cannot be of length 0",
        ),
        (
            ["--node-deployment", "--leader-election"],
            {"NODE_NAME": "n"},
            "Leader election cannot happen when node-deployment is set to true",
        ),
        (["--node-deployment"], {}, "The NODE_NAME environment variable must be set"),
        (
            ["--http-endpoint=:8080", "--metrics-address=:8081"],
            {},
            "Only one of `--metrics-address` and `--http-endpoint` can be set",
        ),
        (["--retry-interval-start=10s", "--retry-interval-max=1s"], {}, "--retry-interval-max"),
        (["--timeout=0s"], {}, "--timeout must be positive"),
    ],
)
def test_validate_refuses(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("`", ".").replace("(", ".")):
        validate(parse(*argv), env)


def test_group_checks_only_with_the_gate() -> None:
    flags = parse("--groupsnapshot-name-prefix=", "--feature-gates=CSIVolumeGroupSnapshot=false")
    assert validate(flags, {}) == ""


def test_node_deployment_returns_the_node() -> None:
    assert validate(parse("--node-deployment"), {"NODE_NAME": "node-7"}) == "node-7"


def test_uuid_length_32_is_the_longest() -> None:
    assert validate(parse("--snapshot-name-uuid-length=32"), {}) == ""


def _go_help() -> str:
    """The Go csi-snapshotter's ``--help`` (skips when it is not built)."""
    import shutil
    import subprocess
    from pathlib import Path

    from csi_sidecars.playground import binaries

    path = Path(binaries.default_bin_dir()) / "csi-snapshotter"
    if not path.exists() and shutil.which("csi-snapshotter") is None:
        pytest.skip("the Go csi-snapshotter is not built (testbed)")
    out = subprocess.run(
        [str(path), "--help"], check=False, capture_output=True, text=True, timeout=30
    )
    return out.stdout + out.stderr


def _go_flags() -> dict[str, str]:
    """The Go csi-snapshotter's flags and printed defaults."""
    import re

    text = _go_help()
    flags: dict[str, str] = {}
    for match in re.finditer(r"^\s+-([\w-]+)[^\n]*\n((?:\s{4,}\S[^\n]*\n)*)", text, re.M):
        default = re.search(r"\(default ([^)]*)\)", match.group(2))
        flags[match.group(1)] = default.group(1) if default else ""
    return flags


def test_every_go_flag_is_accepted_with_its_default() -> None:
    from csi_sidecars.runtime.flags import GO_ONLY_FLAGS
    from csi_sidecars.snapshotter.command import command

    go = _go_flags()
    assert "snapshot-name-prefix" in go
    ours = {opt.lstrip("-"): p for p in command.params for opt in p.opts}
    missing = [f for f in go if f not in ours and f not in GO_ONLY_FLAGS]
    assert missing == []
    compared = 0
    for flag, default in go.items():
        param = ours.get(flag)
        if param is None or not default:
            continue
        mine = param.default if isinstance(param.default, str) else str(param.default)
        convert = param.type.convert
        assert convert(mine, param, None) == convert(default.strip('"'), param, None), flag
        compared += 1
    assert compared >= 15


def test_feature_gates_match_go() -> None:
    import re

    from csi_sidecars.snapshotter.flags import GATES

    text = _go_help()
    for name, gate in GATES.items():
        found = re.search(rf"{name}=true\|false \((\w+) - default=(\w+)\)", text)
        assert found is not None, name
        assert (found.group(1).lower(), found.group(2)) == (gate.stage, str(gate.default).lower())
