"""kubelet's plugin Registration service, served on ``<driver>-reg.sock``.

``GetInfo`` answers from fixed state (type ``CSIPlugin``, the driver name, the driver socket path
on the host, CSI ``1.0.0``) without any I/O, so kubelet's 1 s deadline and its connection monitor
always get a fast answer. ``NotifyRegistrationStatus`` records what kubelet said: ``true`` makes
``/healthz/registration`` report ok; ``false`` is fatal, as in Go: the registrar logs the error and
exits 1 so the container restarts and registers afresh. Like Go it does not reply to the failed
notification (kubelet's call ends when the process stops). The service runs on the lean gRPC
server (:mod:`csi_sidecars.csi.lean.server`, grpclib) with the generated messages.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from csi_sidecars.csi.lean.server import Service
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("node-register")

SERVICE = "pluginregistration.Registration"
CSI_PLUGIN_TYPE = "CSIPlugin"
SUPPORTED_VERSIONS = ("1.0.0",)


@dataclass
class RegistrationState:
    """What the registrar tells kubelet and what kubelet told it back."""

    driver_name: str
    endpoint: str
    #: None until kubelet calls NotifyRegistrationStatus; then what it said.
    registered: bool | None = None
    error: str = ""
    notified_at: float | None = None
    #: Set when kubelet reports a failed registration; the role then exits 1.
    failed: asyncio.Event = field(default_factory=asyncio.Event)

    def plugin_info(self) -> pr.PluginInfo:
        """The ``PluginInfo`` reply for kubelet's GetInfo."""
        return pr.PluginInfo(
            type=CSI_PLUGIN_TYPE,
            name=self.driver_name,
            endpoint=self.endpoint,
            supported_versions=list(SUPPORTED_VERSIONS),
        )

    def record(self, registered: bool, error: str) -> None:
        """Record a NotifyRegistrationStatus call."""
        self.registered = registered
        self.error = error
        self.notified_at = time.monotonic()
        if not registered:
            self.failed.set()


class RegistrationServicer:
    """The ``pluginregistration.Registration`` service over a :class:`RegistrationState`."""

    def __init__(self, state: RegistrationState) -> None:
        """Serve ``state``."""
        self.state = state

    def service(self) -> Service:
        """The service, ready for :class:`~csi_sidecars.csi.lean.server.UnaryServer`."""
        service = Service(SERVICE)
        service.unary("GetInfo", self.GetInfo, pr.InfoRequest, pr.PluginInfo)
        service.unary(
            "NotifyRegistrationStatus",
            self.NotifyRegistrationStatus,
            pr.RegistrationStatus,
            pr.RegistrationStatusResponse,
        )
        return service

    async def GetInfo(self, request: pr.InfoRequest) -> pr.PluginInfo:
        """Answer kubelet's GetInfo from cached state."""
        if rlog.v(5):
            log.info("Received GetInfo call", request=str(request))
        return self.state.plugin_info()

    async def NotifyRegistrationStatus(
        self, request: pr.RegistrationStatus
    ) -> pr.RegistrationStatusResponse:
        """Record kubelet's verdict; a failure makes the role exit 1 without replying."""
        log.info(
            "Received NotifyRegistrationStatus call",
            plugin_registered=request.plugin_registered,
            error=request.error,
        )
        if not request.plugin_registered:
            log.error(
                "Registration process failed with error, restarting registration container",
                error=request.error,
            )
            self.state.record(False, request.error)
            # Never reply: the process exits and kubelet retries after the restart.
            await asyncio.Event().wait()
        self.state.record(True, "")
        return pr.RegistrationStatusResponse()
