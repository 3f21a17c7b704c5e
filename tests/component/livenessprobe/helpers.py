"""Helpers for the node-role component tests: a scriptable Identity server and a role subprocess.

:class:`FakeIdentity` is a minimal CSI Identity service on a unix socket in a temp dir, whose
``GetPluginInfo`` and ``Probe`` answers tests change on the fly. :class:`Role` runs
``python -m csi_sidecars <role> ...`` exactly as a container would, with its output in a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import grpc
from google.protobuf import wrappers_pb2

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]


@dataclass
class FakeIdentity(csi_pb2_grpc.IdentityServicer):
    """A scriptable CSI Identity service.

    Attributes:
        name: GetPluginInfo's name.
        ready: Probe's ``ready`` (None leaves the field unset).
        probe_error: (code, message) for Probe to fail with, or None.
        probe_delay: seconds Probe waits before answering.
    """

    name: str = "fake.csi.example.com"
    ready: bool | None = None
    probe_error: tuple[grpc.StatusCode, str] | None = None
    probe_delay: float = 0.0
    info_error: tuple[grpc.StatusCode, str] | None = None
    probes: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    calls: list[str] = field(default_factory=list)

    async def GetPluginInfo(self, request: Any, context: Any) -> csi_pb2.GetPluginInfoResponse:
        self.calls.append("GetPluginInfo")
        if self.info_error is not None:
            await context.abort(*self.info_error)
        return csi_pb2.GetPluginInfoResponse(name=self.name, vendor_version="1.0.0")

    async def GetPluginCapabilities(
        self, request: Any, context: Any
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        self.calls.append("GetPluginCapabilities")
        return csi_pb2.GetPluginCapabilitiesResponse()

    async def Probe(self, request: Any, context: Any) -> csi_pb2.ProbeResponse:
        self.calls.append("Probe")
        self.probes += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.probe_delay:
                await asyncio.sleep(self.probe_delay)
            if self.probe_error is not None:
                await context.abort(*self.probe_error)
            if self.ready is None:
                return csi_pb2.ProbeResponse()
            return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=self.ready))
        finally:
            self.in_flight -= 1


class FakeDriver:
    """A grpc.aio server with a :class:`FakeIdentity`, on ``socket_path``."""

    def __init__(self, socket_path: str, identity: FakeIdentity | None = None) -> None:
        self.socket_path = socket_path
        self.identity = identity or FakeIdentity()
        self.server: grpc.aio.Server | None = None

    async def start(self) -> FakeDriver:
        self.server = grpc.aio.server()
        csi_pb2_grpc.add_IdentityServicer_to_server(self.identity, self.server)
        self.server.add_insecure_port("unix://" + self.socket_path)
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.socket_path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def poll(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Call ``check`` until it returns something not None, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class Role:
    """``python -m csi_sidecars <args>`` as a subprocess, output captured in a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Role:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "csi_sidecars",
                *self.args,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
            )
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit and return its exit code."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"process did not exit in {timeout}s:\n{self.output}") from None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def close(self) -> None:
        """Kill the process if it still runs."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


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
