"""livenessprobe run as ``python -m csi_sidecars livenessprobe`` against a fake driver."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.support.fake_driver import FakeDriver
from tests.support.net import free_port, http_get
from tests.support.poll import poll
from tests.support.role import Role


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[FakeDriver]:
    fake = await FakeDriver(str(tmp_path / "csi.sock")).start()
    yield fake
    await fake.stop()


class Probe:
    def __init__(self, role: Role, port: int) -> None:
        self.role = role
        self.base = f"http://127.0.0.1:{port}"

    async def get(self, path: str = "/healthz") -> tuple[int, str]:
        result = await http_get(self.base + path)
        assert result is not None, self.role.output
        return result


async def start_probe(tmp_path: Path, *extra: str, socket_path: str | None = None) -> Probe:
    port = free_port()
    args = [
        "livenessprobe",
        f"--csi-address={socket_path or tmp_path / 'csi.sock'}",
        f"--http-endpoint=127.0.0.1:{port}",
        *extra,
    ]
    role = await Role(args, tmp_path / "probe.log").start()
    probe = Probe(role, port)

    async def up() -> tuple[int, str] | None:
        if role.proc is not None and role.proc.returncode is not None:
            raise AssertionError(f"livenessprobe exited {role.proc.returncode}:\n{role.output}")
        return await http_get(probe.base + "/metrics")

    await poll(up, 20, "the livenessprobe HTTP server")
    return probe


@pytest.fixture
async def probe_factory(tmp_path: Path) -> AsyncIterator[list[Probe]]:
    started: list[Probe] = []
    yield started
    for p in started:
        await p.role.close()


async def test_ready_driver_gives_ok_and_not_ready_gives_500(
    tmp_path: Path, driver: FakeDriver, probe_factory: list[Probe]
) -> None:
    probe = await start_probe(tmp_path, "--probe-timeout=2s", "-v=5")
    probe_factory.append(probe)
    assert await probe.get() == (200, "ok")

    driver.identity.ready = True
    assert await probe.get() == (200, "ok")

    driver.identity.ready = False
    assert await probe.get() == (500, "driver responded but is not ready")

    driver.identity.ready = None
    driver.identity.probe_error = (grpc.StatusCode.FAILED_PRECONDITION, "disk gone")
    assert await probe.get() == (
        500,
        "rpc error: code = FailedPrecondition desc = disk gone",
    )

    driver.identity.probe_error = None
    driver.identity.probe_delay = 3.0
    assert await probe.get() == (
        500,
        "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
    )


async def test_metrics_record_probes_with_go_code_names(
    tmp_path: Path, driver: FakeDriver, probe_factory: list[Probe]
) -> None:
    probe = await start_probe(tmp_path)
    probe_factory.append(probe)
    await probe.get()
    driver.identity.probe_error = (grpc.StatusCode.FAILED_PRECONDITION, "nope")
    await probe.get()
    await probe.get()
    status, text = await probe.get("/metrics")
    assert status == 200
    name = driver.identity.name

    def count(driver_name: str, method: str, code: str) -> float:
        pattern = (
            r"^csi_sidecar_operations_seconds_count\{"
            rf'driver_name="{re.escape(driver_name)}",'
            rf'grpc_status_code="{code}",'
            rf'method_name="{re.escape(method)}"\}} (\S+)$'
        )
        match = re.search(pattern, text, re.MULTILINE)
        assert match, f"no {method} {code} sample in:\n{text}"
        return float(match.group(1))

    assert count(name, "/csi.v1.Identity/Probe", "OK") == 1
    assert count(name, "/csi.v1.Identity/Probe", "FailedPrecondition") == 2
    # The start-up GetPluginInfo happens before the name is known, as in Go.
    assert count("unknown-driver", "/csi.v1.Identity/GetPluginInfo", "OK") == 1
    assert "process_start_time_seconds" in text


async def test_missing_socket_gives_deadline_exceeded(
    tmp_path: Path, driver: FakeDriver, probe_factory: list[Probe]
) -> None:
    probe = await start_probe(tmp_path, "--probe-timeout=500ms")
    probe_factory.append(probe)
    assert await probe.get() == (200, "ok")
    await driver.stop()
    assert not (tmp_path / "csi.sock").exists()
    assert await probe.get() == (500, "context deadline exceeded")
    # The driver comes back: a new connection per request notices at once.
    await driver.start()
    assert await probe.get() == (200, "ok")


async def test_concurrent_probes_are_capped(
    tmp_path: Path, driver: FakeDriver, probe_factory: list[Probe]
) -> None:
    probe = await start_probe(tmp_path, "--probe-timeout=5s", "--max-concurrent-probes=1")
    probe_factory.append(probe)
    driver.identity.probe_delay = 1.0
    first = asyncio.ensure_future(probe.get())

    async def in_flight() -> bool | None:
        return True if driver.identity.in_flight == 1 else None

    await poll(in_flight, 10, "the first probe to reach the driver")
    assert await probe.get() == (503, "too many concurrent probes")
    assert await first == (200, "ok")
    assert driver.identity.max_in_flight == 1
    driver.identity.probe_delay = 0
    assert await probe.get() == (200, "ok")


async def test_waits_for_driver_before_serving(tmp_path: Path) -> None:
    port = free_port()
    sock = tmp_path / "csi.sock"
    role = await Role(
        ["livenessprobe", f"--csi-address={sock}", f"--http-endpoint=127.0.0.1:{port}"],
        tmp_path / "probe.log",
    ).start()
    try:
        # No driver yet: Go keeps the port closed until it has the driver name.
        assert await http_get(f"http://127.0.0.1:{port}/healthz", timeout=1) is None
        fake = await FakeDriver(str(sock)).start()
        try:

            async def ok() -> tuple[int, str] | None:
                return await http_get(f"http://127.0.0.1:{port}/healthz")

            assert await poll(ok, 20, "healthz") == (200, "ok")
            role.signal(15)
            assert await role.wait() == 0
        finally:
            await fake.stop()
    finally:
        await role.close()


async def test_bind_failure_exits_non_zero(tmp_path: Path, driver: FakeDriver) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        role = await Role(
            [
                "livenessprobe",
                f"--csi-address={tmp_path / 'csi.sock'}",
                f"--http-endpoint=127.0.0.1:{port}",
            ],
            tmp_path / "probe.log",
        ).start()
        try:
            assert await role.wait() == 1
        finally:
            await role.close()
    assert "Failed to start http server" in role.output


async def test_empty_driver_name_exits_1(tmp_path: Path, driver: FakeDriver) -> None:
    driver.identity.name = ""
    role = await Role(
        [
            "livenessprobe",
            f"--csi-address={tmp_path / 'csi.sock'}",
            f"--http-endpoint=127.0.0.1:{free_port()}",
        ],
        tmp_path / "probe.log",
    ).start()
    try:
        assert await role.wait() == 1
    finally:
        await role.close()
    assert "driver name is empty" in role.output


@pytest.mark.parametrize(
    "args",
    [
        ["--health-port=9999", "--http-endpoint=127.0.0.1:1"],
        ["--metrics-address=127.0.0.1:2", "--http-endpoint=127.0.0.1:1"],
    ],
)
async def test_conflicting_flags_exit_1(tmp_path: Path, args: list[str]) -> None:
    role = await Role(["livenessprobe", *args], tmp_path / "probe.log").start()
    try:
        assert await role.wait() == 1
    finally:
        await role.close()
    assert "can be explicitly set" in role.output


async def test_against_the_playground_driver(tmp_path: Path, probe_factory: list[Probe]) -> None:
    from csi_sidecars.playground.driver import run_driver

    async with run_driver(tmp_path) as drv:
        probe = await start_probe(tmp_path, "--probe-timeout=2s", socket_path=drv.socket_path)
        probe_factory.append(probe)
        assert await probe.get() == (200, "ok")
        drv.faults.probe_not_ready(times=1)
        assert await probe.get() == (500, "driver responded but is not ready")
        drv.faults.probe_error(grpc.StatusCode.FAILED_PRECONDITION, times=1)
        assert await probe.get() == (
            500,
            "rpc error: code = FailedPrecondition desc = driver is not healthy",
        )
        assert await probe.get() == (200, "ok")
        status, text = await probe.get("/metrics")
        assert status == 200
        sample = (
            "csi_sidecar_operations_seconds_count{"
            f'driver_name="{drv.options.driver_name}",grpc_status_code="FailedPrecondition",'
            'method_name="/csi.v1.Identity/Probe"} 1.0'
        )
        assert sample in text


async def test_sigterm_while_waiting_for_the_driver_exits_0(tmp_path: Path) -> None:
    role = await Role(
        [
            "livenessprobe",
            f"--csi-address={tmp_path / 'csi.sock'}",
            f"--http-endpoint=127.0.0.1:{free_port()}",
            "-v=5",
        ],
        tmp_path / "probe.log",
    ).start()
    try:

        async def started() -> bool | None:
            # Logged inside the event loop, after the signal handlers are installed.
            return True if '"Connecting"' in role.output else None

        await poll(started, 20, "the livenessprobe to start")
        role.signal(15)
        assert await role.wait(timeout=10) == 0
    finally:
        await role.close()


async def test_startup_get_plugin_info_is_retried_while_unavailable(
    tmp_path: Path, driver: FakeDriver
) -> None:
    driver.identity.info_error = (grpc.StatusCode.UNAVAILABLE, "Driver is missing version")
    port = free_port()
    role = await Role(
        [
            "livenessprobe",
            f"--csi-address={tmp_path / 'csi.sock'}",
            f"--http-endpoint=127.0.0.1:{port}",
            "--probe-timeout=1s",
        ],
        tmp_path / "probe.log",
    ).start()
    try:

        async def retried() -> bool | None:
            if role.proc is not None and role.proc.returncode is not None:
                raise AssertionError(f"exited {role.proc.returncode}:\n{role.output}")
            return True if driver.identity.calls.count("GetPluginInfo") >= 2 else None

        await poll(retried, 20, "GetPluginInfo to be retried")
        assert "GetPluginInfo failed, retrying" in role.output
        assert await http_get(f"http://127.0.0.1:{port}/healthz", timeout=1) is None
        driver.identity.info_error = None

        async def healthy() -> tuple[int, str] | None:
            return await http_get(f"http://127.0.0.1:{port}/healthz")

        assert await poll(healthy, 20, "healthz") == (200, "ok")
    finally:
        await role.close()
