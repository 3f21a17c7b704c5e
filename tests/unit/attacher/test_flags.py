"""The attacher's flags: Go names, defaults, upstream manifests, start-up checks."""

from __future__ import annotations

import click
import click.testing
import pytest

from csi_sidecars.attacher.flags import FEATURE_GATES, AttacherFlags, attacher_options, validate
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import parse_gates, split_gates
from csi_sidecars.runtime.flags import GoCommand

SEEN: list[AttacherFlags] = []


@click.command("attacher", cls=GoCommand)
@attacher_options
def _cmd(flags: AttacherFlags) -> None:
    SEEN.append(flags)


def parse(args: list[str]) -> tuple[int, AttacherFlags | None, str]:
    SEEN.clear()
    result = click.testing.CliRunner().invoke(_cmd, args)
    return result.exit_code, (SEEN[-1] if SEEN else None), result.output


def test_defaults_match_go():
    code, flags, _ = parse([])
    assert code == 0 and flags is not None
    assert flags.csi.address == "/run/csi/socket"
    assert (flags.resync, flags.csi.timeout, flags.reconcile_sync) == (600.0, 15.0, 60.0)
    assert (flags.retry.start, flags.retry.maximum) == (1.0, 300.0)
    assert (flags.worker_threads, flags.max_entries, flags.max_grpc_log_length) == (10, 0, -1)
    assert (flags.default_fstype, flags.gates.explicit, flags.gates.unknown) == ("", set(), ())
    assert (flags.http.endpoint, flags.http.metrics_address, flags.http.metrics_path) == (
        "",
        "",
        "/metrics",
    )
    assert (flags.v, flags.logging_format, flags.version) == (0, "text", False)
    kube = flags.kube
    assert (kube.kubeconfig, kube.qps, kube.burst, kube.leader_election) == ("", 5.0, 10, False)
    assert (kube.lease_duration, kube.renew_deadline, kube.retry_period) == (15.0, 10.0, 5.0)
    assert flags.gates["MutableCSINodeAllocatableCount"] is True
    assert flags.gates["ReleaseLeaderElectionOnExit"] is False
    assert flags == AttacherFlags()
    validate(flags)


UPSTREAM_DEPLOYMENT = [
    "--v=5",
    "--csi-address=/var/lib/csi/sockets/pluginproxy/mock.socket",
    "--leader-election",
    "--http-endpoint=:8080",
]
HOSTPATH = ["--v=5", "--csi-address=/csi/csi.sock"]
VENDOR_CHART = [
    "--csi-address=/csi/csi.sock",
    "--v=2",
    "--leader-election=true",
    "--leader-election-namespace=kube-system",
    "--timeout=60s",
    "--kube-api-qps=20",
    "--kube-api-burst=100",
    "--worker-threads=100",
    "--retry-interval-start=2s",
    "--retry-interval-max=5m",
    "--default-fstype=ext4",
    "--reconcile-sync=5m",
    "--max-entries=100",
    "--resync=1h",
    "--feature-gates=ReleaseLeaderElectionOnExit=true",
    "--leader-election-labels=app:csi,tier:storage",
    "--automaxprocs",
    "--max-grpc-log-length=1024",
    "--metrics-path=/m",
]
SINGLE_DASH = ["-v", "4", "-csi-address", "/x.sock", "-leader-election=false", "-timeout", "1m30s"]


def test_upstream_deployment_manifest():
    code, flags, output = parse(UPSTREAM_DEPLOYMENT)
    assert code == 0, output
    assert flags is not None
    assert (flags.v, flags.csi.address) == (5, "/var/lib/csi/sockets/pluginproxy/mock.socket")
    assert flags.kube.leader_election is True
    assert flags.http.address == ":8080"
    validate(flags)


def test_hostpath_manifest():
    code, flags, output = parse(HOSTPATH)
    assert code == 0, output
    assert flags is not None and (flags.v, flags.csi.address) == (5, "/csi/csi.sock")


