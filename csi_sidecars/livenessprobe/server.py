"""The livenessprobe role: turn HTTP ``/healthz`` into the driver's ``Identity/Probe``.

Start-up follows the Go livenessprobe: wait (forever, logging ``Still connecting``) for the driver
socket, ask ``GetPluginInfo`` for the driver name (recorded in the metrics with
``driver_name="unknown-driver"``, as Go does, because the name is only known afterwards), then
serve. Until then no HTTP port is open, so kubelet sees "connection refused".

Every ``/healthz`` request opens a **new** connection to the driver and calls ``Probe`` within
``--probe-timeout`` (connecting included), so a driver whose socket vanished is reported dead
even when an old connection would still work. Bodies and codes are Go's: 200 ``ok``; 500
``driver responded but is not ready``, ``rpc error: code = <Code> desc = <msg>`` or
``context deadline exceeded``.

The calls go through the node roles' lean gRPC client (:mod:`csi_sidecars.csi.lean`: our HTTP/2
framing, no grpcio) and the metrics through its prometheus-free histogram; both render what the
Go sidecar renders. In the node bundle (``csi-sidecars run``) the start-up connection and the HTTP
servers may be shared with the registrar (``link``, ``http``).

Better than Go:

* ``GetPluginInfo`` at start-up is bounded by ``--probe-timeout`` per attempt and retried while
  the driver times out or is unavailable (Go waits forever on a hung driver); other errors and an
  empty name exit 1 as in Go.
* A port that cannot be bound exits 1 (Go logs and exits 0).
* At most ``--max-concurrent-probes`` probes reach the driver at once. A request that finds all
  slots busy gets 503 ``too many concurrent probes`` at once rather than queueing: every probe
  holds its slot for at most ``--probe-timeout``, so a queued request would mostly time out anyway,
  and a flood of health checks cannot pile connections up on a slow or hung driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from csi_sidecars.csi.lean import identity
from csi_sidecars.csi.lean.client import DialTimeoutError, dial
from csi_sidecars.csi.lean.link import DriverLink
from csi_sidecars.csi.lean.metrics import OperationMetrics
from csi_sidecars.csi.lean.status import DEADLINE_EXCEEDED, UNAVAILABLE, RpcError
from csi_sidecars.livenessprobe.config import (
    DEADLINE_BODY,
    Answer,
    Config,
    overloaded_answer,
    probe_answer,
)
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime import startup
from csi_sidecars.runtime.http import HttpBindError, Request, Response
from csi_sidecars.runtime.httphost import HttpHost, Route, Servers

log = rlog.get_logger("livenessprobe")

_RETRYABLE = (DEADLINE_EXCEEDED, UNAVAILABLE)
_STARTUP_RETRY_DELAY = 1.0


def go_error_text(err: BaseException) -> str:
    """Render an error as the Go livenessprobe's body does.

    gRPC errors read ``rpc error: code = <Code> desc = <msg>``; a connection that did not come up
    in time reads ``context deadline exceeded`` as Go's context error does.
    """
    if isinstance(err, TimeoutError):
        return DEADLINE_BODY
    return str(err) or type(err).__name__


def metrics_handler(metrics: OperationMetrics) -> Route:
    """The route that renders ``metrics``."""

    async def handle(_: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body=body, content_type=content_type)

    return Route(handle)


class Prober:
    """Answers /healthz: one fresh connection and one ``Probe`` per request, bounded."""

    def __init__(self, config: Config, metrics: OperationMetrics | None) -> None:
        """Probe the driver at ``config.csi_address``, recording calls in ``metrics``."""
        self.config = config
        self.metrics = metrics
        limit = config.max_concurrent_probes
        self._slots = asyncio.Semaphore(limit) if limit > 0 else None

    async def check(self) -> Answer:
        """Probe the driver once and return the HTTP answer."""
        deadline = time.monotonic() + self.config.probe_timeout
        if self._slots is None:
            return await self._probe(deadline)
        if self._slots.locked():
            log.error("Too many concurrent probes", limit=self.config.max_concurrent_probes)
            return overloaded_answer()
        async with self._slots:
            return await self._probe(deadline)

    async def _probe(self, deadline: float) -> Answer:
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            conn = await dial(self.config.csi_address, timeout=remaining, metrics=self.metrics)
        except DialTimeoutError as err:
            log.error("Failed to establish connection to CSI driver", error=DEADLINE_BODY)
            return probe_answer(error=go_error_text(err))
        try:
            if rlog.v(5):
                log.info("Sending probe request to CSI driver", address=self.config.csi_address)
            remaining = max(deadline - time.monotonic(), 0.001)
            ready = await identity.probe(conn, timeout=remaining)
        except RpcError as err:
            text = go_error_text(err)
            log.error("Health check failed", error=text)
            return probe_answer(error=text)
        finally:
            conn.close()
        if not ready:
            log.error("Driver responded but is not ready")
            return probe_answer(ready=False)
        if rlog.v(5):
            log.info("Health check succeeded")
        return probe_answer(ready=True)

    async def handle(self, _: Request) -> Response:
        """The handler for /healthz."""
        answer = await self.check()
        return Response(answer.status, answer.body)


async def _connect_unless_stopped(link: DriverLink, stop: asyncio.Event) -> bool:
    """Wait (forever) for the driver; False when ``stop`` came first."""
    connecting = asyncio.ensure_future(link.connect(None))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
    return not connecting.cancelled()


async def discover_driver_name(
    config: Config, metrics: OperationMetrics, stop: asyncio.Event, link: DriverLink
) -> str:
    """Wait for the driver and return its name, retrying hung or unavailable calls.

    Raises:
        RpcError: when GetPluginInfo fails with a non-retryable error.
        identity.DriverError: when the driver returns an empty name.
    Returns:
        The name, or "" when ``stop`` was set first.
    """
    if not await _connect_unless_stopped(link, stop):
        return ""
    conn = (await link.connect(None)).with_metrics(metrics)
    while not stop.is_set():
        try:
            log.info("Calling CSI driver to discover driver name")
            return await identity.get_driver_name(conn, timeout=config.probe_timeout)
        except RpcError as err:
            if err.code not in _RETRYABLE:
                raise
            log.error("GetPluginInfo failed, retrying", error=str(err))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _STARTUP_RETRY_DELAY)
    return ""


async def run_livenessprobe(
    config: Config,
    stop: asyncio.Event,
    *,
    link: DriverLink | None = None,
    http: HttpHost | None = None,
) -> int:
    """Run the livenessprobe until ``stop`` is set.

    Args:
        config: the validated flags.
        stop: set on SIGTERM / SIGINT.
        link: the start-up driver connection to use (the bundle shares one); by default the
            role dials its own and closes it once it has the driver name, as Go does.
        http: where to serve the routes (the bundle's shared host); by default own servers.

    Returns:
        The exit code: 0 after a signal, 1 on start-up failure.
    """
    metrics = OperationMetrics()
    own_link = link is None
    link = DriverLink(config.csi_address) if link is None else link
    try:
        name = await discover_driver_name(config, metrics, stop, link)
    except (RpcError, identity.DriverError) as err:
        log.error("Failed to get CSI driver name", error=go_error_text(err))
        return 1
    finally:
        if own_link:
            await link.close()
    if not name:
        return 0
    log.info("CSI driver name", driver=name)
    metrics.set_driver_name(name)

    prober = Prober(config, metrics)
    health: dict[str, Route] = {"/healthz": Route(prober.handle, ("*",))}
    if config.metrics_on_health:
        health[config.metrics_path] = metrics_handler(metrics)
    servers = Servers()  # used only when no host was given; closing it unused is a no-op
    host: HttpHost = servers if http is None else http
    try:
        if config.metrics_address:
            separate = {config.metrics_path: metrics_handler(metrics)}
            await host.serve(config.metrics_address, separate)
        server = await host.serve(config.health_address, health)
        log.info("ServeMux listening", address=server.endpoint)
        startup.settle()
        await stop.wait()
        return 0
    except HttpBindError as err:
        log.error("Failed to start http server", error=str(err))
        return 1
    finally:
        await servers.close()
