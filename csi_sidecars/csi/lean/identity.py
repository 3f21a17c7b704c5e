"""The Identity calls node roles make, over a :class:`~csi_sidecars.csi.lean.client.LeanConnection`.

The same rules as :mod:`csi_sidecars.csi.rpc`: an empty driver name is an error, and a ``Probe``
reply without ``ready`` means ready (CSI spec).
"""

from __future__ import annotations

from csi_sidecars.csi.gen import csi_pb2
from csi_sidecars.csi.lean.client import LeanConnection

GET_PLUGIN_INFO = "/csi.v1.Identity/GetPluginInfo"
PROBE = "/csi.v1.Identity/Probe"


class DriverError(Exception):
    """The driver answered, but not in a way the sidecar can use."""


async def get_plugin_info(
    conn: LeanConnection, timeout: float | None = None
) -> csi_pb2.GetPluginInfoResponse:
    """Call Identity/GetPluginInfo.

    Raises:
        RpcError: when the call fails.
    """
    return await conn.call(
        GET_PLUGIN_INFO,
        csi_pb2.GetPluginInfoRequest(),
        csi_pb2.GetPluginInfoResponse,
        timeout=timeout,
    )


async def get_driver_name(conn: LeanConnection, timeout: float | None = None) -> str:
    """The driver's name from GetPluginInfo.

    Raises:
        DriverError: ``driver name is empty`` when the driver returns no name.
        RpcError: when the call fails.
    """
    name = (await get_plugin_info(conn, timeout)).name
    if not name:
        raise DriverError("driver name is empty")
    return name


async def probe(conn: LeanConnection, timeout: float | None = None) -> bool:
    """Call Identity/Probe once: True when ready or when ``ready`` is unset.

    Raises:
        RpcError: when the call fails.
    """
    reply = await conn.call(PROBE, csi_pb2.ProbeRequest(), csi_pb2.ProbeResponse, timeout=timeout)
    return not reply.HasField("ready") or reply.ready.value
