"""``csi-sidecars snapshot-controller``: the command, a drop-in for snapshot-controller v8.6.

The Go snapshot-controller has its own flag set (not csi-lib-utils' sidecar flags: no
``--csi-address``, no ``--timeout``). Composed from the shared groups: the Kubernetes and leader
election flags (``--kubeconfig``, ``--kube-api-qps`` 5, ``--kube-api-burst`` 10,
``--leader-election`` and its namespace and 15s/10s/5s timings), the HTTP flags
(``--http-endpoint``, ``--metrics-path``), ``--retry-interval-start`` 1s /
``--retry-interval-max`` 5m, ``--worker-threads`` 10 (per queue) and ``--feature-gates``
(``CSIVolumeGroupSnapshot``, beta, default false in v8.6.0; ``ReleaseLeaderElectionOnExit``);
and its own ``--resync-period`` 15m, ``--enable-distributed-snapshotting``,
``--prevent-volume-mode-conversion`` (default true) and ``--retry-crd-interval-max`` 30s.

Three accepted flags the Go controller does not have, all harmless: ``--leader-election-labels``
and ``--leader-election-release-on-stop`` (every csi-sidecars role has them; the Lease is
released on SIGTERM unless set to false, or always with ``ReleaseLeaderElectionOnExit``) and the
deprecated ``--metrics-address``.

The Lease is ``snapshot-controller-leader``; events come from ``snapshot-controller``.
"""

from __future__ import annotations

import asyncio

import click

from csi_sidecars.controller import ControllerOptions, release_on_exit, run_controller
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.kube.snapshots import (
    GATE_RELEASE_LEADER_ELECTION_ON_EXIT,
    GATE_VOLUME_GROUP_SNAPSHOT,
)
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import FeatureGates, Gate
from csi_sidecars.runtime.flags import DURATION, GoCommand, bool_flag
from csi_sidecars.runtime.options import (
    HttpOptions,
    RetryOptions,
    compose,
    feature_gates,
    http_options,
    retry_options,
    worker_threads,
)
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller.controller import Config, make_setup

log = rlog.get_logger(names.ROLE)

#: The gates of snapshot-controller v8.6.0 (pkg/features).
GATES = {
    GATE_VOLUME_GROUP_SNAPSHOT: Gate(False, "beta"),
    GATE_RELEASE_LEADER_ELECTION_ON_EXIT: Gate(False, "alpha"),
}


def build_config(
    *,
    resync_period: float,
    worker_threads: int,
    retry: RetryOptions,
    gates: FeatureGates,
    enable_distributed_snapshotting: bool,
    prevent_volume_mode_conversion: bool,
    retry_crd_interval_max: float,
) -> Config:
    """Validate the flags into a :class:`Config`.

    Raises:
        ConfigError: a value that cannot work.
    """
    retry.validate()
    if resync_period < 0:
        raise ConfigError("--resync-period must not be negative")
    if retry_crd_interval_max < 0:
        raise ConfigError("--retry-crd-interval-max must not be negative")
    return Config(
        resync=resync_period,
        workers=max(1, worker_threads),
        retry_start=retry.start,
        retry_max=retry.maximum,
        retry_crd_max=retry_crd_interval_max,
        groups=gates[GATE_VOLUME_GROUP_SNAPSHOT],
        distributed=enable_distributed_snapshotting,
        prevent_volume_mode_conversion=prevent_volume_mode_conversion,
    )


async def run(config: Config, http: HttpOptions, kube: KubeOptions, stop: asyncio.Event) -> int:
    """The role's main; returns the exit code."""
    options = ControllerOptions(
        role=names.ROLE,
        event_component=names.EVENT_COMPONENT,
        http_endpoint=http.endpoint,
        metrics_address=http.metrics_address,
        metrics_path=http.metrics_path,
        needs_driver=False,
    )
    return await run_controller(
        options, kube, stop, lock_name=lambda _driver: names.LEASE_NAME, setup=make_setup(config)
    )


@click.command(
    names.ROLE,
    cls=GoCommand,
    help="Bind VolumeSnapshots to contents and drive their lifecycle (snapshot-controller v8.6).",
)
@compose(
    kube_options,
    http_options(),
    retry_options(),
    worker_threads(10, help="Workers per queue."),
    feature_gates(GATES, role=names.ROLE),
)
@click.option(
    "--resync-period",
    type=DURATION,
    default="15m",
    show_default=True,
    help="How often the caches are re-checked (settled objects are skipped).",
)
@bool_flag(
    "--enable-distributed-snapshotting",
    help="Label each dynamic content with the node of its volume (node-local sidecars).",
)
@bool_flag(
    "--prevent-volume-mode-conversion",
    default=True,
    help="Record the source volume mode on dynamic contents.",
)
@click.option(
    "--retry-crd-interval-max",
    type=DURATION,
    default="30s",
    show_default=True,
    help="How long to wait for the snapshot CRDs at start-up.",
)
@app.common_options
def command(
    *,
    kube: KubeOptions,
    http: HttpOptions,
    retry: RetryOptions,
    worker_threads: int,
    gates: FeatureGates,
    resync_period: float,
    enable_distributed_snapshotting: bool,
    prevent_volume_mode_conversion: bool,
    retry_crd_interval_max: float,
    v: int,
    logging_format: str,
    version: bool,
) -> None:
    """Run the snapshot-controller role."""
    app.start(names.ROLE, v, logging_format, version)
    try:
        http.validate()
        config = build_config(
            resync_period=resync_period,
            worker_threads=worker_threads,
            retry=retry,
            gates=gates,
            enable_distributed_snapshotting=enable_distributed_snapshotting,
            prevent_volume_mode_conversion=prevent_volume_mode_conversion,
            retry_crd_interval_max=retry_crd_interval_max,
        )
    except ConfigError as err:
        log.error(str(err))
        raise SystemExit(1) from None
    if http.metrics_address:
        log.warning("--metrics-address is deprecated, use --http-endpoint")
    release_on_exit(kube, gates[GATE_RELEASE_LEADER_ELECTION_ON_EXIT])
    app.run(lambda stop: run(config, http, kube, stop))
