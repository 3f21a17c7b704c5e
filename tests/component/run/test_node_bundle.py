"""``csi-sidecars run --roles node-driver-registrar,livenessprobe`` as a container runs it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
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
ROLES = "--roles=node-driver-registrar,livenessprobe"


@pytest.fixture
def short() -> Iterator[Path]:
    # Short paths: a unix socket path must fit in 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="run-"))
    (path / "registry").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def driver(short: Path) -> AsyncIterator[FakeDriver]:
    fake = await FakeDriver(str(short / "csi.sock")).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def roles() -> AsyncIterator[list[Role]]:
    started: list[Role] = []
    yield started
    for role in started:
        await role.close()


def bundle_args(short: Path, *extra: str) -> list[str]:
    return [
        "run",
        ROLES,
        f"--csi-address={short / 'csi.sock'}",
        f"--node-driver-registrar.kubelet-registration-path={HOST_ENDPOINT}",
        f"--node-driver-registrar.plugin-registration-path={short / 'registry'}",
        *extra,
    ]


async def kubelet_get_info(sock: Path) -> pr.PluginInfo:
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        info: pr.PluginInfo = await pr_grpc.RegistrationStub(channel).GetInfo(
            pr.InfoRequest(), timeout=5
        )
        return info


async def kubelet_notify(sock: Path, registered: bool, error: str = "") -> None:
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        await pr_grpc.RegistrationStub(channel).NotifyRegistrationStatus(
            pr.RegistrationStatus(plugin_registered=registered, error=error), timeout=5
        )


async def started(role: Role, url: str) -> tuple[int, str]:
    """Poll ``url`` until it answers 200: on a shared endpoint a starting role answers 503."""

    async def up() -> tuple[int, str] | None:
        if role.proc is not None and role.proc.returncode is not None:
            raise AssertionError(f"bundle exited {role.proc.returncode}:\n{role.output}")
        result = await http_get(url)
        return result if result is not None and result[0] == 200 else None

    result: tuple[int, str] = await poll(up, 20, url)
    return result


async def test_both_roles_answer_on_their_own_endpoints(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    reg_port, probe_port = free_port(), free_port()
    role = await Role(
        bundle_args(
            short,
            f"--node-driver-registrar.http-endpoint=127.0.0.1:{reg_port}",
            f"--livenessprobe.http-endpoint=127.0.0.1:{probe_port}",
            "--livenessprobe.metrics-path=/probe-metrics",
        ),
        short / "run.log",
    ).start()
    roles.append(role)
    probe = f"http://127.0.0.1:{probe_port}"
    reg = f"http://127.0.0.1:{reg_port}"
    assert await started(role, probe + "/healthz") == (200, "ok")
    sock = short / "registry" / f"{DRIVER}-reg.sock"
    await poll(sock.exists, 20, "the registration socket")
    info = await kubelet_get_info(sock)
    assert (info.name, info.endpoint) == (DRIVER, HOST_ENDPOINT)
    assert await http_get(reg + "/healthz") == (200, "ok")
    assert await http_get(reg + "/healthz/registration") == (
        503,
        "kubelet has not confirmed the registration yet",
    )
    await kubelet_notify(sock, True)
    assert await http_get(reg + "/healthz/registration") == (200, "ok")
    # The flags went to the right role: metrics only on the livenessprobe's endpoint, at its path.
    status, metrics = await http_get(probe + "/probe-metrics") or (0, "")
    assert status == 200 and 'method_name="/csi.v1.Identity/Probe"' in metrics
    assert (await http_get(reg + "/probe-metrics") or (0, ""))[0] == 404
    # One start-up connection for both roles: they name the same driver socket.
    assert "driver_connections=1" in role.output
    assert driver.identity.calls.count("GetPluginInfo") == 2  # each role asks for itself

    role.signal(signal.SIGTERM)
    assert await role.wait() == 0
    assert not sock.exists()


async def test_per_role_flags_keep_their_own_meaning(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    shared, probe_port = free_port(), free_port()
    role = await Role(
        bundle_args(
            short,
            f"--http-endpoint=127.0.0.1:{shared}",  # unprefixed: both roles...
            f"--livenessprobe.http-endpoint=127.0.0.1:{probe_port}",  # ...but this one wins
            "--livenessprobe.probe-timeout=300ms",
            "--node-driver-registrar.timeout=5s",
        ),
        short / "run.log",
    ).start()
    roles.append(role)
    assert await started(role, f"http://127.0.0.1:{probe_port}/healthz") == (200, "ok")
    assert await started(role, f"http://127.0.0.1:{shared}/healthz") == (200, "ok")
    # Only the livenessprobe's probe times out after 300 ms; the registrar's check has 5 s.
    driver.identity.probe_delay = 1.0
    assert await http_get(f"http://127.0.0.1:{probe_port}/healthz") == (
        500,
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
    )
    assert await http_get(f"http://127.0.0.1:{shared}/healthz") == (200, "ok")


async def test_one_endpoint_for_both_roles_checks_both(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    port = free_port()
    driver.identity.probe_delay = 0.5  # the livenessprobe answers late: the server is up before
    role = await Role(
        bundle_args(short, f"--http-endpoint=127.0.0.1:{port}"), short / "run.log"
    ).start()
    roles.append(role)
    base = f"http://127.0.0.1:{port}"
    first = await poll(lambda: http_get(base + "/healthz"), 20, "the shared endpoint")
    assert first in (
        (503, "livenessprobe: not serving yet"),
        (503, "node-driver-registrar: not serving yet"),
        (200, "ok"),
    )
    assert await started(role, base + "/healthz") == (200, "ok")
    driver.identity.probe_delay = 0
    driver.identity.ready = False
    assert await http_get(base + "/healthz") == (
        500,
        "livenessprobe: driver responded but is not ready",
    )
    assert await http_get(base + "/healthz/node-driver-registrar") == (200, "ok")
    assert await http_get(base + "/healthz/livenessprobe") == (
        500,
        "driver responded but is not ready",
    )
    assert (await http_get(base + "/metrics") or (0, ""))[0] == 200
    (short / "registry" / f"{DRIVER}-reg.sock").unlink()
    driver.identity.ready = True
    assert await http_get(base + "/healthz") == (
        404,
        "node-driver-registrar: registration socket does not exist",
    )


async def test_a_refused_registration_takes_the_bundle_down_naming_the_registrar(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    port = free_port()
    role = await Role(
        bundle_args(short, f"--livenessprobe.http-endpoint=127.0.0.1:{port}"), short / "run.log"
    ).start()
    roles.append(role)
    assert await started(role, f"http://127.0.0.1:{port}/healthz") == (200, "ok")
    sock = short / "registry" / f"{DRIVER}-reg.sock"
    await poll(sock.exists, 20, "the registration socket")
    with pytest.raises(grpc.aio.AioRpcError):
        await kubelet_notify(sock, False, "RegisterPlugin error -- no handler")
    assert await role.wait() == 1
    assert "Role node-driver-registrar exited with code 1, stopping the other roles" in role.output
    assert not sock.exists()
    assert await http_get(f"http://127.0.0.1:{port}/healthz", timeout=1) is None


async def test_a_livenessprobe_that_cannot_bind_takes_the_bundle_down(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        role = await Role(
            bundle_args(short, f"--livenessprobe.http-endpoint=127.0.0.1:{busy.getsockname()[1]}"),
            short / "run.log",
        ).start()
        roles.append(role)
        assert await role.wait() == 1
    assert "Role livenessprobe exited with code 1, stopping the other roles" in role.output
    assert "Failed to start http server" in role.output
    assert os.listdir(short / "registry") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--livenessprobe.health-port=9999", "--livenessprobe.http-endpoint=127.0.0.1:1"],
            "livenessprobe: Only one of `--health-port` and `--http-endpoint` can be "
            "explicitly set",
        ),
        (
            ["--node-driver-registrar.kubelet-registration-path="],
            "Role node-driver-registrar cannot start",
        ),
        (["--livenessprobe.csi-address=tcp://x:1"], "livenessprobe: --csi-address"),
    ],
)
async def test_bad_role_flags_exit_1_naming_the_role(
    short: Path, extra: list[str], message: str
) -> None:
    role = await Role(bundle_args(short, *extra), short / "run.log").start()
    try:
        assert await role.wait() == 1
    finally:
        await role.close()
    assert message in role.output


async def test_a_node_bundle_maps_no_tls_and_no_grpcio(
    short: Path, driver: FakeDriver, roles: list[Role]
) -> None:
    port = free_port()
    role = await Role(
        bundle_args(short, f"--http-endpoint=127.0.0.1:{port}"), short / "run.log"
    ).start()
    roles.append(role)
    assert await started(role, f"http://127.0.0.1:{port}/healthz") == (200, "ok")
    assert role.proc is not None
    maps = Path(f"/proc/{role.proc.pid}/maps").read_text()
    for library in ("libssl", "libcrypto", "cygrpc", "_hashlib"):
        assert library not in maps, library
