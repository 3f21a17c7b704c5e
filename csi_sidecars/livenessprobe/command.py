"""``csi-sidecars livenessprobe``: the flags of the Go livenessprobe v2.19, plus our own.

Flags and defaults match the Go sidecar (``--csi-address``, ``--probe-timeout``, the deprecated
``--health-port`` and ``--metrics-address``, ``--http-endpoint``, ``--metrics-path``, klog's
``-v`` and ``--logging-format``), so the upstream manifests run unchanged. Added:
``--max-concurrent-probes`` (see :mod:`csi_sidecars.livenessprobe.server`) and ``--version``,
which the Go livenessprobe lacks but every csi-sidecars role has.

The flags are declared once, on :func:`configure` (flags -> validated config), which the command
and the node bundle (``csi-sidecars run``) both use.
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.livenessprobe.config import (
    DEFAULT_HEALTH_PORT,
    DEFAULT_MAX_CONCURRENT_PROBES,
    Config,
    ConfigError,
    build_config,
)
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.flags import DURATION, GoCommand
from csi_sidecars.runtime.options import (
    CsiOptions,
    HttpOptions,
    compose,
    csi_options,
    http_options,
    params_of,
)

log = rlog.get_logger("livenessprobe")


FLAGS = compose(
    csi_options(timeout=None),
    click.option(
        "--probe-timeout",
        type=DURATION,
        default="3s",
        show_default=True,
        help="Timeout for connecting to the driver and calling Probe, per /healthz request.",
    ),
    click.option(
        "--health-port",
        default=DEFAULT_HEALTH_PORT,
        show_default=True,
        help="(deprecated) TCP port for /healthz on 0.0.0.0. Cannot be set with --http-endpoint.",
    ),
    http_options(
        endpoint_help="TCP address (host:port) for /healthz and metrics. Replaces --health-port."
    ),
    click.option(
        "--max-concurrent-probes",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_PROBES,
        show_default=True,
        help="Probes sent to the driver at once; further requests get 503 at once. 0: no limit.",
    ),
)


@FLAGS
def configure(
    csi: CsiOptions,
    http: HttpOptions,
    probe_timeout: float,
    health_port: str,
    max_concurrent_probes: int,
) -> Config:
    """The role's flags (as click parses them) -> the validated configuration.

    Raises:
        ConfigError: with the Go message for conflicting or bad flags.
    """
    return build_config(
        csi_address=csi.address,
        probe_timeout=probe_timeout,
        health_port=health_port,
        http_endpoint=http.endpoint,
        metrics_address=http.metrics_address,
        metrics_path=http.metrics_path,
        max_concurrent_probes=max_concurrent_probes,
    )


@click.command(
    "livenessprobe",
    cls=GoCommand,
    params=params_of(configure),
    help="Serve /healthz by calling the CSI driver's Identity/Probe (replaces livenessprobe).",
)
@app.common_options
def command(v: int, logging_format: str, version: bool, **flags: Any) -> None:
    """Run the livenessprobe role."""
    app.start("livenessprobe", v, logging_format, version)
    try:
        config = configure(**flags)
    except ConfigError as err:
        log.error(str(err))
        raise SystemExit(1) from None

    from csi_sidecars.livenessprobe.server import run_livenessprobe

    app.run(lambda stop: run_livenessprobe(config, stop))
