"""Flags: defaults, upstream manifests, unsupported features, validation."""

from __future__ import annotations

import click
import pytest

from csi_sidecars.provisioner.command import command
from csi_sidecars.provisioner.flags import FEATURE_GATES, parse_args


def test_defaults_match_go() -> None:
    cfg = parse_args([])
    assert cfg.csi.address == "/run/csi/socket"
    assert cfg.volume_name_prefix == "pvc"
    assert cfg.volume_name_uuid_length == -1
    assert cfg.retry.start == 1.0
    assert cfg.retry.maximum == 300.0
    assert cfg.worker_threads == 100
    assert cfg.cloning_protection_threads == 1
    assert cfg.csi.timeout == 10.0
    assert cfg.strict_topology is False
    assert cfg.immediate_topology is True
    assert cfg.extra_create_metadata is False
    assert cfg.default_fstype == ""
    assert cfg.controller_publish_readonly is False
    assert cfg.kube.qps == 5.0
    assert cfg.kube.burst == 10
    assert cfg.kube.master == ""
    assert cfg.kube.leader_election is False
    assert cfg.kube.lease_duration == 15.0
    assert cfg.kube.renew_deadline == 10.0
    assert cfg.kube.retry_period == 5.0
    assert cfg.http.metrics_path == "/metrics"
    assert dict(cfg.gates) == {name: gate.default for name, gate in FEATURE_GATES.items()}
    assert cfg.gates.explicit == frozenset()


@pytest.mark.parametrize(
    "argv",
    [
        # external-provisioner deploy/kubernetes/deployment.yaml
        [
            "--csi-address=/var/lib/csi/sockets/pluginproxy/mock.socket",
            "--leader-election",
            "--http-endpoint=:8080",
        ],
        # csi-driver-host-path deploy/kubernetes-1.34/hostpath/csi-hostpath-plugin.yaml
        ["-v=5", "--csi-address=/csi/csi.sock", "--feature-gates=Topology=true"],
        # Go single-dash forms and separate values
        ["-csi-address", "/csi/csi.sock", "-timeout=15s", "-worker-threads", "5", "--automaxprocs"],
    ],
)
def test_upstream_manifest_args_parse(argv: list[str]) -> None:
    cfg = parse_args(argv)
    address = (
        next(a.split("=", 1)[1] for a in argv if a.startswith("--csi-address="))
        if any(a.startswith("--csi-address=") for a in argv)
        else argv[argv.index("-csi-address") + 1]
    )
    assert cfg.csi.address == address


def test_manifest_values_land_in_config() -> None:
    cfg = parse_args(
        [
            "--csi-address=/csi/csi.sock",
            "--leader-election",
            "--http-endpoint=:8080",
            "-timeout=15s",
            "--strict-topology=true",
            "--immediate-topology=false",
            "--extra-create-metadata",
            "--default-fstype=ext4",
            "--volume-name-prefix=vol",
            "--volume-name-uuid-length=16",
            "--leader-election-labels=a:b,c:d",
            "--feature-gates=VolumeAttributesClass=false",
        ]
    )
    assert cfg.kube.leader_election is True
    assert cfg.http.endpoint == ":8080"
    assert cfg.csi.timeout == 15.0
    assert (cfg.strict_topology, cfg.immediate_topology) == (True, False)
    assert cfg.extra_create_metadata is True
    assert cfg.default_fstype == "ext4"
    assert (cfg.volume_name_prefix, cfg.volume_name_uuid_length) == ("vol", 16)
    assert cfg.kube.leader_election_labels == {"a": "b", "c": "d"}
    assert cfg.gates["VolumeAttributesClass"] is False
    assert cfg.gates.explicit == {"VolumeAttributesClass"}


def test_distributed_hostpath_manifest_parses() -> None:
    # csi-driver-host-path deploy/kubernetes-distributed: capacity + node deployment
    cfg = parse_args(
        [
            "-v=5",
            "--csi-address=/csi/csi.sock",
            "--feature-gates=Topology=true",
            "--enable-capacity",
            "--capacity-ownerref-level=0",
            "--node-deployment=true",
            "--strict-topology=true",
            "--immediate-topology=false",
            "--worker-threads=5",
        ]
    )
    assert (cfg.node_deployment, cfg.enable_capacity, cfg.capacity_ownerref_level) == (
        True,
        True,
        0,
    )
    assert (cfg.strict_topology, cfg.immediate_topology, cfg.worker_threads) == (True, False, 5)


