"""A minimal scriptable CSI driver (Identity, Controller, Node) for the CSI layer's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc

# A probe step: True/False = ready value, None = ready unset, a StatusCode = fail with it,
# a float = sleep that long first, then answer ready.
ProbeStep = bool | None | grpc.StatusCode | float


@dataclass
class DriverState:
    name: str = "fake.csi.example.com"
    probe_script: list[ProbeStep] = field(default_factory=list)
    probe_calls: int = 0
    controller_caps: list[int] = field(default_factory=list)
    node_id: str = "node-1"
    requests: list[Any] = field(default_factory=list)
    create_error: grpc.StatusCode | None = None


class Identity(csi_pb2_grpc.IdentityServicer):
    def __init__(self, state: DriverState) -> None:
        self.s = state

    async def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return csi_pb2.GetPluginInfoResponse(name=self.s.name, vendor_version="1.0.0")

    async def GetPluginCapabilities(self, request: Any, context: Any) -> Any:
        svc = csi_pb2.PluginCapability.Service
        return csi_pb2.GetPluginCapabilitiesResponse(
            capabilities=[
                csi_pb2.PluginCapability(service=svc(type=svc.CONTROLLER_SERVICE)),
                csi_pb2.PluginCapability(
                    volume_expansion=csi_pb2.PluginCapability.VolumeExpansion(type=1)
                ),
            ]
        )

    async def Probe(self, request: Any, context: Any) -> Any:
        self.s.probe_calls += 1
        step: ProbeStep = self.s.probe_script.pop(0) if self.s.probe_script else True
        if isinstance(step, grpc.StatusCode):
            await context.abort(step, "scripted probe failure")
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = True
        resp = csi_pb2.ProbeResponse()
        if isinstance(step, bool):
            resp.ready.value = step
        return resp


class Controller(csi_pb2_grpc.ControllerServicer):
    def __init__(self, state: DriverState) -> None:
        self.s = state

    async def ControllerGetCapabilities(self, request: Any, context: Any) -> Any:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=rpc(type=t))  # type: ignore[arg-type]
                for t in self.s.controller_caps
            ]
        )

    async def CreateVolume(self, request: Any, context: Any) -> Any:
        self.s.requests.append(request)
        if self.s.create_error is not None:
            await context.abort(self.s.create_error, "scripted create failure")
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(volume_id="vol-" + request.name, capacity_bytes=1 << 20)
        )


class Node(csi_pb2_grpc.NodeServicer):
    def __init__(self, state: DriverState) -> None:
        self.s = state

    async def NodeGetInfo(self, request: Any, context: Any) -> Any:
        return csi_pb2.NodeGetInfoResponse(node_id=self.s.node_id, max_volumes_per_node=7)

    async def NodeGetCapabilities(self, request: Any, context: Any) -> Any:
        rpc = csi_pb2.NodeServiceCapability.RPC
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=rpc(type=rpc.STAGE_UNSTAGE_VOLUME))]
        )

    async def NodeStageVolume(self, request: Any, context: Any) -> Any:
        self.s.requests.append(request)
        return csi_pb2.NodeStageVolumeResponse()


class FakeDriver:
    """Start and stop a grpc.aio server on a unix socket; state survives restarts."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.state = DriverState()
        self.server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server()
        csi_pb2_grpc.add_IdentityServicer_to_server(Identity(self.state), server)
        csi_pb2_grpc.add_ControllerServicer_to_server(Controller(self.state), server)
        csi_pb2_grpc.add_NodeServicer_to_server(Node(self.state), server)
        server.add_insecure_port("unix://" + self.socket_path)
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


async def poll(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait until ``predicate()`` is true, checking every 20 ms, failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)
