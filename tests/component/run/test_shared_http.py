"""The bundle's shared HTTP servers: one per endpoint, combined health paths, clear clashes."""

from __future__ import annotations

import asyncio

import pytest

from csi_sidecars.run.http import SharedHttp
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.http import Request, Response
from csi_sidecars.runtime.httphost import Route
from tests.support.net import free_port, http_get


def answer(status: int, text: str) -> Route:
    async def handle(_: Request) -> Response:
        return Response(status, text)

    return Route(handle, ("*",))


async def test_roles_starting_at_once_share_one_server() -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    shared = SharedHttp()
    shared.expect("a", address, "/healthz")
    shared.expect("b", f"127.0.0.1:{port}", "/healthz")
    shared.expect("b", address, "/metrics")
    try:
        first, second = await asyncio.gather(
            shared.host("a").serve(address, {"/healthz": answer(200, "ok")}),
            shared.host("b").serve(
                address, {"/healthz": answer(200, "ok"), "/metrics": answer(200, "m")}
            ),
        )
        assert first is second
        base = f"http://127.0.0.1:{port}"
        assert await http_get(base + "/healthz") == (200, "ok")
        assert await http_get(base + "/metrics") == (200, "m")
        assert await http_get(base + "/healthz/a") == (200, "ok")
    finally:
        await shared.close()


async def test_a_combined_health_path_reports_the_first_failing_or_missing_role() -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    shared = SharedHttp()
    for role in ("a", "b"):
        shared.expect(role, address, "/healthz")
    base = f"http://127.0.0.1:{port}"
    try:
        await shared.host("a").serve(address, {"/healthz": answer(500, "broken")})
        assert await http_get(base + "/healthz") == (500, "a: broken")
        await shared.host("a").serve(address, {"/healthz": answer(200, "ok")})
        assert await http_get(base + "/healthz") == (503, "b: not serving yet")
        await shared.host("b").serve(address, {"/healthz": answer(404, "gone")})
        assert await http_get(base + "/healthz") == (404, "b: gone")
        assert await http_get(base + "/healthz/a") == (200, "ok")
    finally:
        await shared.close()


def test_other_paths_must_not_clash_and_endpoints_must_parse() -> None:
    shared = SharedHttp()
    shared.expect("a", ":9808", "/metrics")
    with pytest.raises(ConfigError, match=r"a and b both serve /metrics on 0\.0\.0\.0:9808"):
        shared.expect("b", "0.0.0.0:9808", "/metrics")
    shared.expect("b", "127.0.0.1:9808", "/metrics")  # another endpoint: fine
    with pytest.raises(ConfigError, match="b: invalid HTTP endpoint"):
        shared.expect("b", "nowhere", "/healthz")
