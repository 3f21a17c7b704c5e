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

import grpc

from csi_sidecars.csi import rpc
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.connection import ConnectTimeoutError, LossPolicy, connect
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.livenessprobe.config import (
    DEADLINE_BODY,
    Answer,
    Config,
    overloaded_answer,
    probe_answer,
)
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.http import (
    HttpBindError,
    HttpServer,
    Request,
    Response,
    metrics_handler,
)

log = rlog.get_logger("livenessprobe")

_RETRYABLE = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
_STARTUP_RETRY_DELAY = 1.0


def go_error_text(err: BaseException) -> str:
    """Render an error as the Go livenessprobe's body does.

    gRPC errors become ``rpc error: code = <Code> desc = <msg>``; a deadline reads
    ``context deadline exceeded`` as Go's context error does.
    """
    if isinstance(err, ConnectTimeoutError | TimeoutError):
        return DEADLINE_BODY
    return format_error(err)


class Prober:
    """Answers /healthz: one fresh connection and one ``Probe`` per request, bounded."""

    def __init__(self, config: Config, metrics: CSIMetrics | None) -> None:
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
            conn = await connect(
                self.config.csi_address,
                timeout=remaining,
                metrics=self.metrics,
                on_lost=LossPolicy.RECONNECT,
            )
        except ConnectTimeoutError as err:
            log.error("Failed to establish connection to CSI driver", error=DEADLINE_BODY)
            return probe_answer(error=go_error_text(err))
        try:
            if rlog.v(5):
                log.info("Sending probe request to CSI driver", address=self.config.csi_address)
            remaining = max(deadline - time.monotonic(), 0.001)
            ready = await rpc.probe(conn, timeout=remaining)
        except grpc.RpcError as err:
            text = go_error_text(err)
            log.error("Health check failed", error=text)
            return probe_answer(error=text)
        finally:
            await conn.close()
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


async def discover_driver_name(config: Config, metrics: CSIMetrics, stop: asyncio.Event) -> str:
    """Wait for the driver and return its name, retrying hung or unavailable calls.

    Raises:
        grpc.RpcError: when GetPluginInfo fails with a non-retryable error.
        rpc.CSIError: when the driver returns an empty name.
        asyncio.CancelledError: never on stop; returns "" instead when ``stop`` is set.
    """
    while not stop.is_set():
        conn_task = asyncio.ensure_future(
            connect(config.csi_address, timeout=None, metrics=metrics, on_lost=LossPolicy.RECONNECT)
        )
        stop_task = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({conn_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
            if not conn_task.done():
                conn_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn_task
        if conn_task.cancelled():
            return ""
        conn = conn_task.result()
        try:
            log.info("Calling CSI driver to discover driver name")
            return await rpc.get_driver_name(conn, timeout=config.probe_timeout)
        except grpc.RpcError as err:
            if err.code() not in _RETRYABLE:
                raise
            log.error("GetPluginInfo failed, retrying", error=go_error_text(err))
        finally:
            await conn.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _STARTUP_RETRY_DELAY)
    return ""


async def run_livenessprobe(config: Config, stop: asyncio.Event) -> int:
    """Run the livenessprobe until ``stop`` is set.

    Returns:
        The exit code: 0 after a signal, 1 on start-up failure.
    """
    metrics = CSIMetrics()
    try:
        name = await discover_driver_name(config, metrics, stop)
    except (grpc.RpcError, rpc.CSIError) as err:
        log.error("Failed to get CSI driver name", error=go_error_text(err))
        return 1
    if not name:
        return 0
    log.info("CSI driver name", driver=name)
    metrics.set_driver_name(name)

    servers: list[HttpServer] = []
    health = HttpServer(config.health_address)
    prober = Prober(config, metrics)
    health.add("/healthz", prober.handle, methods=("*",))
    if config.metrics_on_health:
        health.add(config.metrics_path, metrics_handler(metrics.registry))
    servers.append(health)
    if config.metrics_address:
        separate = HttpServer(config.metrics_address)
        separate.add(config.metrics_path, metrics_handler(metrics.registry))
        servers.insert(0, separate)
    try:
        for server in servers:
            await server.start()
        log.info("ServeMux listening", address=health.endpoint)
        await stop.wait()
        return 0
    except HttpBindError as err:
        log.error("Failed to start http server", error=str(err))
        return 1
    finally:
        for server in servers:
            await server.stop()