def test_vendor_chart_manifest():
    code, flags, output = parse(VENDOR_CHART)
    assert code == 0, output
    assert flags is not None
    assert (flags.v, flags.csi.timeout, flags.worker_threads) == (2, 60.0, 100)
    assert (flags.retry.start, flags.retry.maximum) == (2.0, 300.0)
    assert (flags.default_fstype, flags.reconcile_sync, flags.resync) == ("ext4", 300.0, 3600.0)
    assert (flags.max_entries, flags.max_grpc_log_length, flags.http.metrics_path) == (
        100,
        1024,
        "/m",
    )
    assert (flags.kube.qps, flags.kube.burst) == (20.0, 100)
    assert flags.kube.leader_election_namespace == "kube-system"
    assert flags.kube.leader_election_labels == {"app": "csi", "tier": "storage"}
    assert flags.gates["ReleaseLeaderElectionOnExit"] is True
    validate(flags)


def test_single_dash_go_style():
    code, flags, output = parse(SINGLE_DASH)
    assert code == 0, output
    assert flags is not None
    assert (flags.v, flags.csi.address, flags.csi.timeout) == (4, "/x.sock", 90.0)
    assert flags.kube.leader_election is False


@pytest.mark.parametrize(
    "args",
    [
        ["--worker-threads=-1"],
        ["--timeout=15"],
        ["--feature-gates=Foo"],
        ["--feature-gates=Foo=maybe"],
        ["--no-such-flag"],
        ["--leader-election-labels=bad"],
    ],
)
def test_bad_flags_exit_2(args: list[str]):
    code, flags, _ = parse(args)
    assert code == 2 and flags is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worker-threads=0"], "Option -worker-threads must be greater than zero"),
        (
            ["--metrics-address=:1", "--http-endpoint=:2"],
            "Only one of `--metrics-address` and `--http-endpoint` can be set",
        ),
        (["--feature-gates=Unknown=true"], "unrecognized feature gate: Unknown"),
    ],
)
def test_startup_checks(args: list[str], message: str):
    code, flags, _ = parse(args)
    assert code == 0 and flags is not None
    with pytest.raises(ConfigError) as info:
        validate(flags)
    assert str(info.value) == message


def test_feature_gates_parsing_and_resolution():
    given = split_gates(["A=true, B=false", "", "A=0"])
    assert given == {"A": False, "B": False}
    assert dict(parse_gates(["AllAlpha=true"], FEATURE_GATES)) == {
        "ReleaseLeaderElectionOnExit": True,
        "MutableCSINodeAllocatableCount": True,
    }
    gates = parse_gates(["AllAlpha=true,ReleaseLeaderElectionOnExit=false"], FEATURE_GATES)
    assert gates["ReleaseLeaderElectionOnExit"] is False
    code, flags, _ = parse(
        ["--feature-gates=MutableCSINodeAllocatableCount=false", "--feature-gates=AllBeta=true"]
    )
    assert code == 0 and flags is not None
    assert flags.gates["MutableCSINodeAllocatableCount"] is False


def test_help_lists_every_go_flag():
    code, _, output = parse(["--help"])
    assert code == 0
    for name in (
        "--csi-address",
        "--resync",
        "--timeout",
        "--retry-interval-start",
        "--retry-interval-max",
        "--worker-threads",
        "--max-entries",
        "--default-fstype",
        "--reconcile-sync",
        "--max-grpc-log-length",
        "--feature-gates",
        "--http-endpoint",
        "--metrics-address",
        "--metrics-path",
        "--kubeconfig",
        "--kube-api-qps",
        "--kube-api-burst",
        "--leader-election",
        "--leader-election-namespace",
        "--leader-election-lease-duration",
        "--leader-election-renew-deadline",
        "--leader-election-retry-period",
        "--leader-election-labels",
        "--version",
        "--logging-format",
    ):
        assert name in output, name
