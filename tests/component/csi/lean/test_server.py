"""The lean server answering grpcio clients: replies, statuses, unknown methods, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from csi_sidecars.csi.lean import status
from csi_sidecars.csi.lean.client import dial
from csi_sidecars.csi.lean.server import Service, UnaryServer
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.csi.messages import pluginregistration_pb2_grpc as pr_grpc
from tests.support.poll import poll


class Registration:
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.hang = asyncio.Event()
        self.cancelled = False

    async def get_info(self, request: pr.InfoRequest) -> pr.PluginInfo:
        return pr.PluginInfo(type="CSIPlugin", name="d.example.com", supported_versions=["1.0.0"])

    async def notify(self, request: pr.RegistrationStatus) -> pr.RegistrationStatusResponse:
        self.seen.append(request)
        if request.error == "hang":
            try:
                await self.hang.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if not request.plugin_registered:
            raise status.RpcError(9, f"refused: {request.error}")
        return pr.RegistrationStatusResponse()


@pytest.fixture
async def served(socket_path: str) -> AsyncIterator[tuple[Registration, str]]:
    impl = Registration()
    service = Service("pluginregistration.Registration")
    service.unary("GetInfo", impl.get_info, pr.InfoRequest, pr.PluginInfo)
    service.unary(
        "NotifyRegistrationStatus",
        impl.notify,
        pr.RegistrationStatus,
        pr.RegistrationStatusResponse,
    )
    server = UnaryServer(service)
    await server.start_unix(socket_path)
    try:
        yield impl, socket_path
    finally:
        await server.stop()


async def test_grpcio_client_gets_replies_and_statuses(served: tuple[Registration, str]) -> None:
    impl, path = served
    async with grpc.aio.insecure_channel("unix://" + path) as channel:
        stub = pr_grpc.RegistrationStub(channel)
        info = await stub.GetInfo(pr.InfoRequest(), timeout=5)
        assert (info.type, info.name, list(info.supported_versions)) == (
            "CSIPlugin",
            "d.example.com",
            ["1.0.0"],
        )
        await stub.NotifyRegistrationStatus(
            pr.RegistrationStatus(plugin_registered=True), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as info_err:
            await stub.NotifyRegistrationStatus(
                pr.RegistrationStatus(plugin_registered=False, error="no handler"), timeout=5
            )
        assert info_err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert info_err.value.details() == "refused: no handler"
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.NotifyRegistrationStatus(
                pr.RegistrationStatus(plugin_registered=True, error="hang"), timeout=0.3
            )
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert [r.plugin_registered for r in impl.seen] == [True, False, True]


async def test_unknown_methods_get_grpc_gos_answer(served: tuple[Registration, str]) -> None:
    _, path = served
    async with await dial(path, timeout=5) as conn:
        with pytest.raises(status.RpcError) as info:
            await conn.call(
                "/pluginregistration.Registration/Nope",
                pr.InfoRequest(),
                pr.PluginInfo,
                timeout=2,
            )
        assert str(info.value) == (
            "rpc error: code = Unimplemented desc = "
            "unknown method Nope for service pluginregistration.Registration"
        )
    async with grpc.aio.insecure_channel("unix://" + path) as channel:
        call = channel.unary_unary("/other.Service/GetInfo")
        with pytest.raises(grpc.aio.AioRpcError) as grpc_info:
            await call(b"", timeout=2)
    assert grpc_info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert grpc_info.value.details() == "unknown service other.Service"


async def test_lean_client_and_server_together(served: tuple[Registration, str]) -> None:
    _, path = served
    async with await dial(path, timeout=5) as conn:
        info = await conn.call(
            "/pluginregistration.Registration/GetInfo",
            pr.InfoRequest(),
            pr.PluginInfo,
            timeout=2,
        )
    assert info.name == "d.example.com"


async def test_stop_cancels_a_hanging_call_and_returns(socket_path: str) -> None:
    impl = Registration()
    service = Service("pluginregistration.Registration")
    service.unary(
        "NotifyRegistrationStatus",
        impl.notify,
        pr.RegistrationStatus,
        pr.RegistrationStatusResponse,
    )
    server = UnaryServer(service)
    await server.start_unix(socket_path)
    async with grpc.aio.insecure_channel("unix://" + socket_path) as channel:
        stub = pr_grpc.RegistrationStub(channel)
        call = asyncio.ensure_future(
            stub.NotifyRegistrationStatus(pr.RegistrationStatus(error="hang"), timeout=10)
        )
        await poll(lambda: bool(impl.seen), 10, "the call to arrive")
        await asyncio.wait_for(server.stop(timeout=1), 3)
        assert impl.cancelled
        call.cancel()
