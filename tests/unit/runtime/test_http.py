"""The shared HTTP server: routes, metrics rendering, bind errors."""

import asyncio

import aiohttp
import pytest

from csi_sidecars.runtime.http import (
    HttpBindError,
    HttpServer,
    Request,
    Response,
    metrics_handler,
    split_endpoint,
)
from csi_sidecars.runtime.metrics import Counter, Registry


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (":9808", ("0.0.0.0", 9808)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:1", ("::1", 1)),
    ],
)
def test_split_endpoint(endpoint: str, expected: tuple[str, int]) -> None:
    assert split_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["9808", "host:port", ":70000"])
def test_split_endpoint_rejects(endpoint: str) -> None:
    with pytest.raises(ValueError, match="invalid HTTP endpoint"):
        split_endpoint(endpoint)


async def test_serves_routes_and_metrics() -> None:
    registry = Registry()
    Counter("things_total", "Things.", registry=registry).inc(3)
    server = HttpServer("127.0.0.1:0")

    async def hello(_: Request) -> Response:
        return Response(text="ok")

    server.add("/healthz", hello)
    server.add("/metrics", metrics_handler(registry))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as resp:
                assert resp.status == 200
                assert await resp.text() == "ok"
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as resp:
                assert "things_total 3.0" in await resp.text()
                assert resp.headers["Content-Type"].startswith("text/plain; version=")
    finally:
        await server.stop()


async def test_errors_methods_keep_alive_and_handler_failures() -> None:
    seen: list[Request] = []

    async def echo(request: Request) -> Response:
        seen.append(request)
        return Response(201, "made", content_type="text/x")

    async def broken(_: Request) -> Response:
        raise RuntimeError("bug")

    server = HttpServer("127.0.0.1:0")
    server.add("/e", echo)
    server.add("/any", echo, ("*",))
    server.add("/broken", broken)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{base}/e?x=1&x=2") as resp:
                assert (resp.status, await resp.text()) == (201, "made")
                assert resp.headers["Content-Type"] == "text/x"
            async with session.get(f"{base}/e") as resp:  # same connection (keep-alive)
                assert resp.status == 201
            assert seen[0].query == {"x": ["1", "2"]} and seen[0].method == "GET"
            async with session.post(f"{base}/e") as resp:
                assert resp.status == 405
            async with session.post(f"{base}/any") as resp:
                assert resp.status == 201
            async with session.get(f"{base}/nope") as resp:
                assert resp.status == 404
            async with session.get(f"{base}/broken") as resp:
                assert resp.status == 500 and "bug" not in await resp.text()
            async with session.head(f"{base}/e") as resp:
                assert resp.status == 201 and await resp.read() == b""
        # garbage and an oversized head get an answer and a closed connection
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NONSENSE\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /e HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 431")
        writer.close()
        # an idle client is not awaited forever on stop
        _, idle = await asyncio.open_connection("127.0.0.1", server.port)
    finally:
        await asyncio.wait_for(server.stop(), 5)
    idle.close()


async def test_bind_error_is_clear() -> None:
    first = HttpServer("127.0.0.1:0")
    await first.start()
    try:
        second = HttpServer(f"127.0.0.1:{first.port}")
        with pytest.raises(HttpBindError, match="cannot listen on"):
            await second.start()
    finally:
        await first.stop()
