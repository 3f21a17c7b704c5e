"""The partitioning TCP proxy: forwards, resets (drop), blackholes (stall) and heals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from csi_sidecars.playground.netproxy import TcpProxy, proxied_kubeconfig


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = TcpProxy(upstream_port=server.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
        server.close()


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, timeout: float = 2
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), timeout)


async def test_forwards_both_ways(proxy: TcpProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(reader, writer, b"hello") == b"hello"
    assert proxy.url == f"https://127.0.0.1:{proxy.port}"
    writer.close()


async def test_drop_resets_open_and_new_connections(proxy: TcpProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(reader, writer, b"a") == b"a"
    proxy.drop()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(reader, writer, b"b")
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", proxy.port)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await _roundtrip(reader2, writer2, b"c")
    proxy.heal()
    reader3, writer3 = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(reader3, writer3, b"d") == b"d"
    writer3.close()


async def test_stall_blackholes_then_heal_resumes(proxy: TcpProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _roundtrip(reader, writer, b"1") == b"1"
    proxy.stall()
    writer.write(b"2")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(1), 0.3)
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer2.write(b"x")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader2.readexactly(1), 0.3)
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"2"
    assert await asyncio.wait_for(reader2.readexactly(1), 2) == b"x"
    writer.close()
    writer2.close()


def test_proxied_kubeconfig_points_at_the_proxy(tmp_path: Path) -> None:
    source = tmp_path / "a.kubeconfig"
    doc = {
        "clusters": [{"name": "t", "cluster": {"server": "https://127.0.0.1:1", "x": "ca"}}],
        "users": [{"name": "u", "user": {"token": "tok"}}],
    }
    source.write_text(json.dumps(doc))
    target = proxied_kubeconfig(source, tmp_path / "sub" / "b.kubeconfig", "https://127.0.0.1:2")
    written = json.loads(target.read_text())
    assert written["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:2", "x": "ca"}
    assert written["users"] == doc["users"]
    assert target.stat().st_mode & 0o077 == 0
