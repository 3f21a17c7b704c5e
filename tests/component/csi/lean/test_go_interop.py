"""The lean stack against grpc-go: our client on the Go registrar's socket, the Go livenessprobe on
our server.

The Go sidecars are not served by the module proxy the testbed builds from, so these tests run
when ``GO_NODE_DRIVER_REGISTRAR`` / ``GO_LIVENESSPROBE`` (or ``$CSI_SIDECARS_BIN_DIR``) point at
binaries, as for the benchmarks, and skip otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from csi_sidecars.csi.lean import status
from csi_sidecars.csi.lean.client import dial
from csi_sidecars.csi.lean.server import Service, UnaryServer
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from tests.support.fake_driver import FakeDriver
from tests.support.net import free_port, http_get
from tests.support.poll import poll

REGISTRATION = "/pluginregistration.Registration"


def go_binary(env_var: str, name: str) -> str:
    path = os.environ.get(env_var)
    if not path:
        bin_dir = os.environ.get("CSI_SIDECARS_BIN_DIR")
        path = str(Path(bin_dir) / name) if bin_dir else ""
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"no Go {name}: set {env_var} to run the grpc-go interop tests")
    return path


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="go-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _start(argv: list[str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )


@pytest.fixture
async def go_registrar(short_dir: Path) -> AsyncIterator[Path]:
    binary = go_binary("GO_NODE_DRIVER_REGISTRAR", "csi-node-driver-registrar")
    driver = await FakeDriver(str(short_dir / "csi.sock")).start()
    registry = short_dir / "registry"
    registry.mkdir()
    proc = await _start(
        [
            binary,
            f"--csi-address={short_dir / 'csi.sock'}",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/fake/csi.sock",
            f"--plugin-registration-path={registry}",
        ],
        short_dir / "go.log",
    )
    sock = registry / f"{driver.identity.name}-reg.sock"
    try:
        await poll(sock.exists, 20, "the Go registrar's socket")
        yield sock
    finally:
        proc.kill()
        await proc.wait()
        await driver.stop()


async def test_lean_client_on_a_grpc_go_server(go_registrar: Path, short_dir: Path) -> None:
    async def get_info() -> pr.PluginInfo | None:
        try:
            async with await dial(str(go_registrar), timeout=1) as conn:
                return await conn.call(
                    f"{REGISTRATION}/GetInfo", pr.InfoRequest(), pr.PluginInfo, timeout=1
                )
        except (status.RpcError, TimeoutError):
            return None  # published a moment before it listens (the race node_socket avoids)

    info = await poll(get_info, 20, "GetInfo from the Go registrar")
    assert (info.type, info.name) == ("CSIPlugin", "fake.csi.example.com")
    assert list(info.supported_versions) == ["1.0.0"]

    async with await dial(str(go_registrar), timeout=5) as conn:
        await conn.call(
            f"{REGISTRATION}/NotifyRegistrationStatus",
            pr.RegistrationStatus(plugin_registered=True),
            pr.RegistrationStatusResponse,
            timeout=2,
        )
        with pytest.raises(status.RpcError) as go_error:
            await conn.call(f"{REGISTRATION}/Nope", pr.InfoRequest(), pr.PluginInfo, timeout=2)

    # Our server answers an unknown method with grpc-go's very words.
    ours = Service("pluginregistration.Registration")
    ours.unary("GetInfo", _plugin_info, pr.InfoRequest, pr.PluginInfo)
    server = UnaryServer(ours)
    await server.start_unix(str(short_dir / "ours.sock"))
    try:
        async with await dial(str(short_dir / "ours.sock"), timeout=5) as conn:
            with pytest.raises(status.RpcError) as our_error:
                await conn.call(f"{REGISTRATION}/Nope", pr.InfoRequest(), pr.PluginInfo, timeout=2)
    finally:
        await server.stop()
    assert str(our_error.value) == str(go_error.value)


async def _plugin_info(request: pr.InfoRequest) -> pr.PluginInfo:
    return pr.PluginInfo(type="CSIPlugin", name="ours")


class Identity:
    def __init__(self) -> None:
        self.ready: bool | None = True
        self.error: status.RpcError | None = None

    async def info(self, request: csi_pb2.GetPluginInfoRequest) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name="lean.example.com", vendor_version="1")

    async def probe(self, request: csi_pb2.ProbeRequest) -> csi_pb2.ProbeResponse:
        if self.error is not None:
            raise self.error
        reply = csi_pb2.ProbeResponse()
        if self.ready is not None:
            reply.ready.value = self.ready
        return reply


async def test_grpc_go_client_on_the_lean_server(short_dir: Path) -> None:
    binary = go_binary("GO_LIVENESSPROBE", "livenessprobe")
    identity = Identity()
    service = Service("csi.v1.Identity")
    service.unary(
        "GetPluginInfo", identity.info, csi_pb2.GetPluginInfoRequest, csi_pb2.GetPluginInfoResponse
    )
    service.unary("Probe", identity.probe, csi_pb2.ProbeRequest, csi_pb2.ProbeResponse)
    server = UnaryServer(service)
    await server.start_unix(str(short_dir / "csi.sock"))
    port = free_port()
    proc = await _start(
        [binary, f"--csi-address={short_dir / 'csi.sock'}", f"--http-endpoint=127.0.0.1:{port}"],
        short_dir / "go.log",
    )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        assert await poll(lambda: http_get(url), 20, "the Go livenessprobe") == (200, "ok")
        identity.ready = False
        assert await http_get(url) == (500, "driver responded but is not ready")
        identity.error = status.RpcError(9, "disk gone: 100% ü")
        assert await http_get(url) == (
            500,
            "rpc error: code = FailedPrecondition desc = disk gone: 100% ü",
        )
    finally:
        proc.kill()
        await proc.wait()
        await server.stop()
