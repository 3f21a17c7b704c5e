"""The HTTP/1.1 client on a scripted raw TCP server: keep-alive, chunks, stale connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from csi_sidecars.kube.http import HttpError, HttpPool, target

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[RawServer]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> RawServer:
        raw = RawServer(script)
        srv = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(srv)
        raw.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/prefix"
        return raw

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_target_keeps_the_prefix_and_encodes_the_query() -> None:
    got = target("/k8s/c1", "/api/v1/pods", {"labelSelector": "a in (b,c)", "limit": "5"})
    assert got == "/k8s/c1/api/v1/pods?labelSelector=a%20in%20%28b%2Cc%29&limit=5"


async def test_keep_alive_reuses_one_connection(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        raw = server
        while True:
            await raw.read_request(reader)
            writer.write(ok(b'{"n":1}'))
            await writer.drain()

    server = await serve(script)
    pool = HttpPool(server.url, limit=2, headers={"User-Agent": "ua"})
    for _ in range(3):
        resp = await pool.request("PATCH", pool.target("/x"), body=b"{}", timeout=5)
        assert (resp.status, resp.body) == (200, b'{"n":1}')
    await pool.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"PATCH /prefix/x HTTP/1.1\r\n")
    assert b"\r\nUser-Agent: ua\r\n" in first and b"\r\nContent-Length: 2\r\n" in first


async def test_connection_close_is_honoured(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(ok(b"x", "Connection: close\r\n"))
        await writer.drain()

    server = await serve(script)
    pool = HttpPool(server.url)
    for _ in range(2):
        assert (await pool.request("GET", "/a", timeout=5)).body == b"x"
    assert server.connections == 2


async def test_stale_connection_is_retried_only_when_idempotent(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(ok(b"first" if n == 1 else b"again"))
        await writer.drain()
        # Then close without a "Connection: close" header: the kept connection goes stale
        # while the client has it idle (the client may not have seen the close yet).
        await server.read_request(reader)

    server = await serve(script)
    pool = HttpPool(server.url)
    assert (await pool.request("GET", "/a", timeout=5)).body == b"first"
    assert (await pool.request("GET", "/a", timeout=5)).body == b"again"  # retried once
    with pytest.raises(HttpError):
        await pool.request("POST", "/a", body=b"{}", timeout=5)


async def test_chunked_lines_across_chunks_and_status(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    pieces = [b'{"a":', b'1}\n{"b":2}\n', b"\n", b'{"c":3}']

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server = await serve(script)
    pool = HttpPool(server.url)
    async with pool.stream("GET", "/w", connect_timeout=5, read_timeout=5) as resp:
        assert resp.status == 200
        lines = [line async for line in resp.lines()]
    assert lines == [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']


async def test_a_read_that_takes_too_long_times_out(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(10)

    server = await serve(script)
    pool = HttpPool(server.url)
    with pytest.raises(TimeoutError):
        async with pool.stream("GET", "/w", connect_timeout=5, read_timeout=0.05) as resp:
            async for _ in resp.lines():
                pass


async def test_garbage_and_refused_connections_are_http_errors(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        await writer.drain()

    server = await serve(script)
    with pytest.raises(HttpError, match="not an HTTP answer"):
        await HttpPool(server.url).request("GET", "/", timeout=5)
    with pytest.raises(HttpError, match="cannot connect"):
        await HttpPool("http://127.0.0.1:1").request("GET", "/", timeout=5)
    with pytest.raises(ValueError):
        HttpPool("ftp://x")


def _framed(pieces: list[bytes], ext: bool = False) -> bytes:
    out = b""
    for piece in pieces:
        out += f"{len(piece):x}{';x=y' if ext else ''}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7, 11, 64])
async def test_chunked_lines_whatever_the_reads_bring(
    serve: Callable[[Script], Awaitable[RawServer]], cut: int
) -> None:
    # The same framed body sent in slices of every size: size lines, payloads and the CRLFs
    # after them split anywhere, several chunks in one read.
    events = [b'{"type":"ADDED","n":%d}\n' % i for i in range(20)]
    body = _framed([*events[:10], events[10][:5], events[10][5:] + events[11], *events[12:]], True)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), cut):
            writer.write(body[start : start + cut])
            await writer.drain()
            await asyncio.sleep(0)

    server = await serve(script)
    async with HttpPool(server.url).stream("GET", "/w", read_timeout=5) as resp:
        lines = [line async for line in resp.lines()]
    assert lines == [e.rstrip(b"\n") for e in events]


@pytest.mark.parametrize(
    ("tail", "error"),
    [(b"zz\r\n", "bad chunk size"), (b"5\r\nab", "closed in the middle"), (b"", "closed")],
)
async def test_broken_chunked_streams_are_http_errors(
    serve: Callable[[Script], Awaitable[RawServer]], tail: bytes, error: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n" + tail)
        await writer.drain()

    server = await serve(script)
    got: list[bytes] = []
    with pytest.raises(HttpError, match=error):
        async with HttpPool(server.url).stream("GET", "/w", read_timeout=5) as resp:
            async for line in resp.lines():
                got.append(line)
    assert got == [b"{}"]


async def test_a_slow_but_steady_stream_does_not_time_out(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    # Each gap is under the read timeout, all of them together well over it.
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(8):
            await asyncio.sleep(0.05)
            writer.write(_framed([b"%d\n" % i])[:-5])
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server = await serve(script)
    async with HttpPool(server.url).stream("GET", "/w", read_timeout=0.2) as resp:
        lines = [line async for line in resp.lines()]
    assert lines == [b"%d" % i for i in range(8)]


async def test_a_chunked_answer_to_a_request_is_gathered_whole(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    pieces = [b'{"items":[', b"1,2,", b"3]}"]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _framed(pieces))
        await writer.drain()

    server = await serve(script)
    resp = await HttpPool(server.url).request("GET", "/list", timeout=5)
    assert resp.status == 200
    assert resp.body == b"".join(pieces)


async def test_a_sink_gets_a_successful_answer_piece_by_piece(
    serve: Callable[[Script], Awaitable[RawServer]],
) -> None:
    pieces = [b'{"items":[', b"1,2,", b"3]}"]
    error = b'{"kind":"Status","code":403}'

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _framed(pieces))
        await server.read_request(reader)  # the same connection: the answer was read to its end
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(error) + error)
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _framed(pieces))
        await writer.drain()

    server = await serve(script)
    pool = HttpPool(server.url)
    got: list[bytes] = []
    resp = await pool.request("GET", "/list", timeout=5, sink=got.append)
    assert (resp.status, resp.body, got) == (200, b"", pieces)
    got.clear()
    resp = await pool.request("GET", "/list", timeout=5, sink=got.append)
    assert (resp.status, resp.body, got) == (403, error, [])  # errors are read whole
    assert server.connections == 1

    def fails(piece: bytes) -> None:
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await pool.request("GET", "/list", timeout=5, sink=fails)
    assert not pool._idle  # a half-read answer: its connection is closed, never reused
