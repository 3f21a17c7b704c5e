"""``csi-sidecars provisioner``: the command (drop-in for external-provisioner v6.3).

Parses Go's flags (:mod:`.flags`), then runs the shared controller sequence
(:func:`csi_sidecars.controller.run_controller`): connect, probe, driver name and capabilities,
HTTP server, leader election with the Lease named after the driver, informers synced, then the
provisioner's workers (:class:`~.controller.ProvisionerController`). The provisioner identity
written into every PV is ``<unix-ms>-<0..9999>-<driver>`` as in Go (``-<node>`` appended in
node deployment); events come from
``<driver>_<hostname>_<uuid>``, sig-storage-lib's component name.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping

import click

from csi_sidecars.controller import (
    ControllerContext,
    ControllerOptions,
    DriverInfo,
    Lead,
    run_controller,
)
from csi_sidecars.controller.context import Setup
from csi_sidecars.csi.connection import Connection
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.port import KubePort
from csi_sidecars.provisioner.controller import ProvisionerController
from csi_sidecars.provisioner.decide.capacity import fixed_segment
from csi_sidecars.provisioner.flags import ROLE, ProvisionerConfig, provisioner_options
from csi_sidecars.provisioner.startup import capacity_start, node_start
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.flags import GoCommand

log = rlog.get_logger("provisioner")


def make_identity(driver: str, now_ms: int | None = None) -> str:
    """The provisioner identity: ``<unix-ms>-<random 0..9999>-<driver>``."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{stamp}-{random.randrange(10000)}-{driver}"


def lock_name(info: DriverInfo) -> str:
    """The Lease name: the driver name with ``/`` replaced (the elector sanitises the rest)."""
    return info.name.replace("/", "-")


def controller_options(config: ProvisionerConfig) -> ControllerOptions:
    """The shared controller options of ``config``."""
    return ControllerOptions(
        role=ROLE,
        event_component="external-provisioner",
        csi_address=config.csi.address,
        timeout=config.csi.timeout,
        http_endpoint=config.http.endpoint,
        metrics_address=config.http.metrics_address,
        metrics_path=config.http.metrics_path,
    )


def make_setup(
    config: ProvisionerConfig,
    *,
    on_setup: Callable[[ProvisionerController], object] | None = None,
    env: Mapping[str, str] | None = None,
    port: KubePort | None = None,
) -> Setup:
    """The ``setup(ctx)`` of the controller runner for ``config``.

    Args:
        config: the provisioner's flags.
        on_setup: called with the controller once it is declared (tests watch it).
        env: the environment (default ``os.environ``): ``NAMESPACE``, ``POD_NAME``,
            ``NODE_NAME``.
        port: the API client injected instead of the runner's (tests): capacity tracking
            writes through it instead of a client of its own.
    """
    environ = os.environ if env is None else env

    async def setup(ctx: ControllerContext) -> Lead:
        info = ctx.driver
        # sig-storage-lib's event source: <provisioner>_<hostname>_<uuid>.
        ctx.recorder.component = f"{info.name}_{socket.gethostname()}_{uuid.uuid4()}"
        node = await node_start(ctx, config, environ) if config.node_deployment else None
        identity = make_identity(info.name)
        capacity = None
        if config.enable_capacity:
            capacity = await capacity_start(
                ctx,
                config,
                environ,
                port=port,
                node=node.name if node else "",
                fixed_segment=fixed_segment(node.segments) if node else None,
            )
        controller = ProvisionerController(
            ctx,
            config,
            identity=f"{identity}-{node.name}" if node else identity,
            capacity=capacity.settings if capacity else None,
            capacity_port=capacity.port if capacity else None,
            node=node,
        )
        log.info(
            "Provisioner configured",
            driver=info.name,
            identity=controller.identity,
            topology=controller.shared.opts.supports_topology,
            workers=config.worker_threads,
            capacity=config.enable_capacity,
            node=node.name if node else None,
        )
        if on_setup is not None:
            on_setup(controller)
        return controller.lead

    return setup


async def run_provisioner(
    config: ProvisionerConfig,
    stop: asyncio.Event,
    *,
    port: KubePort | None = None,
    conn: Connection | None = None,
    metrics: CSIMetrics | None = None,
    on_setup: Callable[[ProvisionerController], object] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the provisioner until ``stop``; returns the exit code.

    Args:
        config: the provisioner's flags.
        stop: set on SIGTERM/SIGINT.
        port: a Kubernetes port instead of a client from ``--kubeconfig`` (tests).
        conn: a driver connection instead of dialling ``--csi-address`` (tests).
        metrics: CSI metrics to use (tests).
        on_setup: called with the controller once it is declared (tests).
        env: the environment (default ``os.environ``).
    """
    for warning in config.warnings:
        log.warning(warning)
    return await run_controller(
        controller_options(config),
        config.kube,
        stop,
        lock_name=lock_name,
        setup=make_setup(config, on_setup=on_setup, env=env, port=port),
        port=port,
        conn=conn,
        metrics=metrics,
    )


@click.command(
    ROLE,
    cls=GoCommand,
    help="Create and delete volumes for PersistentVolumeClaims (external-provisioner).",
)
@provisioner_options
def command(*, config: ProvisionerConfig) -> None:
    """Run the provisioner role."""
    app.start(ROLE, config.v, config.logging_format, config.version)
    app.run(lambda stop: run_provisioner(config, stop))
