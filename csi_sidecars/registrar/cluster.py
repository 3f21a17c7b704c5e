"""``csi-sidecars cluster-driver-registrar``: keep the driver's CSIDriver object as it should be.

A modern rewrite of the retired Go cluster-driver-registrar. At start-up it connects to the
driver (lost connection exits, as in every controller role), waits for Probe, and reads
GetPluginInfo, GetPluginCapabilities and, when the driver has a Controller service,
ControllerGetCapabilities. From those and the flags it builds the ``storage.k8s.io/v1``
CSIDriver (see :mod:`~csi_sidecars.registrar.cluster_spec`) and keeps it in place with
server-side apply, re-checking every ``--reapply-interval``
(:mod:`~csi_sidecars.registrar.cluster_sync`).

Start-up, HTTP (metrics, ``/healthz``, ``/healthz/leader-election``), leader election and the
clean stop are :func:`csi_sidecars.controller.run_controller`, as in every controller role; this
role declares no informers, and its ``lead()`` is the re-apply loop.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from csi_sidecars.controller import (
    ControllerContext,
    ControllerOptions,
    DriverInfo,
    Lead,
    StartupError,
    run_controller,
)
from csi_sidecars.csi.connection import DEFAULT_TIMEOUT, Connection
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import CLUSTER_ROLES, CSI_DRIVERS, ApiError, JsonDict
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.registrar.cluster_flags import FlagError, spec_options
from csi_sidecars.registrar.cluster_sync import DEFAULT_INTERVAL, ClusterRegistrar
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import DURATION, GO_BOOL, GoCommand, bool_flag
from csi_sidecars.runtime.http import Handler, Request, Response
from csi_sidecars.runtime.options import CsiOptions, HttpOptions, csi_options, http_options

log = rlog.get_logger("cluster-driver-registrar")

ROLE = "cluster-driver-registrar"
CONNECT_TIMEOUT = DEFAULT_TIMEOUT
DELETE_TIMEOUT = 10.0

F = TypeVar("F", bound=Callable[..., Any])


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
    owner_cluster_role: str = ""


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
@csi_options(
    timeout="10s",
    timeout_help="Timeout of each CSI call at start-up (Probe, GetPluginInfo, capabilities).",
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
@click.option(
    "--owner-cluster-role",
    default="",
    help="ClusterRole that owns the CSIDriver (an ownerReference): the garbage collector "
    "deletes the CSIDriver with it. Needs get on that ClusterRole. Empty: no owner.",
)
@http_options()
@kube_options
@app.common_options
def command(
    *,
    csi: CsiOptions,
    http: HttpOptions,
    connection_timeout: float,
    reapply_interval: float,
    allow_recreate: bool,
    delete_on_shutdown: bool,
    owner_cluster_role: str,
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
        http.validate()
        opts = spec_options(spec_flags)
    except (FlagError, ConfigError) as err:
        log.error(str(err))
        raise SystemExit(1) from None
    config = ClusterConfig(
        csi_address=csi.address,
        timeout=csi.timeout,
        spec=opts,
        reapply_interval=reapply_interval,
        allow_recreate=allow_recreate,
        delete_on_shutdown=delete_on_shutdown,
        http_endpoint=http.address,
        metrics_path=http.metrics_path,
        owner_cluster_role=owner_cluster_role,
    )
    app.run(lambda stop: run_cluster_registrar(config, kube, stop))


# ---- running ----------------------------------------------------------------------------------


def spec_driver_info(info: DriverInfo) -> cs.DriverInfo:
    """What the CSIDriver spec needs from what the driver reported at start-up."""
    rpc = csi_pb2.ControllerServiceCapability.RPC
    return cs.DriverInfo(
        name=info.name,
        controller_service=info.has_controller_service,
        publish_unpublish=info.has_controller(rpc.PUBLISH_UNPUBLISH_VOLUME),
        get_capacity=info.has_controller(rpc.GET_CAPACITY),
    )


def controller_options(config: ClusterConfig) -> ControllerOptions:
    """The shared controller options of this role."""
    return ControllerOptions(
        role=ROLE,
        event_component=ROLE,
        csi_address=config.csi_address,
        timeout=config.timeout,
        http_endpoint=config.http_endpoint,
        metrics_path=config.metrics_path,
        connect_timeout=config.connect_timeout,
    )


def lease_name(info: DriverInfo) -> str:
    """The Lease of ``--leader-election`` (sanitised by the elector)."""
    return f"{ROLE}-leader-{info.name}"


async def owner_of(port: KubePort, cluster_role: str) -> JsonDict:
    """The ownerReference to ClusterRole ``cluster_role`` (``--owner-cluster-role``).

    Raises:
        StartupError: the ClusterRole cannot be read (missing, or no ``get`` permission).
    """
    try:
        role = await port.get(CLUSTER_ROLES, cluster_role)
    except ApiError as exc:
        hint = f" (the role needs get on clusterroles/{cluster_role})" if exc.status == 403 else ""
        raise StartupError(
            f"Cannot read the owner ClusterRole {cluster_role!r} of --owner-cluster-role: "
            f"{exc}{hint}"
        ) from None
    try:
        return cs.owner_reference(role)
    except ValueError as exc:
        raise StartupError(f"ClusterRole {cluster_role!r}: {exc}") from None


def make_setup(config: ClusterConfig) -> Callable[[ControllerContext], Awaitable[Lead]]:
    """The role's setup for :func:`run_controller`: no informers; ``lead()`` is the re-apply loop.

    It also serves ``/healthz`` with the last sync outcome and, with ``--delete-on-shutdown``,
    deletes the CSIDriver after a clean stop. With ``--owner-cluster-role`` it reads that
    ClusterRole first and applies the CSIDriver with an ownerReference to it.
    """

    async def setup(ctx: ControllerContext) -> Lead:
        info = spec_driver_info(ctx.driver)
        desired = cs.build_csidriver(info, config.spec)
        if config.owner_cluster_role:
            desired = cs.with_owner(desired, await owner_of(ctx.port, config.owner_cluster_role))
        log.info("CSI driver", name=info.name, desired_spec=desired["spec"])
        if config.spec.storage_capacity and not info.get_capacity:
            log.warning("--storage-capacity is set but the driver does not advertise GET_CAPACITY")

        def emit(obj: JsonDict, event_type: str, reason: str, message: str) -> None:
            ctx.recorder.event(obj, event_type, reason, message, resource=CSI_DRIVERS)

        registrar = ClusterRegistrar(
            ctx.port, desired, allow_recreate=config.allow_recreate, emit=emit
        )
        ctx.healthz = _healthz(registrar)
        if config.delete_on_shutdown:

            async def delete() -> None:
                try:
                    await asyncio.wait_for(registrar.delete(), DELETE_TIMEOUT)
                except Exception as exc:
                    log.error("Failed to delete the CSIDriver on shutdown", error=repr(exc))

            ctx.on_shutdown(delete)
        return lambda: ctx.until_stopping(registrar.run(config.reapply_interval))

    return setup


def _healthz(registrar: ClusterRegistrar) -> Handler:
    async def handle(_: Request) -> Response:
        outcome = registrar.last_outcome
        return Response(text=f"ok ({outcome.value if outcome else 'starting'})")

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
    return await run_controller(
        controller_options(config),
        kube,
        stop,
        lock_name=lease_name,
        setup=make_setup(config),
        port=port,
        conn=conn,
    )
