"""``csi-sidecars resizer``: the command, a drop-in for external-resizer v2.2.

Flags come from the shared groups (``--csi-address`` and ``--timeout`` 10s, the HTTP flags, the
Kubernetes and leader-election flags with ``--master``, ``--retry-interval-start/max``,
``--feature-gates``) plus the resizer's own: ``--workers`` 10, ``--resync-period`` 10m,
``--extra-modify-metadata``, ``--handle-volume-inuse-error`` (true). Start-up, HTTP, leader
election (Lease ``external-resizer-<driver>``) and the clean stop are
:func:`csi_sidecars.controller.run_controller`; the claims are
:mod:`csi_sidecars.resizer.controller`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from csi_sidecars.controller import ControllerOptions, release_on_exit, run_controller
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.resizer import names
from csi_sidecars.resizer.controller import ResizerConfig, make_setup
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import FeatureGates
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

log = rlog.get_logger("resizer")

ROLE = "resizer"

#: How long in-flight CSI calls may take to finish after SIGTERM, beyond --timeout.
DRAIN_MARGIN = 5.0

resizer_options = compose(
    csi_options(timeout="10s", timeout_help="Timeout of each CSI call."),
    http_options(),
    kube_options(master=True),
    retry_options(),
    worker_threads(10, name="--workers", help="Claims processed at once."),
    click.option(
        "--resync-period",
        type=DURATION,
        default="10m",
        show_default=True,
        help="How often every claim is looked at again.",
    ),
    bool_flag(
        "--extra-modify-metadata",
        help="Add the PVC and PV names to ControllerModifyVolume's mutable parameters.",
    ),
    bool_flag(
        "--handle-volume-inuse-error",
        default=True,
        help="After a FailedPrecondition (offline expansion only), wait until no pod uses the "
        "claim before trying again.",
    ),
    feature_gates(names.GATES, role=ROLE),
    app.common_options,
)


@click.command(
    ROLE,
    cls=GoCommand,
    help="Expand and modify volumes for PersistentVolumeClaims (external-resizer v2.2).",
)
@resizer_options
def command(
    *,
    csi: CsiOptions,
    http: HttpOptions,
    kube: KubeOptions,
    retry: RetryOptions,
    gates: FeatureGates,
    workers: int,
    resync_period: float,
    extra_modify_metadata: bool,
    handle_volume_inuse_error: bool,
    v: int,
    logging_format: str,
    version: bool,
) -> None:
    """Run the resizer role."""
    app.start(ROLE, v, logging_format, version)
    try:
        http.validate()
        retry.validate()
        if csi.timeout <= 0:
            raise ConfigError("--timeout must be positive")
    except ConfigError as err:
        log.error(str(err))
        raise SystemExit(1) from None
    if http.metrics_address:
        log.warning("--metrics-address is deprecated, use --http-endpoint")
    cfg = ResizerConfig(
        timeout=csi.timeout,
        resync=resync_period,
        workers=max(1, workers),
        retry_start=retry.start,
        retry_max=retry.maximum,
        extra_modify_metadata=extra_modify_metadata,
        handle_in_use=handle_volume_inuse_error,
    )
    app.run(lambda stop: run_resizer(cfg, gates, csi, http, kube, stop))


def controller_options(cfg: ResizerConfig, csi: CsiOptions, http: HttpOptions) -> ControllerOptions:
    """The shared controller options of the resizer."""
    return ControllerOptions(
        role=ROLE,
        event_component="external-resizer",  # completed with the driver name in setup
        csi_address=csi.address,
        timeout=cfg.timeout,
        http_endpoint=http.endpoint,
        metrics_address=http.metrics_address,
        metrics_path=http.metrics_path,
        drain_timeout=cfg.timeout + DRAIN_MARGIN,
    )


async def run_resizer(
    cfg: ResizerConfig,
    gates: FeatureGates,
    csi: CsiOptions,
    http: HttpOptions,
    kube: KubeOptions,
    stop: asyncio.Event,
    **testing: Any,
) -> int:
    """The role's main; returns the exit code. ``testing`` (``port=``, ``conn=``) goes to
    :func:`~csi_sidecars.controller.run_controller`."""
    release_on_exit(kube, gates[names.GATE_RELEASE_ON_EXIT])
    return await run_controller(
        controller_options(cfg, csi, http),
        kube,
        stop,
        lock_name=lambda driver: names.lease_name(driver.name),
        setup=make_setup(cfg, gates),
        **testing,
    )
