"""What a controller role learns from its driver at start-up, and the error when it cannot.

:func:`read_driver_info` waits for ``Probe`` and reads the name and capabilities once;
:class:`DriverInfo` is what roles' ``setup`` sees as ``ctx.driver``.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from csi_sidecars.csi import rpc
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.connection import Connection
from csi_sidecars.csi.messages import csi_pb2


class StartupError(Exception):
    """A start-up step failed; the message says which and why. The role exits 1."""


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What the driver told us at start-up.

    Roles read capabilities from here (``ctx.driver``) instead of copying them.

    Attributes:
        name: ``GetPluginInfo`` name.
        plugin_capabilities: ``PluginCapability.Service.Type`` values.
        controller_capabilities: ``ControllerServiceCapability.RPC.Type`` values (empty when the
            driver has no Controller service: it is not asked).
        volume_expansion: ``PluginCapability.VolumeExpansion.Type`` values (ONLINE, OFFLINE).
        group_controller_capabilities: ``GroupControllerServiceCapability.RPC.Type`` values
            (empty without the GroupController service).
    """

    name: str
    plugin_capabilities: frozenset[int] = frozenset()
    controller_capabilities: frozenset[int] = frozenset()
    volume_expansion: frozenset[int] = frozenset()
    group_controller_capabilities: frozenset[int] = frozenset()

    @property
    def has_controller_service(self) -> bool:
        """Plugin capability ``CONTROLLER_SERVICE``."""
        return csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE in self.plugin_capabilities

    def has_plugin(self, service: int) -> bool:
        """Whether the plugin advertises the ``PluginCapability.Service`` ``service``."""
        return service in self.plugin_capabilities

    def has_controller(self, capability: int) -> bool:
        """Whether the Controller service advertises ``capability``."""
        return capability in self.controller_capabilities

    def has_group_controller(self, capability: int) -> bool:
        """Whether the GroupController service advertises ``capability``."""
        return capability in self.group_controller_capabilities


async def read_driver_info(conn: Connection, timeout: float) -> DriverInfo:
    """Probe until ready (each probe bounded by ``timeout``), then read name and capabilities.

    Raises:
        StartupError: a call failed or the name is empty.
    """
    try:
        await rpc.probe_until_ready(conn, timeout)
        name = await rpc.get_driver_name(conn, timeout)
        plugin_resp = await rpc.get_plugin_capability_list(conn, timeout)
        plugin = frozenset(c.service.type for c in plugin_resp if c.HasField("service"))
        expansion = frozenset(
            c.volume_expansion.type for c in plugin_resp if c.HasField("volume_expansion")
        )
        controller: frozenset[int] = frozenset()
        if csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE in plugin:
            controller = frozenset(await rpc.get_controller_capabilities(conn, timeout))
        group: frozenset[int] = frozenset()
        if csi_pb2.PluginCapability.Service.GROUP_CONTROLLER_SERVICE in plugin:
            group = frozenset(await rpc.get_group_controller_capabilities(conn, timeout))
    except rpc.CSIError as exc:
        raise StartupError(f"Error getting CSI driver information: {exc}") from None
    except grpc.aio.AioRpcError as exc:
        raise StartupError(f"Error getting CSI driver information: {format_error(exc)}") from None
    return DriverInfo(name, plugin, controller, expansion, group)
