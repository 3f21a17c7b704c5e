"""The flags of ``csi-sidecars provisioner``: every flag and default of external-provisioner v6.3.

:func:`provisioner_options` declares them as click options (Go-style argv is normalised by
:class:`csi_sidecars.runtime.flags.GoCommand`); :func:`build_config` validates the values into a
:class:`ProvisionerConfig`. Flags of features csi-sidecars does not implement yet (capacity
tracking, node deployment, snapshot restore, cross-namespace data sources) are accepted only
with their default value; anything else fails with
``flag --X is not supported yet by csi-sidecars provisioner``, so a manifest never silently
loses a behaviour it asked for. The role command (wired later) adds ``app.common_options``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from csi_sidecars.provisioner.secrets import is_dns1123_subdomain
from csi_sidecars.runtime import app
from csi_sidecars.runtime.flags import DURATION, GoCommand, bool_flag, parse_go_bool

F = TypeVar("F", bound=Callable[..., Any])

#: Feature gates of external-provisioner v6.3 and their defaults.
FEATURE_GATES: dict[str, bool] = {
    "Topology": True,
    "CrossNamespaceVolumeDataSource": False,
    "VolumeAttributesClass": True,
    "ReleaseLeaderElectionOnExit": False,
}
#: Gates whose non-default value needs a feature we do not have yet.
UNSUPPORTED_GATE_VALUES: dict[str, bool] = {"CrossNamespaceVolumeDataSource": True}

#: Flags of features not built yet: option parameter name -> default (a non-default is refused).
UNSUPPORTED_FLAGS: dict[str, Any] = {
    "enable_capacity": False,
    "capacity_for_immediate_binding": False,
    "capacity_poll_interval": 60.0,
    "capacity_ownerref_level": 1,
    "capacity_threads": 1,
    "kube_api_capacity_qps": 1.0,
    "kube_api_capacity_burst": 5,
    "node_deployment": False,
    "node_deployment_immediate_binding": True,
    "node_deployment_base_delay": 20.0,
    "node_deployment_max_delay": 60.0,
    "snapshot_orphan_sweep_interval": 300.0,
    "prevent_volume_mode_conversion": True,
}


class ConfigError(click.UsageError):
    """A flag value that cannot work; click prints it and exits 2."""


def _opt(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    kwargs.setdefault("show_default", True)
    return click.option(*decls, **kwargs)


_OPTIONS: list[Callable[[Any], Any]] = [
    # common sidecar flags (csi-lib-utils standardflags)
    _opt("--kubeconfig", default="", help="Kubeconfig path (env KUBECONFIG wins)."),
    _opt("--master", default="", help="API server URL; used with --kubeconfig when set."),
    _opt("--csi-address", default="/run/csi/socket", help="Address of the CSI driver socket."),
    bool_flag("--leader-election", help="Enable Lease-based leader election."),
    _opt("--leader-election-namespace", default="", help="Namespace of the leader Lease."),
    _opt("--leader-election-lease-duration", type=DURATION, default="15s", help="Lease duration."),
    _opt("--leader-election-renew-deadline", type=DURATION, default="10s", help="Renew deadline."),
    _opt("--leader-election-retry-period", type=DURATION, default="5s", help="Retry period."),
    _opt("--leader-election-labels", default="", help="k:v,k2:v2 labels put on the Lease."),
    bool_flag(
        "--leader-election-release-on-stop",
        default=True,
        help="Release the Lease on SIGTERM so a standby takes over at once (as every role).",
    ),
    _opt("--kube-api-qps", type=float, default=5.0, help="QPS of the main API client."),
    _opt("--kube-api-burst", type=int, default=10, help="Burst of the main API client."),
    _opt("--http-endpoint", default="", help="host:port of the metrics and health server."),
    _opt("--metrics-address", default="", help="(deprecated) metrics host:port."),
    _opt("--metrics-path", default="/metrics", help="HTTP path of the metrics."),
    # external-provisioner flags
    _opt("--volume-name-prefix", default="pvc", help="Prefix of PV and volume names."),
    _opt("--volume-name-uuid-length", type=int, default=-1,
         help="Cut the dashless PVC UID in volume names to this length (-1: full UID)."),
    _opt("--retry-interval-start", type=DURATION, default="1s", help="Initial retry interval."),
    _opt("--retry-interval-max", type=DURATION, default="5m", help="Maximum retry interval."),
    _opt("--worker-threads", type=int, default=100, help="Simultaneous provision/delete workers."),
    _opt("--cloning-protection-threads", type=int, default=1,
         help="Workers removing the clone-source finalizer."),
    _opt("--snapshot-orphan-sweep-interval", type=DURATION, default="5m",
         help="(not supported yet) Snapshot source-protection finalizer sweep period."),
    _opt("--capacity-threads", type=int, default=1, help="(not supported yet) Capacity workers."),
    _opt("--timeout", type=DURATION, default="10s", help="Timeout of each CSI call."),
    bool_flag("--strict-topology", help="Late binding: only the selected node's topology."),
    bool_flag("--immediate-topology", default=True,
              help="Immediate binding: pass the aggregated cluster topology."),
    bool_flag("--extra-create-metadata", help="Add PVC/PV name and namespace to parameters."),
    bool_flag("--enable-pprof", help="Accepted for compatibility; Python has no pprof."),
    _opt("--default-fstype", default="", help="fsType when the StorageClass sets none."),
    _opt("--kube-api-capacity-qps", type=float, default=1.0,
         help="(not supported yet) QPS of the capacity client."),
    _opt("--kube-api-capacity-burst", type=int, default=5,
         help="(not supported yet) Burst of the capacity client."),
    bool_flag("--enable-capacity", help="(not supported yet) Produce CSIStorageCapacity objects."),
    bool_flag("--capacity-for-immediate-binding",
              help="(not supported yet) Capacity for Immediate classes too."),
    _opt("--capacity-poll-interval", type=DURATION, default="1m",
         help="(not supported yet) Capacity poll period."),
    _opt("--capacity-ownerref-level", type=int, default=1,
         help="(not supported yet) Owner of CSIStorageCapacity objects."),
    bool_flag("--node-deployment", help="(not supported yet) One provisioner per node."),
    bool_flag("--node-deployment-immediate-binding", default=True,
              help="(not supported yet) Node mode: race for Immediate PVCs."),
    _opt("--node-deployment-base-delay", type=DURATION, default="20s",
         help="(not supported yet) Node mode: initial ownership delay."),
    _opt("--node-deployment-max-delay", type=DURATION, default="60s",
         help="(not supported yet) Node mode: maximum ownership delay."),
    bool_flag("--controller-publish-readonly",
              help="Mark single-ROX PVs readOnly for ControllerPublish."),
    bool_flag("--prevent-volume-mode-conversion", default=True,
              help="(snapshot restore, not supported yet) Refuse volume mode changes."),
    _opt("--feature-gates", default="", help="key=bool,... feature gates."),
]  # fmt: skip


def provisioner_options(func: F) -> F:
    """Add every provisioner flag (not ``-v``/``--logging-format``/``--version``) to a command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


