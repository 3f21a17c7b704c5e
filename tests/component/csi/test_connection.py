"""connect(): waiting for the socket, timeouts, lost-connection policies, interceptors."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import grpc
import pytest

from csi_sidecars.csi import connection as connmod
from csi_sidecars.csi.connection import ConnectTimeoutError, LossPolicy, connect, normalize_address
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from tests.support.fake_driver import FakeDriver
from tests.support.poll import poll


def test_normalize_address() -> None:
    assert normalize_address("/run/csi/socket") == "unix:///run/csi/socket"
    assert normalize_address("unix:///run/csi/socket") == "unix:///run/csi/socket"
    assert normalize_address("dns:///127.0.0.1:10000") == "dns:///127.0.0.1:10000"


async def test_connect_waits_for_the_socket_then_succeeds(socket_path: str) -> None:
    task = asyncio.create_task(connect(socket_path, timeout=20))
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert not done, "connect returned before the driver existed"
    assert not os.path.exists(socket_path)
    drv = FakeDriver(socket_path)
    await drv.start()
    try:
        conn = await asyncio.wait_for(task, 10)
        try:
            assert conn.ready
            resp = await conn.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=5)
            assert resp.name == "fake.csi.example.com"
        finally:
            await conn.close()
    finally:
        await drv.stop()


async def test_connect_times_out(socket_path: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectTimeoutError, match=r"timed out after 0\.5s"):
        await connect("unix://" + socket_path, timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 5


async def test_still_connecting_is_logged(
    socket_path: str, logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connmod, "STILL_CONNECTING_INTERVAL", 0.2)
    with pytest.raises(ConnectTimeoutError):
        await connect(socket_path, timeout=0.9)
    lines = [line for line in logs.getvalue().splitlines() if '"Still connecting"' in line]
    assert len(lines) >= 2
    assert f'address="unix://{socket_path}"' in lines[0]


async def test_zero_timeout_waits_until_the_driver_appears(socket_path: str) -> None:
    task = asyncio.create_task(connect(socket_path, timeout=0))
    done, _ = await asyncio.wait({task}, timeout=1.2)  # longer than a 1 s back-off step
    assert not done
    drv = FakeDriver(socket_path)
    await drv.start()
    try:
        conn = await asyncio.wait_for(task, 10)
        await conn.close()
    finally:
        await drv.stop()


async def test_lost_connection_exits_for_controller_roles(
    driver: FakeDriver, tmp_path: Path
) -> None:
    exits: list[int] = []
    term = tmp_path / "termination-log"
    conn = await connect(
        driver.socket_path,
        on_lost=LossPolicy.EXIT,
        exit_action=exits.append,
        termination_log=str(term),
    )
    try:
        await driver.stop()
        await poll(lambda: bool(exits), what="exit on connection loss")
        assert exits == [1]
        assert term.read_text() == "Lost connection to CSI driver, exiting"
        assert conn.lost.is_set()
    finally:
        await conn.close()


async def test_exit_policy_tolerates_unwritable_termination_log(
    driver: FakeDriver, tmp_path: Path
) -> None:
    exits: list[int] = []
    conn = await connect(
        driver.socket_path,
        on_lost=LossPolicy.EXIT,
        exit_action=exits.append,
        termination_log=str(tmp_path / "missing-dir" / "termination-log"),
    )
    try:
        await driver.stop()
        await poll(lambda: bool(exits), what="exit on connection loss")
        assert exits == [1]
    finally:
        await conn.close()


async def test_lost_connection_reconnects_for_node_roles(
    driver: FakeDriver, logs: io.StringIO
) -> None:
    exits: list[int] = []
    conn = await connect(driver.socket_path, on_lost=LossPolicy.RECONNECT, exit_action=exits.append)
    try:
        await driver.stop()
        await poll(conn.lost.is_set, what="loss detected")
        assert not conn.ready
        await driver.start()
        # No RPC is made: the watcher itself must redial.
        await poll(lambda: conn.ready, what="reconnected")
        resp = await conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
        assert resp.ready.value
        assert exits == []
        out = logs.getvalue()
        assert "Lost connection to CSI driver, reconnecting" in out
        assert "Reconnected to CSI driver" in out
    finally:
        await conn.close()


async def test_no_loss_reported_while_connected(driver: FakeDriver) -> None:
    exits: list[int] = []
    conn = await connect(driver.socket_path, on_lost=LossPolicy.EXIT, exit_action=exits.append)
    for _ in range(5):
        await conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
    await conn.close()
    assert exits == []
    assert not conn.lost.is_set()


async def test_close_does_not_trigger_exit(driver: FakeDriver) -> None:
    exits: list[int] = []
    conn = await connect(driver.socket_path, on_lost=LossPolicy.EXIT, exit_action=exits.append)
    await conn.close()
    await conn.close()
    await driver.stop()
    assert exits == []


async def test_metrics_recorded_for_every_call(driver: FakeDriver) -> None:
    metrics = CSIMetrics()
    driver.state.create_error = grpc.StatusCode.RESOURCE_EXHAUSTED
    async with await connect(driver.socket_path, metrics=metrics) as conn:
        await conn.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=5)
        metrics.set_driver_name("fake.csi.example.com")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await conn.controller.CreateVolume(csi_pb2.CreateVolumeRequest(name="a"), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    reg = metrics.registry
    name = "csi_sidecar_operations_seconds_count"
    assert (
        reg.get_sample_value(
            name,
            {
                "driver_name": "unknown-driver",
                "method_name": "/csi.v1.Identity/GetPluginInfo",
                "grpc_status_code": "OK",
            },
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            name,
            {
                "driver_name": "fake.csi.example.com",
                "method_name": "/csi.v1.Controller/CreateVolume",
                "grpc_status_code": "ResourceExhausted",
            },
        )
        == 1
    )


async def test_metrics_record_deadline_exceeded_duration(driver: FakeDriver) -> None:
    metrics = CSIMetrics()
    driver.state.probe_script = [1.0]
    async with await connect(driver.socket_path, metrics=metrics) as conn:
        with pytest.raises(grpc.aio.AioRpcError):
            await conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=0.3)
    labels = {
        "driver_name": "unknown-driver",
        "method_name": "/csi.v1.Identity/Probe",
        "grpc_status_code": "DeadlineExceeded",
    }
    total = metrics.registry.get_sample_value("csi_sidecar_operations_seconds_sum", labels)
    assert total is not None
    assert 0.25 <= total < 1.0


async def test_v5_log_never_contains_secrets(driver: FakeDriver, logs: io.StringIO) -> None:
    secret_values = ["hunter2-password", "tok-3f9a1c", "very-secret-key-name"]
    async with await connect(driver.socket_path, max_grpc_log_length=-1) as conn:
        await conn.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name="pvc-1",
                parameters={"type": "fast"},
                secrets={
                    "password": secret_values[0],
                    "token": secret_values[1],
                    secret_values[2]: "x",
                },
            ),
            timeout=5,
        )
        await conn.node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id="vol-1", secrets={"password": secret_values[0]}
            ),
            timeout=5,
        )
    # The driver did receive the secrets: the test would be vacuous otherwise.
    assert driver.state.requests[0].secrets["password"] == secret_values[0]
    out = logs.getvalue()
    assert '"GRPC call" method="/csi.v1.Controller/CreateVolume"' in out
    assert '"GRPC call" method="/csi.v1.Node/NodeStageVolume"' in out
    assert "***stripped***" in out
    assert "pvc-1" in out and "vol-pvc-1" in out  # request and response are logged
    for value in secret_values:
        assert value not in out


async def test_v5_response_log_is_capped(driver: FakeDriver, logs: io.StringIO) -> None:
    async with await connect(driver.socket_path, max_grpc_log_length=10) as conn:
        await conn.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=5)
    response_lines = [line for line in logs.getvalue().splitlines() if "GRPC response" in line]
    assert len(response_lines) == 1
    assert "[response body too large, log capped to 10 chars]" in response_lines[0]
    assert "fake.csi.example.com" not in response_lines[0]


async def test_v5_logs_errors_in_go_format(driver: FakeDriver, logs: io.StringIO) -> None:
    driver.state.create_error = grpc.StatusCode.ALREADY_EXISTS
    async with await connect(driver.socket_path) as conn:
        with pytest.raises(grpc.aio.AioRpcError):
            await conn.controller.CreateVolume(csi_pb2.CreateVolumeRequest(name="a"), timeout=5)
    assert 'err="rpc error: code = AlreadyExists desc = scripted create failure"' in logs.getvalue()


async def test_no_grpc_log_below_v5(driver: FakeDriver, logs: io.StringIO) -> None:
    from csi_sidecars.runtime import logging as rlog

    rlog.configure(4, "text", stream=logs)
    async with await connect(driver.socket_path) as conn:
        await conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
    assert "GRPC call" not in logs.getvalue()
