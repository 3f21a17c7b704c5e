"""The lean client against grpcio servers: calls, Go error texts, deadlines, dialling, metrics."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time

import grpc
import pytest

from csi_sidecars.csi.lean import identity, status
from csi_sidecars.csi.lean.client import DialTimeoutError, dial
from csi_sidecars.csi.lean.link import DriverLink
from csi_sidecars.csi.lean.metrics import OperationMetrics
from csi_sidecars.csi.messages import csi_pb2
from tests.support.fake_driver import FakeDriver
from tests.support.poll import poll

PROBE = "/csi.v1.Identity/Probe"


async def test_calls_and_go_error_texts(driver: FakeDriver, socket_path: str) -> None:
    metrics = OperationMetrics()
    async with await dial(socket_path, timeout=5, metrics=metrics) as conn:
        assert await identity.get_driver_name(conn, 2) == driver.identity.name
        assert await identity.probe(conn, 2) is True
        driver.identity.ready = False
        assert await identity.probe(conn, 2) is False
        driver.identity.ready = None
        assert await identity.probe(conn, 2) is True  # ready unset means ready
        driver.identity.probe_error = (grpc.StatusCode.FAILED_PRECONDITION, "disk gone: 100% ü")
        with pytest.raises(status.RpcError) as info:
            await identity.probe(conn, 2)
        assert str(info.value) == "rpc error: code = FailedPrecondition desc = disk gone: 100% ü"
        driver.identity.probe_error = None
        driver.identity.probe_delay = 2.0
        start = time.monotonic()
        with pytest.raises(status.RpcError) as info:
            await identity.probe(conn, 0.3)
        assert time.monotonic() - start < 1.5
        assert str(info.value) == (
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        )
        driver.identity.probe_delay = 0
        # Unknown methods: the server's status, as sent.
        with pytest.raises(status.RpcError) as info:
            await conn.call(
                "/csi.v1.Identity/NoSuch",
                csi_pb2.ProbeRequest(),
                csi_pb2.ProbeResponse,
                timeout=2,
            )
        assert info.value.code == status.UNIMPLEMENTED
    assert metrics.count("/csi.v1.Identity/GetPluginInfo", "OK") == 1
    assert metrics.count(PROBE, "OK") == 3
    assert metrics.count(PROBE, "FailedPrecondition") == 1
    assert metrics.count(PROBE, "DeadlineExceeded") == 1


async def test_empty_driver_name_is_an_error(driver: FakeDriver, socket_path: str) -> None:
    driver.identity.name = ""
    async with await dial(socket_path, timeout=5) as conn:
        with pytest.raises(identity.DriverError, match="driver name is empty"):
            await identity.get_driver_name(conn, 2)


async def test_dial_times_out_on_a_missing_socket(socket_path: str) -> None:
    start = time.monotonic()
    with pytest.raises(DialTimeoutError, match="context deadline exceeded"):
        await dial(socket_path, timeout=0.4)
    assert 0.35 < time.monotonic() - start < 2


async def test_dial_waits_for_a_driver_that_comes_later(socket_path: str) -> None:
    dialling = asyncio.ensure_future(dial(socket_path, timeout=10))
    await asyncio.sleep(0)
    assert not dialling.done()
    fake = await FakeDriver(socket_path).start()
    try:
        conn = await asyncio.wait_for(dialling, 10)
        assert await identity.probe(conn, 2) is True
        conn.close()
    finally:
        await fake.stop()


async def test_dial_treats_a_dead_socket_as_not_there_yet(socket_path: str) -> None:
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(socket_path)  # bound, never listening: connections are refused
        with pytest.raises(DialTimeoutError):
            await dial(socket_path, timeout=0.3)
    os.unlink(socket_path)


async def test_a_server_that_goes_away_mid_call_is_unavailable(socket_path: str) -> None:
    fake = await FakeDriver(socket_path).start()
    fake.identity.probe_delay = 5.0
    conn = await dial(socket_path, timeout=5)
    try:
        call = asyncio.ensure_future(identity.probe(conn, 10))

        async def arrived() -> bool:
            return fake.identity.in_flight == 1

        await poll(arrived, 10, "the probe to reach the driver")
        await fake.stop()
        with pytest.raises(status.RpcError) as info:
            await asyncio.wait_for(call, 10)
        assert info.value.code == status.UNAVAILABLE
        # Redialled lazily: the next call says why it cannot connect, still Unavailable.
        with pytest.raises(status.RpcError) as again:
            await identity.probe(conn, 2)
        assert again.value.code == status.UNAVAILABLE
    finally:
        conn.close()


async def test_calls_are_logged_at_v5(
    driver: FakeDriver, socket_path: str, logs: io.StringIO
) -> None:
    async with await dial(socket_path, timeout=5) as conn:
        await identity.probe(conn, 2)
    text = logs.getvalue()
    assert '"GRPC call" method="/csi.v1.Identity/Probe" request="{}"' in text
    assert '"GRPC response" response="{\\"ready\\":{\\"value\\":true}}" err=null' in text


async def test_with_metrics_records_elsewhere_on_the_same_connection(
    driver: FakeDriver, socket_path: str
) -> None:
    first, second = OperationMetrics(), OperationMetrics()
    conn = await dial(socket_path, timeout=5, metrics=first)
    view = conn.with_metrics(second)
    await identity.probe(conn, 2)
    await identity.probe(view, 2)
    await identity.probe(view, 2)
    assert (first.count(PROBE, "OK"), second.count(PROBE, "OK")) == (1, 2)
    conn.close()


async def test_link_shares_one_dial_with_per_caller_timeouts(socket_path: str) -> None:
    link = DriverLink(socket_path)
    try:
        with pytest.raises(DialTimeoutError):
            await link.connect(0.2)
        patient = asyncio.ensure_future(link.connect(None))
        fake = await FakeDriver(socket_path).start()
        try:
            first = await asyncio.wait_for(patient, 10)
            assert await link.connect(1) is first
            assert await identity.get_driver_name(first, 2) == fake.identity.name
        finally:
            await fake.stop()
    finally:
        await link.close()
        await link.close()
