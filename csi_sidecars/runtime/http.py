"""The HTTP endpoint every role can serve: metrics and health checks on aiohttp.

Go sidecars take ``--http-endpoint`` (``host:port``, or ``:port`` for every interface) and serve
``--metrics-path`` plus their health paths on it. :class:`HttpServer` does the same: roles add
routes, then ``start()`` binds (raising :class:`HttpBindError` with a clear message when the
address is taken, so the role can exit non-zero rather than run without its probes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpBindError(RuntimeError):
    """The HTTP endpoint could not be bound."""


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` (``:port`` means every interface, as in Go) into host and port.

    Raises:
        ValueError: when the endpoint has no valid port.
    """
    host, sep, port_text = endpoint.rpartition(":")
    if not sep:
        raise ValueError(f"invalid HTTP endpoint {endpoint!r}: expected host:port")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid HTTP endpoint {endpoint!r}: bad port {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid HTTP endpoint {endpoint!r}: port out of range")
    return host or "0.0.0.0", port


def metrics_handler(registry: CollectorRegistry) -> Handler:
    """An aiohttp handler that renders ``registry`` in the Prometheus text format."""

    async def handle(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    return handle


class HttpServer:
    """A small aiohttp server for metrics and health endpoints."""

    def __init__(self, endpoint: str) -> None:
        """Create a server for ``endpoint`` (``host:port``); nothing is bound until start()."""
        self.endpoint = endpoint
        self.host, self.port = split_endpoint(endpoint)
        self._app = web.Application()
        self._runner: web.AppRunner | None = None

    def add(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve ``handler`` at ``path`` for the given methods (``*`` for any)."""
        for method in methods:
            self._app.router.add_route(method, path, handler)

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            HttpBindError: when the address cannot be bound.
        """
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            raise HttpBindError(f"cannot listen on {self.endpoint}: {err.strerror or err}") from err
        addrs = self._runner.addresses
        if addrs and self.port == 0:
            self.port = int(addrs[0][1])
        log.info("Serving HTTP", endpoint=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        """Stop serving and release the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
