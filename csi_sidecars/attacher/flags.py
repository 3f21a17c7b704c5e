"""The command-line flags of ``csi-sidecars attacher`` (external-attacher v4.12 names and defaults).

Attacher flags (``cmd/csi-attacher/main.go``): ``--resync`` 10m, ``--timeout`` 15s,
``--retry-interval-start`` 1s, ``--retry-interval-max`` 5m, ``--worker-threads`` 10,
``--max-entries`` 0, ``--default-fstype`` "", ``--reconcile-sync`` 1m,
``--max-grpc-log-length`` -1, ``--feature-gates`` (``ReleaseLeaderElectionOnExit`` alpha, off;
``MutableCSINodeAllocatableCount`` GA, on). Common csi-lib-utils flags: ``--csi-address``
(``/run/csi/socket``), ``--http-endpoint``, ``--metrics-address`` (deprecated),
``--metrics-path`` (``/metrics``), the Kubernetes and leader-election flags of
:func:`csi_sidecars.kube.options.kube_options`, and ``-v`` / ``--logging-format`` /
``--version`` from :func:`csi_sidecars.runtime.app.common_options`. ``--automaxprocs`` and klog's
file flags are accepted and ignored by :class:`~csi_sidecars.runtime.flags.GoCommand`.

:func:`attacher_options` adds them all to a click command, which then receives one
:class:`AttacherFlags` as ``flags``; :func:`validate` applies the start-up checks that make the
Go attacher exit 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from csi_sidecars.attacher import names
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.runtime import app
from csi_sidecars.runtime.flags import DURATION, parse_go_bool

F = TypeVar("F", bound=Callable[..., Any])

#: Feature gates of external-attacher v4.12: name -> (default, is alpha).
FEATURE_GATES: dict[str, tuple[bool, bool]] = {
    names.GATE_RELEASE_LEADER_ELECTION_ON_EXIT: (False, True),
    names.GATE_MUTABLE_CSINODE_ALLOCATABLE_COUNT: (True, False),
}
ALL_ALPHA = "AllAlpha"
ALL_BETA = "AllBeta"


class ConfigError(Exception):
    """A flag combination the Go attacher rejects at start-up (exit code 1)."""


@dataclass(slots=True)
class AttacherFlags:
    """Every flag of the attacher command, parsed."""

    csi_address: str = "/run/csi/socket"
    resync: float = 600.0
    timeout: float = 15.0
    retry_interval_start: float = 1.0
    retry_interval_max: float = 300.0
    worker_threads: int = 10
    max_entries: int = 0
    default_fstype: str = ""
    reconcile_sync: float = 60.0
    max_grpc_log_length: int = -1
    feature_gates: dict[str, bool] = field(default_factory=dict)
    http_endpoint: str = ""
    metrics_address: str = ""
    metrics_path: str = "/metrics"
    kube: KubeOptions = field(default_factory=KubeOptions)
    v: int = 0
    logging_format: str = "text"
    version: bool = False

    @property
    def http_address(self) -> str:
        """Where the HTTP server listens: ``--metrics-address`` if set, else ``--http-endpoint``."""
        return self.metrics_address or self.http_endpoint

    def gate(self, name: str) -> bool:
        """The value of a feature gate after defaults and ``AllAlpha``/``AllBeta``."""
        return resolve_feature_gates(self.feature_gates)[name]


def parse_feature_gates(values: Iterable[str]) -> dict[str, bool]:
    """Parse ``--feature-gates`` values (``Key=true,Other=false``; repeated flags merge).

    Raises:
        ValueError: a pair without ``=`` or with a value that is not a Go boolean.
    """
    out: dict[str, bool] = {}
    for value in values:
        for item in value.split(","):
            pair = item.strip()
            if not pair:
                continue
            key, eq, raw = pair.partition("=")
            if not eq:
                raise ValueError(f"missing bool value for {key}")
            try:
                out[key.strip()] = parse_go_bool(raw.strip())
            except ValueError:
                raise ValueError(f"invalid value of {key.strip()}={raw.strip()}") from None
    return out


def resolve_feature_gates(given: Mapping[str, bool]) -> dict[str, bool]:
    """Every known gate's value: explicit setting, else ``AllAlpha``/``AllBeta``, else default.

    Raises:
        ConfigError: an unknown gate name (``unrecognized feature gate: X``).
    """
    for key in given:
        if key not in FEATURE_GATES and key not in (ALL_ALPHA, ALL_BETA):
            raise ConfigError(f"unrecognized feature gate: {key}")
    out: dict[str, bool] = {}
    for key, (default, alpha) in FEATURE_GATES.items():
        if key in given:
            out[key] = given[key]
        elif alpha and ALL_ALPHA in given:
            out[key] = given[ALL_ALPHA]
        else:
            out[key] = default
    return out


def validate(flags: AttacherFlags) -> None:
    """The start-up checks of the Go attacher, in its order.

    Raises:
        ConfigError: unknown feature gate; both ``--metrics-address`` and ``--http-endpoint``;
            ``--worker-threads`` 0.
    """
    resolve_feature_gates(flags.feature_gates)
    if flags.metrics_address and flags.http_endpoint:
        raise ConfigError("Only one of `--metrics-address` and `--http-endpoint` can be set")
    if flags.worker_threads == 0:
        raise ConfigError("Option -worker-threads must be greater than zero")


def _gates(_: click.Context, __: click.Parameter, value: tuple[str, ...]) -> dict[str, bool]:
    try:
        return parse_feature_gates(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_FIELDS = (
    "csi_address",
    "resync",
    "timeout",
    "retry_interval_start",
    "retry_interval_max",
    "worker_threads",
    "max_entries",
    "default_fstype",
    "reconcile_sync",
    "max_grpc_log_length",
    "feature_gates",
    "http_endpoint",
    "metrics_address",
    "metrics_path",
    "kube",
    "v",
    "logging_format",
    "version",
)


def attacher_options(func: F) -> F:
    """Add every attacher flag; the command receives them as ``flags: AttacherFlags``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parsed = AttacherFlags(**{name: kwargs.pop(name) for name in _FIELDS})
        return func(*args, flags=parsed, **kwargs)

    decorators: list[Callable[[Any], Any]] = [
        click.option(
            "--csi-address",
            default="/run/csi/socket",
            show_default=True,
            help="Address of the CSI driver socket.",
        ),
        click.option(
            "--resync",
            type=DURATION,
            default="10m",
            show_default=True,
            help="How often every VolumeAttachment is re-evaluated (not the retry interval).",
        ),
        click.option(
            "--timeout",
            type=DURATION,
            default="15s",
            show_default=True,
            help="Timeout of ControllerPublish/Unpublish, of each Probe and of a ListVolumes pass.",
        ),
        click.option(
            "--retry-interval-start",
            type=DURATION,
            default="1s",
            show_default=True,
            help="First retry delay after a failure; doubles on each further failure.",
        ),
        click.option(
            "--retry-interval-max",
            type=DURATION,
            default="5m",
            show_default=True,
            help="Longest retry delay.",
        ),
        click.option(
            "--worker-threads",
            type=click.IntRange(min=0),
            default=10,
            show_default=True,
            help="VolumeAttachments (and PersistentVolumes) processed at the same time.",
        ),
        click.option(
            "--max-entries",
            type=int,
            default=0,
            show_default=True,
            help="Page size of ListVolumes calls; 0 lets the driver decide.",
        ),
        click.option(
            "--default-fstype",
            default="",
            help="Filesystem type published for mount volumes whose PV sets none.",
        ),
        click.option(
            "--reconcile-sync",
            type=DURATION,
            default="1m",
            show_default=True,
            help="How often attachments are checked against ListVolumes (when supported).",
        ),
        click.option(
            "--max-grpc-log-length",
            type=int,
            default=-1,
            show_default=True,
            help="Longest gRPC response logged, in characters; 0 or less means no limit.",
        ),
        click.option(
            "--feature-gates",
            multiple=True,
            callback=_gates,
            help="Key=true|false pairs, comma separated: ReleaseLeaderElectionOnExit (alpha, "
            "default false), MutableCSINodeAllocatableCount (GA, default true).",
        ),
        click.option(
            "--http-endpoint",
            default="",
            help="host:port of the HTTP server for metrics and the leader-election health "
            "check; empty disables it. Cannot be set with --metrics-address.",
        ),
        click.option(
            "--metrics-address",
            default="",
            help="(deprecated) host:port of the metrics server. Cannot be set with "
            "--http-endpoint.",
        ),
        click.option(
            "--metrics-path",
            default="/metrics",
            show_default=True,
            help="HTTP path of the Prometheus metrics.",
        ),
        kube_options,
        app.common_options,
    ]
    out: Any = wrapper
    for deco in reversed(decorators):
        out = deco(out)
    return out  # type: ignore[no-any-return]
