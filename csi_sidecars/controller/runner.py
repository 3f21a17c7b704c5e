"""The start-up, leadership and shutdown sequence shared by the controller roles.

See the package docstring for the sequence. Roles supply a ``setup(ctx)`` that declares their
informers and queues on the :class:`ControllerContext` and returns ``lead()``, the coroutine
function that runs their workers while this process leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from csi_sidecars.controller import bundle
from csi_sidecars.controller.context import (
    EVENT_FLUSH_TIMEOUT,
    ControllerContext,
    ControllerOptions,
    Lead,
    Setup,
    release_on_exit,
    unless_stopped,
)
from csi_sidecars.controller.driver import DriverInfo, StartupError, read_driver_info
from csi_sidecars.csi.connection import (
    Connection,
    ConnectTimeoutError,
    LossPolicy,
    connect,
)
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.port import KubePort
from csi_sidecars.runtime import logging as rlog

if TYPE_CHECKING:
    from csi_sidecars.runtime.http import Handler, Request, Response

log = rlog.get_logger("controller")


class _LateRoute:
    """A route registered before the server starts whose handler is supplied later."""

    def __init__(self) -> None:
        self.handler: Handler | None = None

    async def __call__(self, request: Request) -> Response:
        if self.handler is None:
            from csi_sidecars.runtime.http import Response

            return Response(503, "not started")
        return await self.handler(request)


class _Routes:
    """The route table given to ``KubeOptions.run``: fills in routes declared in advance."""

    def __init__(self, late: Mapping[str, _LateRoute]) -> None:
        self._late = late

    def add(self, path: str, handler: Any) -> None:
        slot = self._late.get(path)
        if slot is not None:
            slot.handler = handler
        else:
            log.info("HTTP route not served", path=path)


async def run_controller(
    options: ControllerOptions,
    kube: KubeOptions,
    stop: asyncio.Event,
    *,
    lock_name: Callable[[DriverInfo], str],
    setup: Setup,
    port: KubePort | None = None,
    conn: Connection | None = None,
    metrics: CSIMetrics | None = None,
) -> int:
    """Run a controller role; returns the exit code (0 after SIGTERM, 1 on start-up failure).

    Args:
        options: the common flags.
        kube: the Kubernetes flags (client, QPS, leader election).
        stop: set on SIGTERM/SIGINT.
        lock_name: the Lease name for the driver (sanitised by the elector); it gets
            ``DriverInfo("")`` when ``options.needs_driver`` is False.
        setup: declares informers and queues on the context and returns ``lead`` (may be
            async); raise :class:`StartupError` to exit 1 with a message.
        port: a Kubernetes port instead of a client built from ``kube`` (tests).
        conn: a driver connection instead of dialling ``options.csi_address`` (tests).
        metrics: CSI metrics to use (tests); by default a fresh registry.
    """
    if port is None:
        try:
            await kube.client_config()
        except Exception as exc:  # kubeconfig missing or malformed, not in a cluster
            log.error("Failed to load the Kubernetes client configuration", error=str(exc))
            return 1
    metrics = metrics or CSIMetrics(with_migration=options.metrics_with_migration)
    share = bundle.current()
    if share is not None:
        bundle.record_calls_in(metrics)
    if not options.needs_driver:
        nobody = DriverInfo("")
        return await _serve(options, kube, stop, nobody, None, metrics, lock_name, setup, port)
    own_conn = conn is None and share is None
    if conn is None:
        try:
            done, conn = await unless_stopped(
                connect(
                    options.csi_address,
                    timeout=options.connect_timeout,
                    metrics=metrics,
                    on_lost=LossPolicy.EXIT,
                    max_grpc_log_length=options.max_grpc_log_length,
                )
                if share is None
                else share.bundle.connection(
                    options.csi_address,
                    options.connect_timeout,
                    log_length=options.max_grpc_log_length,
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
            reading = (
                read_driver_info(conn, options.timeout)
                if share is None
                else share.bundle.driver(conn, options.timeout)
            )
            done, info = await unless_stopped(reading, stop)
        except StartupError as err:
            log.error(str(err))
            return 1
        if not done or info is None:
            return 0
        metrics.set_driver_name(info.name)
        log.info("CSI driver name", driver=info.name)
        return await _serve(options, kube, stop, info, conn, metrics, lock_name, setup, port)
    finally:
        if own_conn:
            await conn.close()


async def _serve(
    options: ControllerOptions,
    kube: KubeOptions,
    stop: asyncio.Event,
    info: DriverInfo,
    conn: Connection | None,
    metrics: CSIMetrics,
    lock_name: Callable[[DriverInfo], str],
    setup: Setup,
    port: KubePort | None,
) -> int:
    share = bundle.current()
    async with contextlib.AsyncExitStack() as stack:
        events_port = port
        if port is None:
            # In a bundle the role's clients outlive the role: informers it declared first
            # may serve other roles until the bundle ends.
            keep = stack.enter_async_context if share is None else share.bundle.adopt
            port = await keep(await kube.client(options.role))
            events_port = await keep(await kube.client(f"{options.role}-events"))
        assert events_port is not None
        recorder = EventRecorder(events_port, options.event_component, host=socket.gethostname())
        ctx = ControllerContext(options, info, conn, port, metrics, recorder, stop, events_port)
        if share is not None:
            ctx.shared_informers = share.bundle.hub
        try:
            made = setup(ctx)
            lead: Lead = await made if inspect.isawaitable(made) else made
        except StartupError as err:
            log.error(str(err))
            return 1
        if share is not None:
            # Shared informers learn every role's fields before their first list.
            share.bundle.setup_done(share.role)
            await unless_stopped(share.bundle.setups_done.wait(), stop)
        late = {"/healthz/leader-election": _LateRoute()} if kube.leader_election else {}
        host = share.bundle.http_for(share.role) if share is not None else None
        if options.http_address and host is not None:
            from csi_sidecars.runtime.http import HttpBindError, metrics_handler
            from csi_sidecars.runtime.httphost import Route

            routes = {
                options.metrics_path: Route(metrics_handler(metrics.registry)),
                "/healthz": Route(ctx.healthz),
                **{path: Route(slot) for path, slot in late.items()},
            }
            try:
                await host.serve(options.http_address, routes)
            except HttpBindError as err:
                log.error(str(err))
                return 1
        elif options.http_address:
            from csi_sidecars.runtime.http import HttpBindError, HttpServer, metrics_handler

            try:
                server = HttpServer(options.http_address)
            except ValueError as err:
                log.error(str(err))
                return 1
            server.add(options.metrics_path, metrics_handler(metrics.registry))
            server.add("/healthz", ctx.healthz)
            for path, slot in late.items():
                server.add(path, slot)
            try:
                await server.start()
            except HttpBindError as err:
                log.error(str(err))
                return 1
            stack.push_async_callback(server.stop)
        events_task = asyncio.create_task(recorder.run())
        try:
            await kube.run(
                options.role,
                lock_name(info),
                lambda: ctx.run_leading(lead),
                stop,
                routes=_Routes(late),
            )
            await ctx.run_shutdown_callbacks()
        except Exception as exc:
            log.error("Controller failed", role=options.role, error=repr(exc))
            return 1
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorder.flush(), EVENT_FLUSH_TIMEOUT)
            events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events_task
    log.info("Stopped", role=options.role)
    return 0


__all__ = [
    "ControllerContext",
    "ControllerOptions",
    "Lead",
    "Setup",
    "release_on_exit",
    "run_controller",
]
