"""node-driver-registrar run through the CLI as a container would; the test acts as kubelet."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.csi.messages import pluginregistration_pb2_grpc as pr_grpc
from tests.support.fake_driver import FakeDriver
from tests.support.net import free_port, http_get
from tests.support.poll import poll
from tests.support.role import Role

DRIVER = "fake.csi.example.com"
HOST_ENDPOINT = "/var/lib/kubelet/plugins/fake/csi.sock"


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[FakeDriver]:
    fake = await FakeDriver(str(tmp_path / "csi.sock")).start()
    yield fake
    await fake.stop()


@pytest.fixture
def registry() -> Iterator[Path]:
    # pytest's tmp_path is too long for a unix socket path (107 bytes) with this driver name.
    path = Path(tempfile.mkdtemp(prefix="reg-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Registrar:
    def __init__(self, role: Role, reg_socket: Path, port: int | None) -> None:
        self.role = role
        self.reg_socket = reg_socket
        self.base = f"http://127.0.0.1:{port}" if port else ""

    async def kubelet_get_info(self) -> pr.PluginInfo:
        async with grpc.aio.insecure_channel(f"unix://{self.reg_socket}") as channel:
            info: pr.PluginInfo = await pr_grpc.RegistrationStub(channel).GetInfo(
                pr.InfoRequest(), timeout=5
            )
            return info

    async def kubelet_notify(self, registered: bool, error: str = "") -> None:
        async with grpc.aio.insecure_channel(f"unix://{self.reg_socket}") as channel:
            await pr_grpc.RegistrationStub(channel).NotifyRegistrationStatus(
                pr.RegistrationStatus(plugin_registered=registered, error=error), timeout=5
            )

    async def get(self, path: str) -> tuple[int, str]:
        result = await http_get(self.base + path)
        assert result is not None, self.role.output
        return result


def args_for(tmp_path: Path, registry: Path, *extra: str) -> list[str]:
    return [
        "node-driver-registrar",
        "--v=5",
        f"--csi-address={tmp_path / 'csi.sock'}",
        f"--kubelet-registration-path={HOST_ENDPOINT}",
        f"--plugin-registration-path={registry}",
        *extra,
    ]


async def start(
    tmp_path: Path, registry: Path, *extra: str, http: bool = True, log: str = "reg.log"
) -> Registrar:
    port = free_port() if http else None
    more = [f"--http-endpoint=127.0.0.1:{port}"] if port else []
    role = await Role(args_for(tmp_path, registry, *more, *extra), tmp_path / log).start()
    reg = Registrar(role, registry / f"{DRIVER}-reg.sock", port)

    async def published() -> bool | None:
        if role.proc is not None and role.proc.returncode is not None:
            raise AssertionError(f"registrar exited {role.proc.returncode}:\n{role.output}")
        return True if reg.reg_socket.exists() else None

    await poll(published, 20, "the registration socket")
    return reg


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Role]]:
    roles: list[Role] = []
    yield roles
    for role in roles:
        await role.close()


async def test_registration_flow_and_sigterm(
    tmp_path: Path, driver: FakeDriver, registry: Path, cleanup: list[Role]
) -> None:
    reg = await start(tmp_path, registry)
    cleanup.append(reg.role)
    st = os.stat(reg.reg_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    # Only the final name is in kubelet's directory: no dot-file left over.
    assert sorted(os.listdir(registry)) == [f"{DRIVER}-reg.sock"]

    info = await reg.kubelet_get_info()
    assert info.type == "CSIPlugin"
    assert info.name == DRIVER
    assert info.endpoint == HOST_ENDPOINT
    assert list(info.supported_versions) == ["1.0.0"]

    assert await reg.get("/healthz") == (200, "ok")
    assert await reg.get("/healthz/registration") == (
        503,
        "kubelet has not confirmed the registration yet",
    )
    await reg.kubelet_notify(True)
    assert await reg.get("/healthz/registration") == (200, "ok")
    assert (await reg.get("/other"))[0] == 404

    reg.role.signal(signal.SIGTERM)
    assert await reg.role.wait() == 0
    assert not reg.reg_socket.exists()


async def test_sigint_also_removes_the_socket(
    tmp_path: Path, driver: FakeDriver, registry: Path, cleanup: list[Role]
) -> None:
    reg = await start(tmp_path, registry, http=False)
    cleanup.append(reg.role)
    reg.role.signal(signal.SIGINT)
    assert await reg.role.wait() == 0
    assert not reg.reg_socket.exists()


async def test_failed_registration_exits_1(
    tmp_path: Path, driver: FakeDriver, registry: Path, cleanup: list[Role]
) -> None:
    reg = await start(tmp_path, registry, http=False)
    cleanup.append(reg.role)
    with pytest.raises(grpc.aio.AioRpcError):
        await reg.kubelet_notify(False, "RegisterPlugin error -- no handler")
    assert await reg.role.wait() == 1
    assert "Registration process failed with error, restarting registration container" in (
        reg.role.output
    )
    assert "RegisterPlugin error -- no handler" in reg.role.output


async def test_stale_socket_of_a_killed_run_is_replaced(
    tmp_path: Path, driver: FakeDriver, registry: Path, cleanup: list[Role]
) -> None:
    first = await start(tmp_path, registry, http=False, log="first.log")
    cleanup.append(first.role)
    first.role.signal(signal.SIGKILL)
    await first.role.wait()
    assert first.reg_socket.exists()
    # Nobody listens on the left-over socket.
    with pytest.raises(grpc.aio.AioRpcError):
        await first.kubelet_get_info()

    # The old file is still there, so wait for the new server rather than for the path.
    port = free_port()
    role = await Role(
        args_for(tmp_path, registry, f"--http-endpoint=127.0.0.1:{port}"),
        tmp_path / "second.log",
    ).start()
    cleanup.append(role)
    second = Registrar(role, first.reg_socket, port)

    async def replaced() -> bool | None:
        if role.proc is not None and role.proc.returncode is not None:
            raise AssertionError(f"registrar exited {role.proc.returncode}:\n{role.output}")
        return True if "Registration Server started" in role.output else None

    await poll(replaced, 20, "a fresh registration socket")
    assert "Removed stale registration socket" in role.output
    assert (await second.kubelet_get_info()).name == DRIVER
    assert await second.get("/healthz") == (200, "ok")


async def test_regular_file_at_socket_path_exits_1(
    tmp_path: Path, driver: FakeDriver, registry: Path
) -> None:
    blocker = registry / f"{DRIVER}-reg.sock"
    blocker.write_text("I am not a socket")
    role = await Role(args_for(tmp_path, registry), tmp_path / "reg.log").start()
    try:
        assert await role.wait() == 1
    finally:
        await role.close()
    assert f"file exists in socketPath {blocker} but it's not a socket" in role.output
    assert blocker.read_text() == "I am not a socket"


async def test_healthz_reports_a_vanished_socket(
    tmp_path: Path, driver: FakeDriver, registry: Path, cleanup: list[Role]
) -> None:
    reg = await start(tmp_path, registry)
    cleanup.append(reg.role)
    reg.reg_socket.unlink()
    assert await reg.get("/healthz") == (404, "registration socket does not exist")


async def test_driver_name_failure_exits_1(
    tmp_path: Path, driver: FakeDriver, registry: Path
) -> None:
    driver.identity.info_error = (grpc.StatusCode.UNAVAILABLE, "Driver is missing version")
    role = await Role(args_for(tmp_path, registry), tmp_path / "reg.log").start()
    try:
        assert await role.wait() == 1
    finally:
        await role.close()
    assert "rpc error: code = Unavailable desc = Driver is missing version" in role.output
    assert os.listdir(registry) == []


async def test_http_bind_failure_exits_1_without_publishing(
    tmp_path: Path, driver: FakeDriver, registry: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        role = await Role(
            args_for(tmp_path, registry, f"--http-endpoint=127.0.0.1:{port}"),
            tmp_path / "reg.log",
        ).start()
        try:
            assert await role.wait() == 1
        finally:
            await role.close()
    assert "cannot listen on" in role.output
    assert os.listdir(registry) == []


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--csi-address=/csi/csi.sock"], 1),
        (["--mode=kubelet-registration-probe"], 1),
        (
            [
                "--csi-address=/csi/csi.sock",
                "--kubelet-registration-path=/var/lib/kubelet/plugins/x/csi.sock",
                "--mode=kubelet-registration-probe",
            ],
            0,
        ),
    ],
)
async def test_early_exits(tmp_path: Path, argv: list[str], code: int) -> None:
    role = await Role(["node-driver-registrar", *argv], tmp_path / "reg.log").start()
    try:
        assert await role.wait() == code
    finally:
        await role.close()
    if code == 1:
        assert "kubelet-registration-path is a required parameter" in role.output


async def test_against_the_playground_driver(
    tmp_path: Path, registry: Path, cleanup: list[Role]
) -> None:
    from csi_sidecars.playground.driver import run_driver

    async with run_driver(tmp_path) as drv:
        name = drv.options.driver_name
        args = args_for(tmp_path, registry)
        args[2] = f"--csi-address={drv.socket_path}"
        role = await Role(args, tmp_path / "reg.log").start()
        cleanup.append(role)
        reg = Registrar(role, registry / f"{name}-reg.sock", None)

        async def published() -> bool | None:
            if role.proc is not None and role.proc.returncode is not None:
                raise AssertionError(f"registrar exited {role.proc.returncode}:\n{role.output}")
            return True if reg.reg_socket.exists() else None

        await poll(published, 20, "the registration socket")
        info = await reg.kubelet_get_info()
        assert (info.name, info.endpoint) == (name, HOST_ENDPOINT)
        await reg.kubelet_notify(True)
        role.signal(signal.SIGTERM)
        assert await role.wait() == 0
        assert os.listdir(registry) == []


async def test_sigterm_while_waiting_for_the_driver_exits_0(
    tmp_path: Path, registry: Path, cleanup: list[Role]
) -> None:
    role = await Role(args_for(tmp_path, registry), tmp_path / "reg.log").start()
    cleanup.append(role)

    async def connecting() -> bool | None:
        return True if "Attempting to open a gRPC connection" in role.output else None

    await poll(connecting, 20, "the registrar to start connecting")
    role.signal(signal.SIGTERM)
    # Well before the 30 s connect timeout.
    assert await role.wait(timeout=10) == 0
    assert os.listdir(registry) == []