@dataclass(frozen=True)
class ProvisionerConfig:
    """The validated flags of the provisioner role."""

    kubeconfig: str
    master: str
    csi_address: str
    leader_election: bool
    leader_election_namespace: str
    leader_election_lease_duration: float
    leader_election_renew_deadline: float
    leader_election_retry_period: float
    leader_election_labels: dict[str, str]
    leader_election_release_on_stop: bool
    kube_api_qps: float
    kube_api_burst: int
    http_endpoint: str
    metrics_address: str
    metrics_path: str
    volume_name_prefix: str
    volume_name_uuid_length: int
    retry_interval_start: float
    retry_interval_max: float
    worker_threads: int
    cloning_protection_threads: int
    timeout: float
    strict_topology: bool
    immediate_topology: bool
    extra_create_metadata: bool
    default_fstype: str
    controller_publish_readonly: bool
    feature_gates: dict[str, bool]
    #: gates given explicitly on the command line (VolumeAttributesClass auto-detection
    #: applies only when it was not)
    explicit_gates: frozenset[str] = frozenset()
    #: non-fatal notes to log once at start-up
    warnings: tuple[str, ...] = field(default_factory=tuple)


def parse_labels(text: str) -> dict[str, str]:
    """Parse ``--leader-election-labels`` (``k:v,k2:v2``).

    Raises:
        ConfigError: for an item without ``:`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ConfigError(
                f'invalid argument "{text}" for "--leader-election-labels" flag: '
                f"{item} must be formatted as key:value"
            )
        out[key.strip()] = value.strip()
    return out


def parse_feature_gates(text: str) -> tuple[dict[str, bool], frozenset[str]]:
    """Parse ``--feature-gates`` (``Key=true,Key2=false``) over the defaults.

    Raises:
        ConfigError: malformed item, unknown gate, or a gate value needing an unsupported feature.
    """
    gates = dict(FEATURE_GATES)
    explicit: set[str] = set()
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"missing bool value for {key}")
        try:
            enabled = parse_go_bool(value.strip())
        except ValueError:
            raise ConfigError(f"invalid value of {key}: {value.strip()}") from None
        if key not in FEATURE_GATES:
            raise ConfigError(f"unrecognized feature gate: {key}")
        if UNSUPPORTED_GATE_VALUES.get(key) == enabled:
            raise ConfigError(
                f"feature gate {key}={str(enabled).lower()} is not supported yet by "
                "csi-sidecars provisioner"
            )
        gates[key] = enabled
        explicit.add(key)
    return gates, frozenset(explicit)


def build_config(**values: Any) -> ProvisionerConfig:
    """Validate the option values of :func:`provisioner_options`.

    Raises:
        ConfigError: an unsupported feature flag with a non-default value, an invalid
            ``--volume-name-uuid-length`` or prefix, non-positive worker counts or durations,
            or both ``--http-endpoint`` and ``--metrics-address``.
    """
    for flag, default in UNSUPPORTED_FLAGS.items():
        if values.pop(flag) != default:
            raise ConfigError(
                f"flag --{flag.replace('_', '-')} is not supported yet by csi-sidecars provisioner"
            )
    warnings: list[str] = []
    if values.pop("enable_pprof"):
        warnings.append("--enable-pprof is accepted but ignored: Python has no pprof")
    length = values["volume_name_uuid_length"]
    if length != -1 and not 1 <= length <= 32:
        raise ConfigError(
            f"--volume-name-uuid-length must be -1 (full UID) or between 1 and 32, got {length}"
        )
    prefix = values["volume_name_prefix"]
    if not prefix or not is_dns1123_subdomain(f"{prefix}-{'0' * 36}"):
        raise ConfigError(
            f"--volume-name-prefix {prefix!r} does not give valid PersistentVolume names "
            "(lowercase letters, digits, '-' and '.'; at most 216 characters)"
        )
    for flag in ("worker_threads", "cloning_protection_threads"):
        if values[flag] < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    for flag in ("timeout", "retry_interval_start", "retry_interval_max"):
        if values[flag] <= 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be positive")
    if values["retry_interval_max"] < values["retry_interval_start"]:
        raise ConfigError("--retry-interval-max must not be shorter than --retry-interval-start")
    if values["http_endpoint"] and values["metrics_address"]:
        raise ConfigError("only one of `--metrics-address` and `--http-endpoint` can be set.")
    gates, explicit = parse_feature_gates(values.pop("feature_gates"))
    labels = parse_labels(values.pop("leader_election_labels"))
    return ProvisionerConfig(
        **values,
        leader_election_labels=labels,
        feature_gates=gates,
        explicit_gates=explicit,
        warnings=tuple(warnings),
    )


@click.command("provisioner", cls=GoCommand)
@provisioner_options
@app.common_options
def _parse_command(**values: Any) -> ProvisionerConfig:
    for common in ("v", "logging_format", "version"):
        values.pop(common)
    return build_config(**values)


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ProvisionerConfig:
    """Parse a provisioner argv (as a container passes it) into a config, without running.

    Args:
        argv: the arguments after the subcommand name.
        env: unused today; reserved for environment checks (``NODE_NAME``...).

    Raises:
        click.UsageError: unknown flag, bad value or unsupported feature.
    """
    del env
    result = _parse_command.main(list(argv), standalone_mode=False)
    if not isinstance(result, ProvisionerConfig):
        raise click.UsageError("no configuration parsed")
    return result
