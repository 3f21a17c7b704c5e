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
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

#: Seconds an idle keep-alive connection may wait for reuse.
IDLE_SECONDS = 30.0
#: Largest answer head and line (a watch event on one line) we accept.
READ_LIMIT = 2**26
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
#: Paths that quoting leaves as they are (letters, digits and the safe marks, no "%").
_ALL_SAFE = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")
#: Longest chunk size line (hex size and extensions) accepted.
MAX_SIZE_LINE = 1024


class HttpError(ConnectionError):
    """The connection failed or the answer was not valid HTTP."""


@dataclass(slots=True)
class Response:
    """A complete answer: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Conn:
    __slots__ = ("idle_since", "reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


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


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return
        data = await reader.readexactly(size)
        await reader.readexactly(2)
        yield data


class _Watchdog:
    """A read timeout for a long stream that costs nothing per read.

    ``asyncio.timeout`` around every read of a watch costs a timer and a task lookup per event.
    Instead one timer checks, when due, whether a read is waiting and has waited ``seconds``;
    only then it fails the reader with ``TimeoutError`` (the pending read raises it). Reads
    mark their start with :meth:`begin` and their end with :meth:`end`.
    """

    __slots__ = ("_handle", "_loop", "_reader", "_seconds", "_started")

    def __init__(self, reader: asyncio.StreamReader, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._seconds = seconds
        self._started: float | None = None
        self._handle = self._loop.call_at(self._loop.time() + seconds, self._check)

    def begin(self) -> None:
        self._started = self._loop.time()

    def end(self) -> None:
        self._started = None

    def _check(self) -> None:
        now = self._loop.time()
        started = self._started
        if started is not None and now - started >= self._seconds:
            self._reader.set_exception(TimeoutError(f"no data for {self._seconds:g}s"))
            return
        due = (started if started is not None else now) + self._seconds
        self._handle = self._loop.call_at(due, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


class Stream:
    """A streamed answer (see :meth:`HttpPool.stream`): status, headers, then lines or body."""

    def __init__(
        self, conn: _Conn, status: int, headers: dict[str, str], read_timeout: float | None
    ) -> None:
        self.status = status
        self.headers = headers
        self._conn = conn
        self._read_timeout = read_timeout
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left = int(length) if length is not None and not self._chunked else None

    async def _pieces(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        if self._chunked:
            chunks = _chunks(reader).__aiter__()
            while True:
                async with asyncio.timeout(self._read_timeout):
                    try:
                        data = await chunks.__anext__()
                    except StopAsyncIteration:
                        return
                    except asyncio.IncompleteReadError as exc:
                        raise HttpError("connection closed in the middle of an answer") from exc
                yield data
        if self._left is not None and self._read_timeout is None:
            # A plain answer of known length (every API answer but a watch): one read.
            left, self._left = self._left, 0
            try:
                yield await reader.readexactly(left)
            except asyncio.IncompleteReadError as exc:
                raise HttpError("connection closed in the middle of an answer") from exc
            return
        while self._left is None or self._left > 0:
            want = 2**16 if self._left is None else min(self._left, 2**16)
            async with asyncio.timeout(self._read_timeout):
                data = await reader.read(want)
            if not data:
                if self._left:
                    raise HttpError("connection closed in the middle of an answer")
                return
            if self._left is not None:
                self._left -= len(data)
            yield data

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        return b"".join([piece async for piece in self._pieces()])

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (without the line ends); a last unterminated line too."""
        if not self._chunked:
            rest = b""
            async for piece in self._pieces():
                *complete, rest = (rest + piece if rest else piece).split(b"\n")
                for line in complete:
                    yield line
            if rest:
                yield rest
            return
        async for line in self._chunked_lines():
            yield line

    async def _chunked_lines(self) -> AsyncIterator[bytes]:
        # A watch: each event is one chunk, usually one read. Whatever one read brings is
        # unframed and split here in one go; the read timeout is a watchdog, not a timer per
        # read (see _Watchdog).
        reader = self._conn.reader
        dog = _Watchdog(reader, self._read_timeout) if self._read_timeout else None
        buf = b""  # framed bytes not yet unframed
        rest = b""  # the start of a line not yet complete
        left = 0  # payload bytes of the current chunk still to come
        skip = 0  # bytes of the CRLF that ends the current chunk still to come
        try:
            while True:
                if dog is not None:
                    dog.begin()
                try:
                    data = await reader.read(2**16)
                finally:
                    if dog is not None:
                        dog.end()
                if not data:
                    raise HttpError("connection closed in the middle of an answer")
                buf = buf + data if buf else data
                payload: list[bytes] = []
                done = False
                broken: HttpError | None = None  # raised once the lines before it are out
                pos, size_of_buf = 0, len(buf)
                while pos < size_of_buf:
                    if left:
                        take = min(left, size_of_buf - pos)
                        payload.append(buf[pos : pos + take])
                        pos += take
                        left -= take
                        if not left:
                            skip = 2
                    elif skip:
                        take = min(skip, size_of_buf - pos)
                        pos += take
                        skip -= take
                    else:
                        end = buf.find(b"\r\n", pos)
                        if end < 0:
                            if size_of_buf - pos > MAX_SIZE_LINE:
                                broken = HttpError(f"bad chunk size {buf[pos : pos + 40]!r}")
                            break
                        try:
                            left = int(buf[pos:end].split(b";", 1)[0].strip(), 16)
                        except ValueError:
                            broken = HttpError(f"bad chunk size {buf[pos:end][:40]!r}")
                            break
                        pos = end + 2
                        if not left:
                            done = True
                            break
                buf = buf[pos:] if pos < size_of_buf else b""
                if payload:
                    text = payload[0] if len(payload) == 1 else b"".join(payload)
                    *complete, rest = (rest + text if rest else text).split(b"\n")
                    for line in complete:
                        yield line
                if broken is not None:
                    raise broken
                if done:
                    if rest:
                        yield rest
                    return
        finally:
            if dog is not None:
                dog.cancel()


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
        self._idle: list[_Conn] = []
        self._closed = False

    def target(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """The request target of ``path`` with ``params`` on this server."""
        return target(self.base_path, path, params)

    async def _open(self) -> _Conn:
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
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reader.at_eof() or now - conn.idle_since > IDLE_SECONDS:
                conn.close()
                continue
            return conn
        return None

    def _release(self, conn: _Conn) -> None:
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

    async def _exchange(self, conn: _Conn, data: bytes, method: str) -> Response:
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
            body = await stream.read()
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
    ) -> Response:
        """Send one request on a pooled connection and read the whole answer.

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
                        return await self._exchange(conn, data, method)
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
