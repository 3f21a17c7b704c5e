"""Streamed HTTP/1.1 answers: chunked framing, lines of a watch, a cheap read timeout.

Split from :mod:`csi_sidecars.kube.http` (the pool and requests live there). A watch answer is
a chunked body that stays open for minutes, one chunk per event: :meth:`Stream.lines` unframes
whatever one socket read brings and splits it into lines in one go, and its read timeout is a
:class:`_Watchdog` (one timer that looks at the read in progress when due) instead of a timer
per read, since an informer reads one event at a time for its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

#: Longest chunk size line (hex size and extensions) accepted.
MAX_SIZE_LINE = 1024


class HttpError(ConnectionError):
    """The connection failed or the answer was not valid HTTP."""


class Conn:
    __slots__ = ("idle_since", "reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False
        self.idle_since = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


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
        self, conn: Conn, status: int, headers: dict[str, str], read_timeout: float | None
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

    def pieces(self) -> AsyncIterator[bytes]:
        """The (remaining) body piece by piece, as it arrives (chunks unframed)."""
        return self._pieces()

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        return b"".join([piece async for piece in self._pieces()])

    async def read_buffer(self) -> bytes | bytearray:
        """The whole (remaining) body, a long chunked one gathered in place.

        Unlike :meth:`read` no list of pieces is joined into a copy at the end: an initial list
        of tens of thousands of objects is held once, not twice, while it is decoded.
        """
        first = b""
        body: bytearray | None = None
        async for piece in self._pieces():
            if body is not None:
                body += piece
            elif not first:
                first = piece
            else:
                body = bytearray(first)
                body += piece
        return first if body is None else body

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
