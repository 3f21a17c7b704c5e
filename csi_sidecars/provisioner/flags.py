"""The flags of ``csi-sidecars provisioner``: every flag and default of external-provisioner v6.3.

The flags every role shares are the shared groups, declared once (:mod:`csi_sidecars.runtime.
options`): ``--csi-address`` and ``--timeout`` (10s), the HTTP flags, ``--retry-interval-start``
/ ``--retry-interval-max``, ``--worker-threads`` (100), ``--feature-gates`` (the provisioner's
gates), the Kubernetes and leader-election flags with ``--master``
(:func:`csi_sidecars.kube.options.kube_options`) and ``-v`` / ``--logging-format`` /
``--version``. This module adds the provisioner's own flags and :func:`provisioner_options`
hands the command one validated :class:`ProvisionerConfig` as ``config``.

Every Go flag works. The one feature not built yet, cross-namespace data sources, is a feature
gate: ``CrossNamespaceVolumeDataSource=true`` fails with ``... is not supported yet by
csi-sidecars provisioner``, so a manifest never silently loses a behaviour it asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from csi_sidecars.controller import release_on_exit
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.kube.secretrefs import is_dns1123_subdomain
from csi_sidecars.runtime import app
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import ALL_ALPHA, ALL_BETA, FeatureGates, Gate
from csi_sidecars.runtime.flags import DURATION, GoCommand, bool_flag
from csi_sidecars.runtime.options import (
    CsiOptions,
    HttpOptions,
    RetryOptions,
    compose,
    csi_options,
    feature_gates,
    http_options,
    retry_options,
    worker_threads,
)

F = TypeVar("F", bound=Callable[..., Any])

ROLE = "provisioner"

GATE_TOPOLOGY = "Topology"
GATE_CROSS_NAMESPACE = "CrossNamespaceVolumeDataSource"
GATE_VAC = "VolumeAttributesClass"
GATE_RELEASE_ON_EXIT = "ReleaseLeaderElectionOnExit"

#: Feature gates of external-provisioner v6.3: defaults and maturity.
FEATURE_GATES: dict[str, Gate] = {
    GATE_TOPOLOGY: Gate(True, "ga"),
    GATE_CROSS_NAMESPACE: Gate(False, "alpha"),
    GATE_VAC: Gate(True, "ga"),
    GATE_RELEASE_ON_EXIT: Gate(False, "alpha"),
}
#: Gates whose value needs a feature we do not have yet.
UNSUPPORTED_GATE_VALUES: dict[str, bool] = {GATE_CROSS_NAMESPACE: True}


#: external-provisioner's message for ``--metrics-address`` together with ``--http-endpoint``.
HTTP_EXCLUSIVE = "only one of `--metrics-address` and `--http-endpoint` can be set."


def _opt(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    kwargs.setdefault("show_default", True)
    return click.option(*decls, **kwargs)


#: The provisioner's own flags (the shared ones are composed in :func:`provisioner_options`).
_OWN: list[Callable[[Any], Any]] = [
    _opt("--volume-name-prefix", default="pvc", help="Prefix of PV and volume names."),
    _opt("--volume-name-uuid-length", type=int, default=-1,
         help="Cut the dashless PVC UID in volume names to this length (-1: full UID)."),
    _opt("--cloning-protection-threads", type=int, default=1,
         help="Workers removing the clone-source finalizer."),
    _opt("--snapshot-orphan-sweep-interval", type=DURATION, default="5m",
         help="Period of the snapshot source-protection finalizer sweep (0 disables it)."),
    _opt("--capacity-threads", type=int, default=1, help="Workers of the capacity controller."),
    bool_flag("--strict-topology", help="Late binding: only the selected node's topology."),
    bool_flag("--immediate-topology", default=True,
              help="Immediate binding: pass the aggregated cluster topology."),
    bool_flag("--extra-create-metadata", help="Add PVC/PV name and namespace to parameters."),
    bool_flag("--enable-pprof", help="Accepted for compatibility; Python has no pprof."),
    _opt("--default-fstype", default="", help="fsType when the StorageClass sets none."),
    _opt("--kube-api-capacity-qps", type=float, default=1.0,
         help="QPS of the client writing CSIStorageCapacity objects."),
    _opt("--kube-api-capacity-burst", type=int, default=5,
         help="Burst of the client writing CSIStorageCapacity objects."),
    bool_flag("--enable-capacity", help="Produce CSIStorageCapacity objects from GetCapacity."),
    bool_flag("--capacity-for-immediate-binding",
              help="Capacity for StorageClasses with Immediate binding too."),
    _opt("--capacity-poll-interval", type=DURATION, default="1m",
         help="How often every capacity object is checked against GetCapacity."),
    _opt("--capacity-ownerref-level", type=int, default=1,
         help="Owner of CSIStorageCapacity objects: -1 none, 0 the pod (POD_NAME), 1 its "
              "controller (StatefulSet, DaemonSet, ReplicaSet), 2 a Deployment, ..."),
    bool_flag("--node-deployment", help="One provisioner per node, next to the node's driver."),
    bool_flag("--node-deployment-immediate-binding", default=True,
              help="Node deployment: node provisioners race for Immediate claims."),
    _opt("--node-deployment-base-delay", type=DURATION, default="20s",
         help="Node deployment: first (jittered) wait before owning an Immediate claim."),
    _opt("--node-deployment-max-delay", type=DURATION, default="60s",
         help="Node deployment: longest wait before owning an Immediate claim."),
    bool_flag("--controller-publish-readonly",
              help="Mark single-ROX PVs readOnly for ControllerPublish."),
    bool_flag("--prevent-volume-mode-conversion", default=True,
              help="Refuse restores that change the volume mode unless the content allows it."),
]  # fmt: skip


@dataclass(frozen=True)
class ProvisionerConfig:
    """The validated flags of the provisioner role."""

    csi: CsiOptions = field(default_factory=lambda: CsiOptions(timeout=10.0))
    http: HttpOptions = field(default_factory=HttpOptions)
    retry: RetryOptions = field(default_factory=RetryOptions)
    gates: FeatureGates = field(
        default_factory=lambda: FeatureGates({k: g.default for k, g in FEATURE_GATES.items()})
    )
    kube: KubeOptions = field(default_factory=KubeOptions)
    worker_threads: int = 100
    volume_name_prefix: str = "pvc"
    volume_name_uuid_length: int = -1
    cloning_protection_threads: int = 1
    strict_topology: bool = False
    immediate_topology: bool = True
    extra_create_metadata: bool = False
    default_fstype: str = ""
    controller_publish_readonly: bool = False
    snapshot_orphan_sweep_interval: float = 300.0
    enable_capacity: bool = False
    capacity_for_immediate_binding: bool = False
    capacity_poll_interval: float = 60.0
    capacity_ownerref_level: int = 1
    capacity_threads: int = 1
    kube_api_capacity_qps: float = 1.0
    kube_api_capacity_burst: int = 5
    node_deployment: bool = False
    node_deployment_immediate_binding: bool = True
    node_deployment_base_delay: float = 20.0
    node_deployment_max_delay: float = 60.0
    prevent_volume_mode_conversion: bool = True
    v: int = 0
    logging_format: str = "text"
    version: bool = False
    #: non-fatal notes to log once at start-up
    warnings: tuple[str, ...] = ()


def _check_gates(gates: FeatureGates) -> None:
    """Refuse unsupported gate values, also when ``AllAlpha`` / ``AllBeta`` set them."""
    for key, refused in UNSUPPORTED_GATE_VALUES.items():
        if gates[key] == refused:
            origin = "" if gates.set_explicitly(key) else f" (set by {ALL_ALPHA} or {ALL_BETA})"
            raise ConfigError(
                f"feature gate {key}={str(refused).lower()}{origin} is not supported yet by "
                f"csi-sidecars {ROLE}"
            )


def build_config(**values: Any) -> ProvisionerConfig:
    """Validate the option values of :func:`provisioner_options` into a config.

    Also combines ``--leader-election-release-on-stop`` with the ``ReleaseLeaderElectionOnExit``
    gate (:func:`csi_sidecars.controller.release_on_exit`).

    Raises:
        ConfigError: an unsupported gate value, an invalid
            ``--volume-name-uuid-length`` or prefix, non-positive worker counts or durations,
            or both ``--http-endpoint`` and ``--metrics-address``.
    """
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
    for flag in ("worker_threads", "cloning_protection_threads", "capacity_threads"):
        if values[flag] < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    if values["node_deployment_base_delay"] <= 0 or values["node_deployment_max_delay"] <= 0:
        raise ConfigError(
            "--node-deployment-base-delay and --node-deployment-max-delay must be positive"
        )
    if values["capacity_poll_interval"] <= 0:
        raise ConfigError("--capacity-poll-interval must be positive")
    if values["kube_api_capacity_qps"] <= 0 or values["kube_api_capacity_burst"] < 1:
        raise ConfigError(
            "--kube-api-capacity-qps must be positive, --kube-api-capacity-burst >= 1"
        )
    if values["snapshot_orphan_sweep_interval"] < 0:
        raise ConfigError("--snapshot-orphan-sweep-interval must not be negative")
    csi: CsiOptions = values["csi"]
    if csi.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    values["retry"].validate()
    values["http"].validate(HTTP_EXCLUSIVE)
    gates: FeatureGates = values["gates"]
    _check_gates(gates)
    release_on_exit(values["kube"], gates[GATE_RELEASE_ON_EXIT])
    return ProvisionerConfig(**values, warnings=tuple(warnings))


def provisioner_options(func: F) -> F:
    """Add every provisioner flag; the command receives ``config: ProvisionerConfig``.

    An invalid value raises :class:`~csi_sidecars.runtime.errors.ConfigError` (a
    :class:`click.UsageError`: ``Error: <message>``, exit 2) before the command body runs.
    """

    @functools.wraps(func)
    def wrapper(**values: Any) -> Any:
        return func(config=build_config(**values))

    options: Callable[[Any], F] = compose(
        csi_options(timeout="10s", timeout_help="Timeout of each CSI call."),
        http_options(),
        retry_options(),
        worker_threads(100, help="Simultaneous provision/delete workers."),
        feature_gates(FEATURE_GATES, role=ROLE, unsupported=UNSUPPORTED_GATE_VALUES),
        kube_options(master=True),
        app.common_options,
        *_OWN,
    )
    return options(wrapper)


@click.command(ROLE, cls=GoCommand)
@provisioner_options
def _parse_command(*, config: ProvisionerConfig) -> ProvisionerConfig:
    return config


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


__all__ = [
    "FEATURE_GATES",
    "HTTP_EXCLUSIVE",
    "UNSUPPORTED_GATE_VALUES",
    "ConfigError",
    "ProvisionerConfig",
    "build_config",
    "parse_args",
    "provisioner_options",
]
