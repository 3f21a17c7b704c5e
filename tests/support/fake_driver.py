"""The one scriptable fake CSI driver (Identity, Controller, Node) of the component tests.

Tests change :attr:`FakeDriver.state` on the fly: Probe follows ``probe_script`` step by step
while it has steps, then ``ready`` / ``probe_error`` / ``probe_delay``; ``calls`` and
``requests`` record what the driver was asked. :class:`FakeDriver` is the generic any-method
server of :mod:`tests.support.fake_csi` with these answers installed, so one mechanism serves
every fake. For the full-featured driver (volumes, snapshots, fault injection) use the
playground driver (``csi_sidecars.playground.driver``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc
from tests.support.fake_csi import FakeCSI

# A probe step: True/False = ready value, None = ready unset, a StatusCode = fail with it,
# a float = sleep that long first, then answer ready.
ProbeStep = bool | None | grpc.StatusCode | float


@dataclass
class DriverState:
    """What the fake answers, and what it was asked."""

    name: str = "fake.csi.example.com"
    probe_script: list[ProbeStep] = field(default_factory=list)
    #: once the script is used up: Probe's ``ready`` (None leaves it unset), an error to fail
    #: with, and a delay before answering
    ready: bool | None = True
    probe_error: tuple[grpc.StatusCode, str] | None = None
    probe_delay: float = 0.0
    info_error: tuple[grpc.StatusCode, str] | None = None
    probe_calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    calls: list[str] = field(default_factory=list)
    controller_caps: list[int] = field(default_factory=list)
    node_id: str = "node-1"
    requests: list[Any] = field(default_factory=list)
    create_error: grpc.StatusCode | None = None

    @property
    def probes(self) -> int:
        """How many Probe calls arrived."""
        return self.probe_calls


class Identity(csi_pb2_grpc.IdentityServicer):
    def __init__(self, state: DriverState) -> None:
        self.s = state

    async def GetPluginInfo(self, request: Any, context: Any) -> Any:
        self.s.calls.append("GetPluginInfo")
        if self.s.info_error is not None:
            await context.abort(*self.s.info_error)
        return csi_pb2.GetPluginInfoResponse(name=self.s.name, vendor_version="1.0.0")

    async def GetPluginCapabilities(self, request: Any, context: Any) -> Any:
        self.s.calls.append("GetPluginCapabilities")
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
        self.s.calls.append("Probe")
        self.s.probe_calls += 1
        self.s.in_flight += 1
        self.s.max_in_flight = max(self.s.max_in_flight, self.s.in_flight)
        try:
            return await self._probe(context)
        finally:
            self.s.in_flight -= 1

    async def _probe(self, context: Any) -> Any:
        if self.s.probe_script:
            step: ProbeStep = self.s.probe_script.pop(0)
        else:
            if self.s.probe_delay:
                await asyncio.sleep(self.s.probe_delay)
            if self.s.probe_error is not None:
                await context.abort(*self.s.probe_error)
            step = self.s.ready
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


class FakeDriver(FakeCSI):
    """:class:`~tests.support.fake_csi.FakeCSI` answering from :attr:`state` by default.

    Every method the :class:`Identity`, :class:`Controller` and :class:`Node` classes define is
    installed as a handler; a test may replace any of them in :attr:`handlers` (or script any
    other CSI method there). The state survives restarts.
    """

    def __init__(self, socket_path: str) -> None:
        super().__init__(socket_path)
        self.state = DriverState()
        for servicer in (Identity(self.state), Controller(self.state), Node(self.state)):
            for name, value in vars(type(servicer)).items():
                if name[:1].isupper() and callable(value):
                    self.handlers[name] = getattr(servicer, name)

    @property
    def identity(self) -> DriverState:
        """The state, under the name the node-role tests use for it."""
        return self.state

    async def start(self) -> FakeDriver:
        await super().start()
        return self
