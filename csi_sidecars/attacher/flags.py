"""The command-line flags of ``csi-sidecars attacher`` (external-attacher v4.12 names and defaults).

Shared groups, declared once in the layers (:mod:`csi_sidecars.runtime.options`):
``--csi-address`` (``/run/csi/socket``) and ``--timeout`` (15s, the attacher's default);
``--http-endpoint``, ``--metrics-address`` (deprecated), ``--metrics-path`` (``/metrics``);
``--retry-interval-start`` 1s / ``--retry-interval-max`` 5m; ``--worker-threads`` 10;
``--feature-gates`` (``ReleaseLeaderElectionOnExit`` alpha, off; ``MutableCSINodeAllocatableCount``
GA, on); the Kubernetes and leader-election flags of :func:`csi_sidecars.kube.options.kube_options`;
``-v`` / ``--logging-format`` / ``--version`` of :func:`csi_sidecars.runtime.app.common_options`.
The attacher's own (``cmd/csi-attacher/main.go``): ``--resync`` 10m, ``--max-entries`` 0,
``--default-fstype`` "", ``--reconcile-sync`` 1m, ``--max-grpc-log-length`` -1.
``--automaxprocs`` and klog's file flags are accepted and ignored by
:class:`~csi_sidecars.runtime.flags.GoCommand`.

:func:`attacher_options` adds them all to a click command, which then receives one
:class:`AttacherFlags` as ``flags``; :func:`validate` applies the start-up checks that make the
Go attacher exit 1 (a malformed ``--feature-gates`` value is a usage error, exit 2, as in Go).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from csi_sidecars.attacher import names
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.runtime import app
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import FeatureGates, Gate, GateSpec, parse_gates
from csi_sidecars.runtime.flags import DURATION
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

ROLE = "attacher"

#: Feature gates of external-attacher v4.12.
FEATURE_GATES: GateSpec = {
    names.GATE_RELEASE_LEADER_ELECTION_ON_EXIT: Gate(False, "alpha"),
    names.GATE_MUTABLE_CSINODE_ALLOCATABLE_COUNT: Gate(True, "ga"),
}

#: The Go attacher's message for ``--worker-threads=0``.
WORKER_THREADS_ZERO = "Option -worker-threads must be greater than zero"


def default_gates() -> FeatureGates:
    """Every gate at its default (no ``--feature-gates``)."""
    return parse_gates((), FEATURE_GATES)


@dataclass(slots=True)
class AttacherFlags:
    """Every flag of the attacher command, parsed: the shared groups and the attacher's own."""

    csi: CsiOptions = field(default_factory=lambda: CsiOptions(timeout=15.0))
    http: HttpOptions = field(default_factory=HttpOptions)
    retry: RetryOptions = field(default_factory=RetryOptions)
    gates: FeatureGates = field(default_factory=default_gates)
    kube: KubeOptions = field(default_factory=KubeOptions)
    worker_threads: int = 10
    resync: float = 600.0
    max_entries: int = 0
    default_fstype: str = ""
    reconcile_sync: float = 60.0
    max_grpc_log_length: int = -1
    v: int = 0
    logging_format: str = "text"
    version: bool = False


def validate(flags: AttacherFlags) -> None:
    """The start-up checks of the Go attacher, in its order.

    Raises:
        ConfigError: unknown feature gate; both ``--metrics-address`` and ``--http-endpoint``
            (and a ``--metrics-path`` without a leading ``/``); ``--worker-threads`` 0.
    """
    flags.gates.check_known()
    flags.http.validate()
    if flags.worker_threads == 0:
        raise ConfigError(WORKER_THREADS_ZERO)


_OWN = (
    "csi",
    "http",
    "retry",
    "gates",
    "kube",
    "worker_threads",
    "resync",
    "max_entries",
    "default_fstype",
    "reconcile_sync",
    "max_grpc_log_length",
    "v",
    "logging_format",
    "version",
)


def attacher_options(func: F) -> F:
    """Add every attacher flag; the command receives them as ``flags: AttacherFlags``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parsed = AttacherFlags(**{key: kwargs.pop(key) for key in _OWN})
        return func(*args, flags=parsed, **kwargs)

    decorate: Callable[[Any], Any] = compose(
        csi_options(
            timeout="15s",
            timeout_help="Timeout of ControllerPublish/Unpublish, of each Probe and of a "
            "ListVolumes pass.",
        ),
        click.option(
            "--resync",
            type=DURATION,
            default="10m",
            show_default=True,
            help="How often every VolumeAttachment is re-evaluated (not the retry interval).",
        ),
        retry_options(),
        worker_threads(
            10, help="VolumeAttachments (and PersistentVolumes) processed at the same time."
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
        feature_gates(FEATURE_GATES, role=ROLE, defer_unknown=True),
        http_options(
            endpoint_help="host:port of the HTTP server for metrics and the leader-election "
            "health check; empty disables it. Cannot be set with --metrics-address."
        ),
        kube_options,
        app.common_options,
    )
    return decorate(wrapper)  # type: ignore[no-any-return]
