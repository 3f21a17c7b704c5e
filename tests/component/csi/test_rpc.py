"""RPC helpers against a fake driver: driver name, probes, capability sets."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from csi_sidecars.csi import rpc
from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from tests.support.fake_driver import FakeDriver

CTRL = csi_pb2.ControllerServiceCapability.RPC


@pytest.fixture
async def conn(driver: FakeDriver) -> AsyncIterator[Connection]:
    c = await connect(driver.socket_path, timeout=10)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(autouse=True)
def fast_probe_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc, "PROBE_INTERVAL", 0.05)


async def test_get_driver_name(conn: Connection) -> None:
    assert await rpc.get_driver_name(conn, timeout=5) == "fake.csi.example.com"
    info = await rpc.get_plugin_info(conn, timeout=5)
    assert info.vendor_version == "1.0.0"


async def test_empty_driver_name_is_an_error(driver: FakeDriver, conn: Connection) -> None:
    driver.state.name = ""
    with pytest.raises(rpc.CSIError, match=r"^driver name is empty$"):
        await rpc.get_driver_name(conn, timeout=5)


async def test_probe_ready_unset_true_false(driver: FakeDriver, conn: Connection) -> None:
    driver.state.probe_script = [None, True, False]
    assert await rpc.probe(conn, 5) is True
    assert await rpc.probe(conn, 5) is True
    assert await rpc.probe(conn, 5) is False


async def test_probe_until_ready_waits_through_not_ready(
    driver: FakeDriver, conn: Connection, logs: io.StringIO
) -> None:
    driver.state.probe_script = [False, False, True]
    await rpc.probe_until_ready(conn, 5, overall_timeout=10)
    assert driver.state.probe_calls == 3
    assert "CSI driver is not ready yet" in logs.getvalue()


async def test_probe_until_ready_retries_a_timed_out_probe(
    driver: FakeDriver, conn: Connection
) -> None:
    driver.state.probe_script = [0.5, True]
    await rpc.probe_until_ready(conn, 0.2, overall_timeout=10)
    assert driver.state.probe_calls == 2


async def test_probe_until_ready_fails_on_other_errors(
    driver: FakeDriver, conn: Connection
) -> None:
    driver.state.probe_script = [False, grpc.StatusCode.FAILED_PRECONDITION, True]
    with pytest.raises(rpc.CSIError) as info:
        await rpc.probe_until_ready(conn, 5, overall_timeout=10)
    assert str(info.value) == (
        "CSI driver probe failed: rpc error: code = FailedPrecondition "
        "desc = scripted probe failure"
    )
    assert driver.state.probe_calls == 2


async def test_probe_until_ready_overall_timeout(driver: FakeDriver, conn: Connection) -> None:
    driver.state.probe_script = [False] * 1000
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        await rpc.probe_until_ready(conn, 5, overall_timeout=0.5)
    assert time.monotonic() - start < 3
    assert driver.state.probe_calls >= 2


async def test_probe_until_ready_records_metrics(driver: FakeDriver) -> None:
    metrics = CSIMetrics()
    driver.state.probe_script = [False, True]
    async with await connect(driver.socket_path, metrics=metrics) as c:
        await rpc.probe_until_ready(c, 5, overall_timeout=10)
    count = metrics.registry.get_sample_value(
        "csi_sidecar_operations_seconds_count",
        {
            "driver_name": "unknown-driver",
            "method_name": "/csi.v1.Identity/Probe",
            "grpc_status_code": "OK",
        },
    )
    assert count == 2


async def test_capabilities(driver: FakeDriver, conn: Connection) -> None:
    driver.state.controller_caps = [CTRL.CREATE_DELETE_VOLUME, CTRL.PUBLISH_UNPUBLISH_VOLUME]
    assert await rpc.get_controller_capabilities(conn, 5) == {
        CTRL.CREATE_DELETE_VOLUME,
        CTRL.PUBLISH_UNPUBLISH_VOLUME,
    }
    # VolumeExpansion entries are ignored, as in Go.
    assert await rpc.get_plugin_capabilities(conn, 5) == {
        csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE
    }
    assert await rpc.get_node_capabilities(conn, 5) == {
        csi_pb2.NodeServiceCapability.RPC.STAGE_UNSTAGE_VOLUME
    }
    info = await rpc.node_get_info(conn, 5)
    assert (info.node_id, info.max_volumes_per_node) == ("node-1", 7)


async def test_unimplemented_service_raises(conn: Connection) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await rpc.get_group_controller_capabilities(conn, 5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
