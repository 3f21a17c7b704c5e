"""A small HTTP/1.1 client on asyncio streams: what :class:`~.client.KubeClient` sends through.

The API server is one host that speaks HTTP/1.1 with keep-alive; requests are small and
answers are JSON with a ``Content-Length`` or chunked (watches). A general client (aiohttp)
costs about 3x the CPU per request of this one and ~8 MiB of resident memory for features a
sidecar never uses (cookies, redirects, proxies, multipart, compression), so requests go through
:class:`HttpPool` instead:

* a pool of at most ``limit`` keep-alive connections; more requests at once wait for one;
* an idle connection is not reused once the server closed it or it sat idle longer than
  :data:`IDLE_SECONDS` (the API server closes idle connections after 90 s); a request that
  finds its reused connection closed before any answer arrived is sent once more on a fresh
  connection when its method is idempotent (as Go's transport does);
* :meth:`HttpPool.stream` opens a connection of its own for a long answer (a watch), never
  taken from or returned to the pool, with a timeout on each read.

Failures are :class:`ConnectionError` (or ``TimeoutError``); answers with any status are
returned, the caller decides what an error status means.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from csi_sidecars.kube.httpstream import Conn, HttpError, Stream

__all__ = ["HttpError", "HttpPool", "Response", "Stream", "target"]

#: Seconds an idle keep-alive connection may wait for reuse.
IDLE_SECONDS = 30.0
#: Largest answer head we accept; also how far a connection's reader buffers ahead of its
#: consumer (twice this) before it stops reading the socket: an initial list that arrives
#: faster than it is decoded waits in the kernel and the server, not in our memory.
READ_LIMIT = 2**20
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
#: Paths that quoting leaves as they are (letters, digits and the safe marks, no "%").
_ALL_SAFE = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")


@dataclass(slots=True)
class Response:
    """A complete answer: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes | bytearray


class _Stale(Exception):
    """A reused connection was closed by the server before it answered."""


def target(base_path: str, path: str, params: Mapping[str, str] | None) -> str:
    """The request target: the server URL's path prefix, ``path`` and the query."""
    out = base_path + path
    if not _ALL_SAFE.fullmatch(out):  # the usual API path needs no quoting
        out = quote(out, safe=_PATH_SAFE)
    if params:
        out += "?" + urlencode(params, quote_via=quote, safe="")
    return out


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise HttpError(f"not an HTTP answer: {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise HttpError(f"not an HTTP status: {lines[0][:80]!r}") from None
    try:  # the usual "Name: value" lines, in one pass
        headers = {n.lower(): v.strip() for n, v in (line.split(": ", 1) for line in lines[1:])}
    except ValueError:  # a line without ": ": the careful way
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers, parts[0]


def _keeps_alive(version: str, headers: Mapping[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


class HttpPool:
    """Keep-alive connections to one server.

    Args:
        url: the server URL (``https://host:port`` with an optional path prefix).
        ssl_context: TLS settings for ``https`` (None: plain TCP).
        server_hostname: the TLS server name (default: the URL's host).
        limit: connections at once (0: no limit).
        headers: sent with every request.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        limit: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) server URL: {url!r}")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.base_path = parts.path.rstrip("/")
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        default_port = (self.secure and self.port == 443) or (not self.secure and self.port == 80)
        self.host_header = netloc if default_port else f"{netloc}:{self.port}"
        self.ssl_context = ssl_context if self.secure else None
        if self.secure and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        self.server_hostname = server_hostname or self.host
        self.headers = dict(headers or {})
        self._limit = asyncio.Semaphore(limit) if limit > 0 else None
        self._idle: list[Conn] = []
        self._closed = False

    def target(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The request target of ``path`` with ``params`` on this server."""
        return target(self.base_path, path, params)

    async def _open(self) -> Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.server_hostname if self.secure else None,
                limit=READ_LIMIT,
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host_header}: {exc}") from exc
        return Conn(reader, writer)

    def _take_idle(self) -> Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or now - conn.idle_since > IDLE_SECONDS:
                conn.close()
                continue
            return conn
        return None

    def _release(self, conn: Conn) -> None:
        if self._closed:
            conn.close()
            return
        conn.used = True
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _encode(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines.extend(f"{k}: {v}" for k, v in self.headers.items() if k not in headers)
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body if body else head

    async def _exchange(
        self, conn: Conn, data: bytes, method: str, sink: Callable[[bytes], None] | None = None
    ) -> Response:
        conn.writer.write(data)
        try:
            await conn.writer.drain()
            status, headers, version = await _read_head(conn.reader)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if conn.used and not partial:
                raise _Stale() from exc
            raise HttpError(f"connection to {self.host_header} lost: {exc!r}") from exc
        stream = Stream(conn, status, headers, None)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            stream._left = 0
        try:
            if sink is not None and 200 <= status < 300:
                body: bytes | bytearray = b""
                async for piece in stream.pieces():
                    sink(piece)
            else:
                body = await stream.read_buffer()
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise HttpError(f"connection to {self.host_header} lost: {exc!r}") from exc
        keep = _keeps_alive(version, headers) and (stream._chunked or stream._left is not None)
        if keep:
            self._release(conn)
        else:
            conn.close()
        return Response(status, headers, body)

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> Response:
        """Send one request on a pooled connection and read the whole answer.

        With ``sink`` the body of a successful (2xx) answer is handed to it piece by piece as it
        arrives, not kept (the response's body is then empty); an exception of ``sink`` ends
        the request and closes the connection.

        Raises:
            HttpError: the connection failed or the answer was not HTTP.
            TimeoutError: ``timeout`` seconds passed (waiting for a connection included).
        """
        data = self._encode(method, target, headers or {}, body)
        async with asyncio.timeout(timeout):
            if self._limit is not None:
                await self._limit.acquire()
            try:
                for attempt in range(2):
                    conn = self._take_idle() if attempt == 0 else None
                    conn = conn or await self._open()
                    try:
                        return await self._exchange(conn, data, method, sink)
                    except _Stale as exc:
                        conn.close()
                        if method not in IDEMPOTENT:
                            raise HttpError(
                                f"connection to {self.host_header} closed by the server"
                            ) from exc.__cause__
                    except BaseException:
                        conn.close()
                        raise
                raise HttpError(f"connection to {self.host_header} closed by the server")
            finally:
                if self._limit is not None:
                    self._limit.release()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[Stream]:
        """Send a request on a connection of its own and stream the answer.

        Raises:
            HttpError: the connection failed or the answer was not HTTP.
            TimeoutError: connecting, or one read, took too long.
        """
        data = self._encode(method, target, headers or {}, None)
        async with asyncio.timeout(connect_timeout):
            conn = await self._open()
        try:
            conn.writer.write(data)
            try:
                async with asyncio.timeout(read_timeout):
                    await conn.writer.drain()
                    status, head, _ = await _read_head(conn.reader)
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise HttpError(f"connection to {self.host_header} lost: {exc!r}") from exc
            yield Stream(conn, status, head, read_timeout)
        finally:
            conn.close()

    async def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