def test_node_deployment_flags() -> None:
    cfg = parse_args([])
    assert (cfg.node_deployment, cfg.node_deployment_immediate_binding) == (False, True)
    assert (cfg.node_deployment_base_delay, cfg.node_deployment_max_delay) == (20.0, 60.0)
    cfg = parse_args(
        ["--node-deployment", "--node-deployment-immediate-binding=false",
         "--node-deployment-base-delay=5s", "--node-deployment-max-delay=30s"]
    )  # fmt: skip
    assert (cfg.node_deployment, cfg.node_deployment_immediate_binding) == (True, False)
    assert (cfg.node_deployment_base_delay, cfg.node_deployment_max_delay) == (5.0, 30.0)
    with pytest.raises(click.UsageError, match="must be positive"):
        parse_args(["--node-deployment-base-delay=0s"])


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--volume-name-uuid-length=33", "between 1 and 32, got 33"),
        ("--volume-name-uuid-length=0", "between 1 and 32, got 0"),
        ("--volume-name-uuid-length=-2", "between 1 and 32, got -2"),
        ("--volume-name-prefix=", "does not give valid PersistentVolume names"),
        ("--volume-name-prefix=PVC", "does not give valid PersistentVolume names"),
        ("--worker-threads=0", "--worker-threads must be at least 1"),
        ("--timeout=0s", "--timeout must be positive"),
        ("--retry-interval-max=100ms", "must not be shorter than --retry-interval-start"),
        ("--leader-election-labels=novalue", "'novalue', expected key:value"),
        ("--feature-gates=Nope=true", "unrecognized feature gate: Nope"),
        ("--feature-gates=Topology", "missing bool value for Topology"),
        ("--feature-gates=Topology=maybe", "invalid value of Topology=maybe"),
        ("--feature-gates=CrossNamespaceVolumeDataSource=true", "not supported yet"),
        ("--feature-gates=AllAlpha=true", "CrossNamespaceVolumeDataSource=true .*not supported"),
        ("--retry-interval-start=0s", "must be positive"),
        ("--metrics-path=metrics", "--metrics-path must start with '/'"),
        ("--timeout=ten", "invalid duration"),
    ],
)
def test_invalid_values(arg: str, message: str) -> None:
    with pytest.raises(click.UsageError, match=message.replace("(", r"\(")):
        parse_args([arg])


@pytest.mark.parametrize("length", [-1, 1, 8, 32])
def test_valid_uuid_lengths(length: int) -> None:
    assert parse_args([f"--volume-name-uuid-length={length}"]).volume_name_uuid_length == length


def test_http_endpoint_and_metrics_address_conflict() -> None:
    with pytest.raises(click.UsageError, match="only one of"):
        parse_args(["--http-endpoint=:8080", "--metrics-address=:8081"])


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(click.UsageError, match="flag provided but not defined: -no-such"):
        parse_args(["--no-such-flag"])


def test_capacity_flags() -> None:
    cfg = parse_args([])
    assert (cfg.enable_capacity, cfg.capacity_for_immediate_binding) == (False, False)
    assert (cfg.capacity_poll_interval, cfg.capacity_ownerref_level) == (60.0, 1)
    assert (cfg.capacity_threads, cfg.kube_api_capacity_qps, cfg.kube_api_capacity_burst) == (
        1, 1.0, 5
    )  # fmt: skip
    cfg = parse_args(
        ["--enable-capacity", "--capacity-for-immediate-binding", "--capacity-poll-interval=2m",
         "--capacity-ownerref-level=-1", "--capacity-threads=3", "--kube-api-capacity-qps=7",
         "--kube-api-capacity-burst=9"]
    )  # fmt: skip
    assert (cfg.enable_capacity, cfg.capacity_for_immediate_binding) == (True, True)
    assert (cfg.capacity_poll_interval, cfg.capacity_ownerref_level) == (120.0, -1)
    assert (cfg.capacity_threads, cfg.kube_api_capacity_qps, cfg.kube_api_capacity_burst) == (
        3, 7.0, 9
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--capacity-threads=0", "--capacity-threads must be at least 1"),
        ("--capacity-poll-interval=0s", "--capacity-poll-interval must be positive"),
        ("--kube-api-capacity-qps=0", "--kube-api-capacity-qps must be positive"),
        ("--snapshot-orphan-sweep-interval=-1s", "invalid duration|must not be negative"),
    ],
)
def test_invalid_capacity_values(arg: str, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        parse_args([arg])


def test_snapshot_restore_flags() -> None:
    cfg = parse_args([])
    assert (cfg.snapshot_orphan_sweep_interval, cfg.prevent_volume_mode_conversion) == (300.0, True)
    cfg = parse_args(
        ["--snapshot-orphan-sweep-interval=0", "--prevent-volume-mode-conversion=false"]
    )
    assert (cfg.snapshot_orphan_sweep_interval, cfg.prevent_volume_mode_conversion) == (0.0, False)
    assert parse_args(["-snapshot-orphan-sweep-interval=90s"]).snapshot_orphan_sweep_interval == 90


def test_pprof_is_accepted_with_a_warning() -> None:
    cfg = parse_args(["--enable-pprof"])
    assert cfg.warnings and "pprof" in cfg.warnings[0]


def test_labels_and_gates_parse_with_the_shared_parsers() -> None:
    assert parse_args([]).kube.leader_election_labels == {}
    cfg = parse_args(
        [
            "--leader-election-labels=a:b,c:",
            "--feature-gates=Topology=false,ReleaseLeaderElectionOnExit=true",
        ]
    )
    assert cfg.kube.leader_election_labels == {"a": "b", "c": ""}
    assert cfg.gates["Topology"] is False
    assert cfg.gates["ReleaseLeaderElectionOnExit"] is True
    assert cfg.gates.explicit == {"Topology", "ReleaseLeaderElectionOnExit"}
    # Repeated flags merge, later values win, as Go's --feature-gates.
    repeated = parse_args(["--feature-gates=Topology=false", "--feature-gates=Topology=true"])
    assert repeated.gates["Topology"] is True
    # AllAlpha reaches the alpha gates the provisioner supports... and only those.
    with pytest.raises(click.UsageError, match="CrossNamespaceVolumeDataSource"):
        parse_args(["--feature-gates=AllAlpha=true"])
    ok = parse_args(["--feature-gates=AllAlpha=true,CrossNamespaceVolumeDataSource=false"])
    assert ok.gates["ReleaseLeaderElectionOnExit"] is True


def test_kubeconfig_and_master_help_is_the_shared_one() -> None:
    text = " ".join(command.get_help(click.Context(command)).split())
    assert "empty means KUBECONFIG, then in-cluster config" in text
    assert "overrides the kubeconfig's server" in text
