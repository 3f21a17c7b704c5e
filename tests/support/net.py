"""Loopback helpers: a free TCP port and a GET that tells "nothing listens yet" apart."""

from __future__ import annotations

import socket

import aiohttp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def http_get(url: str, timeout: float = 10.0) -> tuple[int, str] | None:
    """GET ``url``: (status, body), or None when nothing listens yet."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as resp,
        ):
            return resp.status, await resp.text()
    except aiohttp.ClientConnectionError:
        return None
