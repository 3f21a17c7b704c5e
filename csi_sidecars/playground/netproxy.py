"""A TCP proxy on 127.0.0.1 that can partition its clients from the server it fronts.

A sidecar given a kubeconfig that points at a :class:`TcpProxy` (see :func:`proxied_kubeconfig`)
talks to the API server through it; TLS passes through untouched (the serving certificate names
127.0.0.1, whatever the port). The proxy then simulates a network partition of that one sidecar:

* :meth:`TcpProxy.drop`: every open connection is reset and new ones are reset as they arrive,
  as when a firewall rejects the traffic (the client sees errors at once);
* :meth:`TcpProxy.stall`: no byte moves in either direction and new connections hang unanswered,
  as when packets are silently lost (the client sees nothing until its own timeouts fire);
* :meth:`TcpProxy.heal`: traffic flows again; stalled connections resume where they stopped.

::

    proxy = TcpProxy(upstream_port=cp.api_port)
    await proxy.start()
    proxied_kubeconfig(cp.kubeconfig("csi-provisioner"), path, proxy.url)
    proxy.stall(); ...; proxy.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from csi_sidecars.runtime.logging import get_logger

log = get_logger("testbed")

PASS = "pass"
DROP = "drop"
STALL = "stall"
_CHUNK = 65536


class TcpProxy:
    """Forwards connections from ``127.0.0.1:port`` to ``upstream_host:upstream_port``.

    Args:
        upstream_port: the port of the server (e.g. the API server).
        upstream_host: its address (loopback by default).
        port: where to listen (0: a free port, read :attr:`port` after :meth:`start`).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0):
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = port
        self.mode = PASS
        self.connections = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: the server URL for a kubeconfig."""
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop(self) -> None:
        """Reset every connection now and every new one until :meth:`heal`."""
        self.mode = DROP
        self._open.set()
        self._reset_all()
        log.info("Proxy partition: drop", port=self.port)

    def stall(self) -> None:
        """Stop moving bytes (both ways, open and new connections) until :meth:`heal`."""
        self.mode = STALL
        self._open.clear()
        log.info("Proxy partition: stall", port=self.port)

    def heal(self) -> None:
        """Forward traffic again."""
        if self.mode != PASS:
            log.info("Proxy partition healed", port=self.port)
        self.mode = PASS
        self._open.set()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == DROP:
            _reset(writer)
            return
        self._writers.add(writer)
        try:
            await self._open.wait()
            if self.mode == DROP:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port
                )
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                _close(up_writer)
        finally:
            self._writers.discard(writer)
            _close(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                await self._open.wait()
                if not data or writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # Half-close: the peer sees EOF, the other direction may still be moving.
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a rejecting firewall does."""
    transport: Any = writer.transport
    with contextlib.suppress(OSError, RuntimeError):
        transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


def proxied_kubeconfig(source: Path, target: Path, server: str) -> Path:
    """Write a copy of kubeconfig ``source`` whose clusters point at ``server``; return it.

    The testbed writes kubeconfigs as JSON (a subset of YAML), so the copy is JSON too; it is
    readable by the owner only, like the original (it holds the identity's token).
    """
    doc = json.loads(source.read_text())
    for cluster in doc.get("clusters", []):
        cluster["cluster"]["server"] = server
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    return target
