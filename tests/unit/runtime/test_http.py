"""The shared HTTP server: routes, metrics rendering, bind errors."""

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from csi_sidecars.runtime.http import HttpBindError, HttpServer, metrics_handler, split_endpoint


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
    registry = CollectorRegistry()
    Counter("things_total", "Things.", registry=registry).inc(3)
    server = HttpServer("127.0.0.1:0")

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="ok")

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
    finally:
        await server.stop()


async def test_bind_error_is_clear() -> None:
    first = HttpServer("127.0.0.1:0")
    await first.start()
    try:
        second = HttpServer(f"127.0.0.1:{first.port}")
        with pytest.raises(HttpBindError, match="cannot listen on"):
            await second.start()
    finally:
        await first.stop()
