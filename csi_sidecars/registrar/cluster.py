"""``csi-sidecars cluster-driver-registrar``: keep the driver's CSIDriver object as it should be.

A modern rewrite of the retired Go cluster-driver-registrar. At start-up it connects to the
driver (lost connection exits, as in every controller role), waits for Probe, and reads
GetPluginInfo, GetPluginCapabilities and, when the driver has a Controller service,
ControllerGetCapabilities. From those and the flags it builds the ``storage.k8s.io/v1``
CSIDriver (see :mod:`~csi_sidecars.registrar.cluster_spec`) and keeps it in place with
server-side apply, re-checking every ``--reapply-interval``
(:mod:`~csi_sidecars.registrar.cluster_sync`).

Kept from the Go registrar: ``--csi-address``, ``--kubeconfig``, ``--pod-info-mount``,
``--connection-timeout`` (a no-op), ``-v`` and ``--version``; from its v1.0 releases
``--driver-requires-attachment`` (now an alias of ``--attach-required``) and
``--pod-info-mount-version`` (non-empty means ``--pod-info-mount``). Unlike Go: existing objects
are updated (drift is corrected), a driver without a Controller service gets
``attachRequired: false`` instead of a crash, SIGTERM is handled, and the object is deleted on
shutdown only with ``--delete-on-shutdown``. See docs/cluster-driver-registrar.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
import grpc
from aiohttp import web

from csi_sidecars.csi import rpc
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.connection import Connection, ConnectTimeoutError, LossPolicy, connect
from csi_sidecars.csi.gen import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import CSI_DRIVERS, JsonDict
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.registrar.cluster_flags import FlagError, spec_options
from csi_sidecars.registrar.cluster_sync import DEFAULT_INTERVAL, ClusterRegistrar
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.flags import DURATION, GO_BOOL, GoCommand, bool_flag
from csi_sidecars.runtime.http import HttpBindError, HttpServer, metrics_handler

log = rlog.get_logger("cluster-driver-registrar")

ROLE = "cluster-driver-registrar"
CONNECT_TIMEOUT = 30.0
DELETE_TIMEOUT = 10.0

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class StartupError(Exception):
    """A start-up step failed; the message says which and why. The role exits 1."""


@dataclass(frozen=True)
class ClusterConfig:
    """The validated flags of the cluster-driver-registrar."""

    csi_address: str = "/run/csi/socket"
    timeout: float = 10.0
    spec: cs.SpecOptions = field(default_factory=cs.SpecOptions)
    reapply_interval: float = DEFAULT_INTERVAL
    allow_recreate: bool = False
    delete_on_shutdown: bool = False
    http_endpoint: str = ""
    metrics_path: str = "/metrics"
    connect_timeout: float = CONNECT_TIMEOUT


# ---- the command ------------------------------------------------------------------------------


def _tristate(name: str, help: str) -> Callable[[F], F]:
    """A Go-style boolean flag whose absence means "not managed" (None)."""
    return click.option(
        name,
        type=GO_BOOL,
        default=None,
        metavar="[=true|false]",
        help=help + " Unset: not managed.",
    )


@click.command(
    ROLE,
    cls=GoCommand,
    help="Create and keep the driver's CSIDriver object (modern cluster-driver-registrar).",
)
@click.option(
    "--csi-address",
    default="/run/csi/socket",
    show_default=True,
    help="Address of the CSI driver socket.",
)
@click.option(
    "--timeout",
    type=DURATION,
    default="10s",
    show_default=True,
    help="Timeout of each CSI call at start-up (Probe, GetPluginInfo, capabilities).",
)
@click.option("--connection-timeout", type=DURATION, default="0", help="(deprecated) No effect.")
@click.option(
    "--attach-required",
    "--driver-requires-attachment",
    "attach_required",
    type=GO_BOOL,
    default=None,
    metavar="[=true|false]",
    help="spec.attachRequired (immutable). Unset: true when the driver has a Controller service "
    "with PUBLISH_UNPUBLISH_VOLUME.",
)
@bool_flag("--pod-info-mount", help="spec.podInfoOnMount: kubelet passes pod information.")
@click.option(
    "--pod-info-mount-version",
    default="",
    help="(deprecated) Any non-empty value means --pod-info-mount.",
)
@click.option(
    "--volume-lifecycle-modes",
    default=None,
    help="spec.volumeLifecycleModes (immutable), comma-separated: Persistent, Ephemeral. "
    "Unset: not managed.",
)
@_tristate("--storage-capacity", "spec.storageCapacity.")
@click.option(
    "--fs-group-policy",
    type=click.Choice(cs.FS_GROUP_POLICIES),
    default=None,
    help="spec.fsGroupPolicy. Unset: not managed.",
)
@click.option(
    "--token-request",
    multiple=True,
    help="A spec.tokenRequests entry: AUDIENCE or AUDIENCE,EXPIRATION (e.g. 1h). Repeatable. "
    "Unset: not managed.",
)
@_tristate("--requires-republish", "spec.requiresRepublish.")
@_tristate("--selinux-mount", "spec.seLinuxMount.")
@click.option(
    "--node-allocatable-update-period",
    type=DURATION,
    default=None,
    help="spec.nodeAllocatableUpdatePeriodSeconds (at least 10s). Unset: not managed.",
)
@_tristate("--service-account-token-in-secrets", "spec.serviceAccountTokenInSecrets.")
@_tristate("--prevent-pod-scheduling-if-missing", "spec.preventPodSchedulingIfMissing.")
@click.option("--labels", default="", help="Extra CSIDriver labels, as key=value,key2=value2.")
@click.option(
    "--reapply-interval",
    type=DURATION,
    default="2m",
    show_default=True,
    help="How often to re-check the CSIDriver and correct drift.",
)
@bool_flag(
    "--allow-recreate",
    help="When an immutable field differs, delete and re-create the CSIDriver.",
)
@bool_flag("--delete-on-shutdown", help="Delete the CSIDriver on SIGTERM/SIGINT.")
@click.option("--http-endpoint", default="", help="TCP address (host:port) for metrics/healthz.")
@click.option("--metrics-path", default="/metrics", show_default=True, help="Metrics path.")
@kube_options
@app.common_options
def command(
    *,
    csi_address: str,
    timeout: float,
    connection_timeout: float,
    reapply_interval: float,
    allow_recreate: bool,
    delete_on_shutdown: bool,
    http_endpoint: str,
    metrics_path: str,
    kube: KubeOptions,
    v: int,
    logging_format: str,
    version: bool,
    **spec_flags: Any,
) -> None:
    """Run the cluster-driver-registrar role."""
    app.start(ROLE, v, logging_format, version)
    if connection_timeout:
        log.info("--connection-timeout is deprecated and will have no effect")
    if spec_flags["pod_info_mount_version"]:
        log.info("--pod-info-mount-version is deprecated; it now means --pod-info-mount")
    if reapply_interval <= 0:
        log.error("--reapply-interval must be positive")
        raise SystemExit(1)
    try:
        opts = spec_options(spec_flags)
    except FlagError as err:
        log.error(str(err))
        raise SystemExit(1) from None
    config = ClusterConfig(
        csi_address=csi_address,
        timeout=timeout,
        spec=opts,
        reapply_interval=reapply_interval,
        allow_recreate=allow_recreate,
        delete_on_shutdown=delete_on_shutdown,
        http_endpoint=http_endpoint,
        metrics_path=metrics_path,
    )
    app.run(lambda stop: run_cluster_registrar(config, kube, stop))


# ---- running ----------------------------------------------------------------------------------


async def _unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``aw`` unless ``stop`` is set first: (True, result) or (False, None)."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        finished = task.done()
        if not finished:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return (True, task.result()) if finished else (False, None)


async def read_driver_info(conn: Connection, timeout: float) -> cs.DriverInfo:
    """Probe until ready, then read the driver's name and capabilities.

    Raises:
        StartupError: when a call fails or the name is empty.
    """
    service = csi_pb2.PluginCapability.Service
    ctrl = csi_pb2.ControllerServiceCapability.RPC
    try:
        await rpc.probe_until_ready(conn, timeout)
        name = await rpc.get_driver_name(conn, timeout)
        plugin_caps = await rpc.get_plugin_capabilities(conn, timeout)
        controller_caps: set[int] = set()
        has_controller = service.CONTROLLER_SERVICE in plugin_caps
        if has_controller:
            controller_caps = set(await rpc.get_controller_capabilities(conn, timeout))
    except rpc.CSIError as exc:
        raise StartupError(f"Error getting CSI driver information: {exc}") from None
    except grpc.aio.AioRpcError as exc:
        raise StartupError(f"Error getting CSI driver information: {format_error(exc)}") from None
    return cs.DriverInfo(
        name=name,
        controller_service=has_controller,
        publish_unpublish=ctrl.PUBLISH_UNPUBLISH_VOLUME in controller_caps,
        get_capacity=ctrl.GET_CAPACITY in controller_caps,
    )


def _healthz(registrar: ClusterRegistrar) -> Any:
    async def handle(_: web.Request) -> web.Response:
        outcome = registrar.last_outcome
        return web.Response(text=f"ok ({outcome.value if outcome else 'starting'})")

    return handle


async def run_cluster_registrar(
    config: ClusterConfig,
    kube: KubeOptions,
    stop: asyncio.Event,
    *,
    port: KubePort | None = None,
    conn: Connection | None = None,
) -> int:
    """The role's main: returns the exit code.

    Args:
        config: the validated flags.
        kube: the Kubernetes flags (client, leader election).
        stop: set on SIGTERM/SIGINT.
        port: a Kubernetes port to use instead of a client from ``kube`` (tests).
        conn: a driver connection to use instead of dialling ``config.csi_address`` (tests).
    """
    if port is None:
        try:
            await kube.client_config()  # fail fast, before waiting for the driver
        except Exception as exc:  # kubeconfig missing or malformed, not in a cluster
            log.error("Failed to load the Kubernetes client configuration", error=str(exc))
            return 1
    metrics = CSIMetrics()
    own_conn = conn is None
    if conn is None:
        try:
            done, conn = await _unless_stopped(
                connect(
                    config.csi_address,
                    timeout=config.connect_timeout,
                    metrics=metrics,
                    on_lost=LossPolicy.EXIT,
                ),
                stop,
            )
        except ConnectTimeoutError as exc:
            log.error("Failed to connect to the CSI driver", error=str(exc))
            return 1
        if not done or conn is None:
            return 0
    try:
        try:
            done, info = await _unless_stopped(read_driver_info(conn, config.timeout), stop)
        except StartupError as err:
            log.error(str(err))
            return 1
        if not done or info is None:
            return 0
        return await _serve(config, kube, stop, info=info, metrics=metrics, port=port)
    finally:
        if own_conn:
            await conn.close()


async def _serve(
    config: ClusterConfig,
    kube: KubeOptions,
    stop: asyncio.Event,
    *,
    info: cs.DriverInfo,
    metrics: CSIMetrics,
    port: KubePort | None,
) -> int:
    metrics.set_driver_name(info.name)
    desired = cs.build_csidriver(info, config.spec)
    log.info("CSI driver", name=info.name, desired_spec=desired["spec"])
    if config.spec.storage_capacity and not info.get_capacity:
        log.warning("--storage-capacity is set but the driver does not advertise GET_CAPACITY")
    async with contextlib.AsyncExitStack() as stack:
        if port is None:
            port = await stack.enter_async_context(await kube.client(ROLE))
        recorder = EventRecorder(port, ROLE, host=socket.gethostname())

        def emit(obj: JsonDict, event_type: str, reason: str, message: str) -> None:
            recorder.event(obj, event_type, reason, message, resource=CSI_DRIVERS)

        registrar = ClusterRegistrar(port, desired, allow_recreate=config.allow_recreate, emit=emit)
        server: HttpServer | None = None
        if config.http_endpoint:
            server = HttpServer(config.http_endpoint)
            server.add(config.metrics_path, metrics_handler(metrics.registry))
            server.add("/healthz", _healthz(registrar))
            try:
                await server.start()
            except HttpBindError as err:
                log.error(str(err))
                return 1
            stack.push_async_callback(server.stop)
        events_task = asyncio.create_task(recorder.run())
        try:
            await kube.run(
                ROLE,
                f"{ROLE}-leader-{info.name}",
                lambda: registrar.run(config.reapply_interval),
                stop,
                routes=server,
            )
            if config.delete_on_shutdown:
                try:
                    await asyncio.wait_for(registrar.delete(), DELETE_TIMEOUT)
                except Exception as exc:
                    log.error("Failed to delete the CSIDriver on shutdown", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorder.flush(), 2.0)
        finally:
            events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events_task
    log.info("Stopped")
    return 0
