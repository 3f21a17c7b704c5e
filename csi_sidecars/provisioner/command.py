"""``csi-sidecars provisioner``: the command (drop-in for external-provisioner v6.3).

Parses Go's flags (:mod:`.flags`), then runs the shared controller sequence
(:func:`csi_sidecars.controller.run_controller`): connect, probe, driver name and capabilities,
HTTP server, leader election with the Lease named after the driver, informers synced, then the
provisioner's workers (:class:`~.controller.ProvisionerController`). The provisioner identity
written into every PV is ``<unix-ms>-<0..9999>-<driver>`` as in Go; events come from
``<driver>_<hostname>_<uuid>``, sig-storage-lib's component name.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from typing import Any

import click

from csi_sidecars.controller import (
    ControllerContext,
    ControllerOptions,
    DriverInfo,
    Lead,
    run_controller,
)
from csi_sidecars.kube.leaderelection import lease_namespace
from csi_sidecars.kube.resources import Resource
from csi_sidecars.provisioner.context import Settings
from csi_sidecars.provisioner.controller import ProvisionerController
from csi_sidecars.provisioner.events import Event
from csi_sidecars.provisioner.flags import (
    GATE_TOPOLOGY,
    GATE_VAC,
    ROLE,
    ProvisionerConfig,
    provisioner_options,
)
from csi_sidecars.provisioner.request import ProvisionerOptions
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


def make_setup(config: ProvisionerConfig) -> Any:
    """The ``setup(ctx)`` of the controller runner for ``config``."""

    def setup(ctx: ControllerContext) -> Lead:
        info = ctx.driver
        gates = config.gates
        opts = ProvisionerOptions(
            driver=info.name,
            volume_name_prefix=config.volume_name_prefix,
            volume_name_uuid_length=config.volume_name_uuid_length,
            default_fstype=config.default_fstype,
            extra_create_metadata=config.extra_create_metadata,
            plugin_capabilities=info.plugin_capabilities,
            controller_capabilities=info.controller_capabilities,
            topology_gate=gates[GATE_TOPOLOGY],
            vac_gate=gates[GATE_VAC],
        )
        settings = Settings(
            identity=make_identity(info.name),
            timeout=config.csi.timeout,
            strict_topology=config.strict_topology,
            immediate_topology=config.immediate_topology,
            retry_interval_max=config.retry.maximum,
            controller_publish_readonly=config.controller_publish_readonly,
        )
        recorder = ctx.recorder
        # sig-storage-lib's event source: <provisioner>_<hostname>_<uuid>.
        recorder.component = f"{info.name}_{socket.gethostname()}_{uuid.uuid4()}"

        def emit(obj: Any, resource: Resource, event: Event) -> None:
            recorder.event(obj, event.type, event.reason, event.message, resource=resource)

        controller = ProvisionerController(
            ctx.port,
            ctx.conn.controller,
            opts,
            settings,
            emit=emit,
            registry=ctx.registry,
            worker_threads=config.worker_threads,
            cloning_threads=config.cloning_protection_threads,
            retry_start=config.retry.start,
            retry_max=config.retry.maximum,
            make_informer=lambda res, fields, resync, idx: ctx.informer(
                res, fields=fields, resync=resync, indexers=idx
            ),
            make_queue=lambda name, start, maximum: ctx.queue(name, start=start, maximum=maximum),
            journal_namespace=lease_namespace(config.kube.leader_election_namespace),
        )
        log.info(
            "Provisioner configured",
            driver=info.name,
            identity=settings.identity,
            topology=opts.supports_topology,
            workers=config.worker_threads,
        )
        return controller.lead

    return setup


async def run_provisioner(config: ProvisionerConfig, stop: asyncio.Event) -> int:
    """Run the provisioner until ``stop``; returns the exit code."""
    for warning in config.warnings:
        log.warning(warning)
    return await run_controller(
        controller_options(config),
        config.kube,
        stop,
        lock_name=lock_name,
        setup=make_setup(config),
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
