"""The HTTP endpoint every role can serve: metrics and health checks, on plain asyncio streams.

Go sidecars take ``--http-endpoint`` (``host:port``, or ``:port`` for every interface) and serve
``--metrics-path`` plus their health paths on it. :class:`HttpServer` does the same: roles add
routes, then ``start()`` binds (raising :class:`HttpBindError` with a clear message when the
address is taken, so the role can exit non-zero rather than run without its probes).

The server is a small HTTP/1.1 implementation of our own rather than aiohttp.web: the endpoints
are a handful of GETs from kubelet probes and Prometheus, and importing aiohttp costs the node
roles (which need no HTTP client) about 0.1 s of start-up and several MiB. It speaks keep-alive,
bounds the request head (size and time), answers 404 / 405 / 400 like any server, and never
lets a handler's exception take the process down (500).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.metrics import CONTENT_TYPE, Registry, render

log = rlog.get_logger("http")

#: Longest request head (request line and headers) accepted, and how long a client may take.
MAX_HEAD = 16 * 1024
HEAD_TIMEOUT = 10.0
#: How long an idle keep-alive connection stays open.
IDLE_TIMEOUT = 30.0
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler sees of a request."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers: ``text`` (UTF-8) or raw ``body``."""

    status: int = 200
    text: str = ""
    body: bytes | None = None
    content_type: str = TEXT

    def payload(self) -> bytes:
        """The response body as bytes."""
        return self.body if self.body is not None else self.text.encode("utf-8")


Handler = Callable[[Request], Awaitable[Response]]


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


def metrics_handler(registry: Registry) -> Handler:
    """A handler that renders ``registry`` in the Prometheus text format."""

    async def handle(_: Request) -> Response:
        return Response(body=render(registry), content_type=CONTENT_TYPE)

    return handle


def _head(status: int, length: int, content_type: str, keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1")


class HttpServer:
    """A small HTTP/1.1 server for metrics and health endpoints."""

    def __init__(self, endpoint: str) -> None:
        """Create a server for ``endpoint`` (``host:port``); nothing is bound until start()."""
        self.endpoint = endpoint
        self.host, self.port = split_endpoint(endpoint)
        self._routes: dict[str, tuple[Handler, frozenset[str]]] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def add(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve ``handler`` at ``path`` for the given methods (``*`` for any)."""
        allowed = frozenset(methods) | ({"HEAD"} if "GET" in methods else set())
        self._routes[path] = (handler, allowed)

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            HttpBindError: when the address cannot be bound.
        """
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, reuse_address=True, limit=MAX_HEAD
            )
        except OSError as err:
            raise HttpBindError(f"cannot listen on {self.endpoint}: {err.strerror or err}") from err
        sockets = self._server.sockets
        if sockets and self.port == 0:
            self.port = int(sockets[0].getsockname()[1])
        log.info("Serving HTTP", endpoint=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        """Stop serving, close open connections and release the port."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            first = True
            while True:
                try:
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT if first else IDLE_TIMEOUT
                    )
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._write(writer, Response(431, "request head too large"), False)
                    return
                first = False
                keep_alive = await self._answer(head, writer)
                if not keep_alive:
                    return
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; whether the connection stays open."""
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
        except ValueError:
            await self._write(writer, Response(400, "bad request"), False)
            return False
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
            # Our endpoints take no body; do not try to read one.
            await self._write(writer, Response(400, "request bodies are not accepted"), False)
            return False
        url = urlsplit(target)
        route = self._routes.get(url.path)
        if route is None:
            response = Response(404, "404: Not Found")
        elif "*" not in route[1] and method not in route[1]:
            response = Response(405, "405: Method Not Allowed")
        else:
            request = Request(method, url.path, parse_qs(url.query), headers)
            try:
                response = await route[0](request)
            except Exception as exc:  # a handler bug must not take the endpoint down
                log.error("HTTP handler failed", path=url.path, error=repr(exc))
                response = Response(500, "500: Internal Server Error")
        await self._write(writer, response, keep_alive, head_only=method == "HEAD")
        return keep_alive

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, response: Response, keep_alive: bool, head_only: bool = False
    ) -> None:
        body = response.payload()
        head = _head(response.status, len(body), response.content_type, keep_alive)
        # One write: two would cost a second send() and a second wake-up of the client.
        writer.write(head if head_only else head + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
