"""``csi-sidecars node-driver-registrar``: register a CSI driver with kubelet (Go v2.17).

Start-up follows the Go sidecar step by step: ``--kubelet-registration-path`` is required (exit 1,
checked before ``--mode``); ``--mode=kubelet-registration-probe`` is a no-op that exits 0;
``--health-port`` and ``--http-endpoint`` conflict (exit 1); then connect to the driver (30 s),
ask ``GetPluginInfo`` for its name within ``--timeout`` (exit 1 on failure), remove a stale
``<plugin-registration-path>/<driver>-reg.sock`` (exit 1 when something that is not a socket is
there) and serve kubelet's Registration service on it with mode 0700.

Differences on purpose: the socket appears only once it accepts connections (see
:mod:`csi_sidecars.registrar.node_socket`); SIGTERM **and** SIGINT stop the server, remove the
socket and exit 0; a failed registration (exit 1) also removes the socket so kubelet forgets the
dead endpoint at once; ``/healthz/registration`` reports whether kubelet confirmed the
registration; a port that cannot be bound exits 1 before the socket is published.
``--enable-pprof`` is accepted but only warns: Python has no pprof.

The driver calls use the node roles' lean gRPC client and the Registration server runs on grpclib
(:mod:`csi_sidecars.csi.lean`, the same generated messages), not grpcio. The flags are declared
once, on :func:`configure`, which the subcommand and the node bundle (``csi-sidecars run``) use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, NamedTuple, TypeVar

import click

from csi_sidecars.csi.lean import identity
from csi_sidecars.csi.lean.address import parse_target
from csi_sidecars.csi.lean.client import DialTimeoutError, LeanConnection
from csi_sidecars.csi.lean.link import DriverLink
from csi_sidecars.csi.lean.server import UnaryServer
from csi_sidecars.csi.lean.status import RpcError
from csi_sidecars.registrar.node_health import healthz_handler, registration_handler
from csi_sidecars.registrar.node_service import RegistrationServicer, RegistrationState
from csi_sidecars.registrar.node_socket import (
    SocketFileError,
    publish,
    registration_socket_path,
    remove_socket,
    remove_stale_socket,
)
from csi_sidecars.runtime import app, startup
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import DURATION, GoCommand, bool_flag
from csi_sidecars.runtime.http import HttpBindError
from csi_sidecars.runtime.httphost import HttpHost, Route, Servers
from csi_sidecars.runtime.options import CsiOptions, compose, csi_options, params_of

log = rlog.get_logger("node-register")

MODE_REGISTRATION_PROBE = "kubelet-registration-probe"
CONNECT_TIMEOUT = 30.0
STOP_GRACE = 1.0

T = TypeVar("T")


class StartupError(Exception):
    """A start-up step failed; the message says which and why. The role exits 1."""


class NodeConfig(NamedTuple):
    """The validated flags of the node-driver-registrar."""

    csi_address: str
    kubelet_registration_path: str
    plugin_registration_path: str
    timeout: float
    #: host:port for /healthz, or "" for no HTTP server.
    http_address: str


def resolve_http_address(health_port: int, http_endpoint: str) -> str:
    """The HTTP address from ``--health-port`` / ``--http-endpoint`` (Go rules).

    Raises:
        StartupError: when both are set.
    """
    if health_port > 0 and http_endpoint:
        raise StartupError("Only one of `--health-port` and `--http-endpoint` can be set")
    if health_port > 0:
        return f":{health_port}"
    return http_endpoint


FLAGS = compose(
    csi_options(
        timeout="1s",
        timeout_help="Timeout of the start-up GetPluginInfo call and of the /healthz self-check.",
    ),
    click.option(
        "--kubelet-registration-path",
        default="",
        help="Path of the CSI driver socket on the host, as kubelet must dial it. Required.",
    ),
    click.option(
        "--plugin-registration-path",
        default="/registration",
        show_default=True,
        help="Directory of kubelet's plugin registry (host /var/lib/kubelet/plugins_registry).",
    ),
    click.option(
        "--connection-timeout",
        type=DURATION,
        default="0",
        help="(deprecated) No effect.",
    ),
    click.option(
        "--http-endpoint",
        default="",
        help="TCP address (host:port) for /healthz. Empty disables the HTTP server.",
    ),
    click.option(
        "--health-port",
        type=int,
        default=0,
        help="(deprecated) TCP port for /healthz on every interface. Conflicts with "
        "--http-endpoint.",
    ),
    bool_flag("--enable-pprof", help="Accepted for compatibility; Python has no pprof endpoints."),
    click.option(
        "--mode",
        default="",
        help="(deprecated) kubelet-registration-probe: exit 0 at once (a no-op, as in Go).",
    ),
)


@FLAGS
def configure(
    csi: CsiOptions,
    kubelet_registration_path: str,
    plugin_registration_path: str,
    connection_timeout: float,
    http_endpoint: str,
    health_port: int,
    enable_pprof: bool,
    mode: str,
) -> NodeConfig:
    """The role's flags (as click parses them) -> the validated configuration, in Go's order.

    Raises:
        SystemExit: 1 without ``--kubelet-registration-path`` or for conflicting flags, 0 for
            ``--mode=kubelet-registration-probe``; the reason is logged first.
    """
    if not kubelet_registration_path:
        log.error("kubelet-registration-path is a required parameter")
        raise SystemExit(1)
    if mode == MODE_REGISTRATION_PROBE:
        # No longer needed (registration needs no probe); kept as a no-op like Go.
        raise SystemExit(0)
    log.info("Running node-driver-registrar", mode=mode)
    try:
        http_address = resolve_http_address(health_port, http_endpoint)
        parse_target(csi.address)
    except (StartupError, ConfigError) as err:
        log.error(str(err) if isinstance(err, StartupError) else f"--csi-address: {err}")
        raise SystemExit(1) from None
    if connection_timeout:
        log.info("--connection-timeout is deprecated and will have no effect")
    if enable_pprof:
        log.warning("--enable-pprof has no effect: Python has no pprof; /debug/pprof is not served")
    return NodeConfig(
        csi_address=csi.address,
        kubelet_registration_path=kubelet_registration_path,
        plugin_registration_path=plugin_registration_path,
        timeout=csi.timeout,
        http_address=http_address,
    )


@click.command(
    "node-driver-registrar",
    cls=GoCommand,
    params=params_of(configure),
    help="Register a CSI driver with kubelet's plugin watcher (replaces node-driver-registrar).",
)
@app.common_options
def command(v: int, logging_format: str, version: bool, **flags: Any) -> None:
    """Run the node-driver-registrar role."""
    app.start("node-driver-registrar", v, logging_format, version)
    config = configure(**flags)
    app.run(lambda stop: run_node_registrar(config, stop))


async def _wait_any(*events: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``aw``, or cancel it and return None as soon as ``stop`` is set."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def run_node_registrar(
    config: NodeConfig,
    stop: asyncio.Event,
    *,
    link: DriverLink | None = None,
    http: HttpHost | None = None,
) -> int:
    """Run the registrar until a signal (exit 0) or a failed registration (exit 1).

    Args:
        config: the validated flags.
        stop: set on SIGTERM / SIGINT.
        link: the driver connection to use (the bundle shares one); by default the role dials
            its own and, as Go does, keeps it until it exits.
        http: where to serve ``/healthz`` (the bundle's shared host); by default an own server.

    Returns:
        The process exit code.
    """
    log.info("Attempting to open a gRPC connection", csi_address=config.csi_address)
    own_link = link is None
    link = DriverLink(config.csi_address) if link is None else link
    try:
        try:
            conn = await _unless_stopped(link.connect(CONNECT_TIMEOUT), stop)
        except DialTimeoutError as err:
            log.error("Error connecting to CSI driver", error=str(err))
            return 1
        if conn is None:
            return 0
        servers = Servers()  # used only when no host was given
        try:
            return await _serve(config, conn, stop, servers if http is None else http)
        finally:
            await servers.close()
    finally:
        if own_link:
            await link.close()


async def _serve(
    config: NodeConfig, conn: LeanConnection, stop: asyncio.Event, host: HttpHost
) -> int:
    log.info("Calling CSI driver to discover driver name")
    try:
        driver_name = await identity.get_driver_name(conn, timeout=config.timeout)
    except (RpcError, identity.DriverError) as err:
        log.error("Error retrieving CSI driver name", error=str(err))
        return 1
    log.info("CSI driver name", driver=driver_name)

    socket_path = registration_socket_path(config.plugin_registration_path, driver_name)
    state = RegistrationState(driver_name=driver_name, endpoint=config.kubelet_registration_path)
    server = UnaryServer(RegistrationServicer(state).service())
    published = False
    code = 1
    try:
        if remove_stale_socket(socket_path):
            log.info("Removed stale registration socket", socket=socket_path)
        if config.http_address:
            routes = {
                "/healthz": Route(healthz_handler(socket_path, state, config.timeout), ("*",)),
                "/healthz/registration": Route(registration_handler(state), ("*",)),
            }
            await host.serve(config.http_address, routes)
        log.info("Starting Registration Server", socket=socket_path)
        await publish(server, socket_path)
        published = True
        log.info("Registration Server started", socket=socket_path)
        startup.settle()
        await _wait_any(stop, state.failed)
        code = 1 if state.failed.is_set() else 0
    except (SocketFileError, HttpBindError) as err:
        log.error("Failed to start the registration server", error=str(err))
    finally:
        # Unlink first so kubelet stops dialling a server that is going away.
        if published:
            try:
                remove_socket(socket_path)
            except OSError as err:
                log.error("Failed to remove socket", socket=socket_path, error=str(err))
                code = 1
        await server.stop(0 if state.failed.is_set() else STOP_GRACE)
    return code
