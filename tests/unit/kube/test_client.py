"""The aiohttp client against a scripted local API server (wire format, auth, throttling)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from csi_sidecars.kube.client import KubeClient, user_agent
from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.config import ClientConfig, load_client_config
from csi_sidecars.kube.ratelimit import TokenBucket
from csi_sidecars.kube.resources import LEASES, PERSISTENT_VOLUMES, ApiError, Resource
from csi_sidecars.kube.store import Projection

#: A list path the test server answers 404.
RESOURCE_MISSING = Resource("", "v1", "missing", False, "Missing")


class Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.watch_lines: list[bytes] = []
        self.list_pieces: list[bytes] = []  # a list answer written chunk by chunk
        self.url = ""
        self.arrived = asyncio.Event()

    async def wait_requests(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.requests) < n:
                self.arrived.clear()
                await self.arrived.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": json.loads(body) if body else None,
            }
        )
        self.arrived.set()
        if request.query.get("watch"):
            return await _streamed(request, self.watch_lines)
        if self.list_pieces and request.method == "GET":
            return await _streamed(request, self.list_pieces)
        if request.path.endswith("/missing"):
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"}, status=404
            )
        return web.json_response({"items": [], "metadata": {"resourceVersion": "42"}})


async def _streamed(request: web.Request, pieces: list[bytes]) -> web.StreamResponse:
    """A chunked answer written one piece at a time."""
    resp = web.StreamResponse()
    await resp.prepare(request)
    for piece in pieces:
        await resp.write(piece)
    await resp.write_eof()
    return resp


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()

    async def route(request: web.Request) -> web.StreamResponse:
        return await srv.handle(request)

    app.router.add_route("*", "/{tail:.*}", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    yield srv
    await runner.cleanup()


async def test_headers_paths_and_params(server: Server) -> None:
    async with KubeClient(
        ClientConfig.with_token(server.url, "s3cret"), agent=user_agent("attacher")
    ) as c:
        out = await c.list(PERSISTENT_VOLUMES, label_selector="a=b", limit=10, continue_token="t")
        assert out["metadata"]["resourceVersion"] == "42"
        await c.get(LEASES, "lock", "ns")
    first, second = server.requests
    assert first["path"] == "/api/v1/persistentvolumes"
    assert first["query"] == {"labelSelector": "a=b", "limit": "10", "continue": "t"}
    assert first["headers"]["Authorization"] == "Bearer s3cret"
    assert first["headers"]["User-Agent"].startswith("csi-sidecars-attacher/")
    assert second["path"] == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lock"


@pytest.mark.parametrize(
    ("ptype", "ctype"),
    [
        ("merge", "application/merge-patch+json"),
        ("json", "application/json-patch+json"),
        ("strategic", "application/strategic-merge-patch+json"),
        ("apply", "application/apply-patch+yaml"),
    ],
)
async def test_patch_content_types(server: Server, ptype: Any, ctype: str) -> None:
    async with KubeClient(ClientConfig(host=server.url)) as c:
        await c.patch(
            PERSISTENT_VOLUMES,
            "pv",
            {"x": 1},
            patch_type=ptype,
            subresource="status",
            field_manager="mgr",
            force=True if ptype == "apply" else None,
        )
    req = server.requests[0]
    assert req["method"] == "PATCH"
    assert req["path"] == "/api/v1/persistentvolumes/pv/status"
    assert req["headers"]["Content-Type"] == ctype
    assert req["body"] == {"x": 1}
    assert req["query"]["fieldManager"] == "mgr"


async def test_error_status_becomes_api_error(server: Server) -> None:
    async with KubeClient(ClientConfig(host=server.url)) as c:
        with pytest.raises(ApiError) as err:
            await c.get(PERSISTENT_VOLUMES, "missing")
    assert err.value.not_found and err.value.reason == "NotFound"


async def test_delete_sends_preconditions(server: Server) -> None:
    async with KubeClient(ClientConfig(host=server.url)) as c:
        await c.delete(PERSISTENT_VOLUMES, "pv", uid="u", propagation_policy="Background")
    body = server.requests[0]["body"]
    assert body["preconditions"] == {"uid": "u"}
    assert body["propagationPolicy"] == "Background"


async def test_watch_stream_parsing_and_gone(server: Server) -> None:
    server.watch_lines = [
        b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}\n',
        b"\n",
        b'{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}\n',
    ]
    async with KubeClient(ClientConfig(host=server.url)) as c:
        events = [
            e async for e in c.watch(PERSISTENT_VOLUMES, resource_version="3", timeout_seconds=60)
        ]
        assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in events] == [
            ("ADDED", "5"),
            ("BOOKMARK", "9"),
        ]
        q = server.requests[0]["query"]
        assert q == {
            "watch": "1",
            "resourceVersion": "3",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        }
        server.watch_lines = [
            b'{"type":"ERROR","object":{"kind":"Status","code":410,'
            b'"reason":"Expired","message":"too old"}}\n'
        ]
        with pytest.raises(ApiError) as err:
            async for _ in c.watch(PERSISTENT_VOLUMES, resource_version="1"):
                pass
        assert err.value.gone


async def test_list_and_watch_decode_slim_with_a_decoder(server: Server) -> None:
    decoder = Projection(["spec.csi.driver"]).decoder
    server.watch_lines = [
        b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5","uid":"u"},'
        b'"spec":{"csi":{"driver":"d","volumeHandle":"h"}}}}\n',
        b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}\n',
    ]
    async with KubeClient(ClientConfig(host=server.url)) as c:
        page = await c.list(PERSISTENT_VOLUMES, decoder=decoder)
        assert page == {"items": [], "metadata": {"resourceVersion": "42"}}
        events = []
        with pytest.raises(ApiError) as err:
            async for e in c.watch(PERSISTENT_VOLUMES, resource_version="3", decoder=decoder):
                events.append(e)
        assert err.value.gone
        assert [(e.type, e.object) for e in events] == [
            (
                "ADDED",
                {
                    "metadata": {"name": "a", "resourceVersion": "5"},
                    "spec": {"csi": {"driver": "d"}},
                },
            )
        ]
        # Errors are decoded whole, whatever the decoder.
        with pytest.raises(ApiError) as err:
            await c.request("GET", "/api/v1/persistentvolumes/missing", decode=decoder.page)
        assert err.value.not_found and err.value.message == "nope"


async def test_list_hands_each_object_out_while_the_answer_arrives(server: Server) -> None:
    proj = Projection(["spec.csi.driver"])
    items = [
        {
            "metadata": {"name": f"pv{i}", "resourceVersion": str(i)},
            "spec": {"csi": {"driver": "d"}},
        }
        for i in range(200)
    ]
    body = json.dumps(
        {"kind": "PersistentVolumeList", "metadata": {"resourceVersion": "77"}, "items": items},
        separators=(",", ":"),
    ).encode()
    server.list_pieces = [body[at : at + 500] for at in range(0, len(body), 500)]
    async with KubeClient(ClientConfig(host=server.url)) as c:
        for decoder in (proj.decoder, None):
            got: list[Any] = []
            page = await c.list(PERSISTENT_VOLUMES, decoder=decoder, each=got.append)
            assert (page["metadata"], page["items"]) == ({"resourceVersion": "77"}, [])
            assert got == items
        server.list_pieces = []
        with pytest.raises(ApiError) as err:  # an error answer is an error, not objects
            await c.list(RESOURCE_MISSING, decoder=proj.decoder, each=got.append)
        assert err.value.not_found


async def test_every_request_is_throttled(server: Server) -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3, clock)
    async with KubeClient(ClientConfig(host=server.url), limiter=bucket) as c:
        tasks = [asyncio.create_task(c.get(PERSISTENT_VOLUMES, f"pv{i}")) for i in range(7)]
        await server.wait_requests(3)
        await asyncio.sleep(0.05)
        assert len(server.requests) == 3
        await clock.advance(1.0)
        await server.wait_requests(5)
        await asyncio.sleep(0.05)
        assert len(server.requests) == 5
        await clock.advance(1.0)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert len(server.requests) == 7


async def test_request_connections_are_pooled_and_watches_never_wait(server: Server) -> None:
    release = asyncio.Event()
    arrived = asyncio.Event()
    in_flight = 0
    most = 0
    original = server.handle

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, most
        if request.query.get("watch"):
            return await original(request)
        in_flight += 1
        most = max(most, in_flight)
        arrived.set()
        try:
            await release.wait()
            return await original(request)
        finally:
            in_flight -= 1

    server.handle = handle  # type: ignore[method-assign]
    server.watch_lines = [b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n']
    async with KubeClient(ClientConfig(host=server.url), qps=-1, max_connections=2) as c:
        tasks = [asyncio.create_task(c.get(PERSISTENT_VOLUMES, f"pv{i}")) for i in range(5)]
        async with asyncio.timeout(5):
            while in_flight < 2:
                arrived.clear()
                await arrived.wait()
        await asyncio.sleep(0.05)
        assert in_flight == 2  # the other three wait for a connection
        # A watch has a connection of its own even while the request pool is busy.
        events = await asyncio.wait_for(_collect(c.watch(PERSISTENT_VOLUMES)), 5)
        assert [e.object["metadata"]["name"] for e in events] == ["a"]
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert most == 2
    assert len(server.requests) == 6


async def _collect(stream: Any) -> list[Any]:
    return [event async for event in stream]


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{url}"}}
users:
- name: u
  user: {{token: "tok-from-file"}}
contexts:
- name: ctx
  context: {{cluster: c, user: u}}
current-context: ctx
"""


async def test_load_kubeconfig_flag_and_env(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(url=server.url))
    for cfg in (
        await load_client_config(str(path), environ={}),
        await load_client_config("", environ={"KUBECONFIG": str(path)}),
    ):
        assert cfg.host == server.url
        async with KubeClient(cfg) as c:
            await c.get(PERSISTENT_VOLUMES, "x")
    assert [r["headers"]["Authorization"] for r in server.requests] == ["Bearer tok-from-file"] * 2


async def test_no_config_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="in-cluster"):
        await load_client_config("", environ={})


async def test_in_cluster_token_is_reread_after_rotation(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("first")
    (tmp_path / "ca.crt").write_text("not used here")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    cfg = await load_client_config("", environ=env, sa_dir=str(tmp_path))
    assert cfg.host == "https://10.0.0.1:443"
    assert await cfg.authorization() == "Bearer first"
    new = tmp_path / "token.new"
    new.write_text("second\n")
    new.replace(tmp_path / "token")  # kubelet swaps the projected file
    assert await cfg.authorization() == "Bearer second"
