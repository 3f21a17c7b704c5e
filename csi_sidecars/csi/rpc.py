"""Small CSI calls every role needs: driver name, probes and capability sets.

These mirror csi-lib-utils' ``rpc`` package: :func:`get_driver_name` rejects an empty name,
:func:`probe` treats an absent ``ready`` as ready, :func:`probe_until_ready` keeps probing once a
second while the driver answers ``ready=false`` or a single probe times out, and the capability
helpers return sets of enum values (``csi_pb2.ControllerServiceCapability.RPC.CREATE_DELETE_VOLUME``
and so on). Every call takes a per-call ``timeout`` in seconds (None = no deadline).
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeAlias

import grpc

from csi_sidecars.csi.codes import format_error, is_grpc_code
from csi_sidecars.csi.connection import Connection
from csi_sidecars.csi.gen import csi_pb2
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("rpc")

PROBE_INTERVAL = 1.0

PluginServiceType: TypeAlias = csi_pb2.PluginCapability.Service.Type.ValueType
ControllerCapability: TypeAlias = csi_pb2.ControllerServiceCapability.RPC.Type.ValueType
NodeCapability: TypeAlias = csi_pb2.NodeServiceCapability.RPC.Type.ValueType
GroupControllerCapability: TypeAlias = csi_pb2.GroupControllerServiceCapability.RPC.Type.ValueType


class CSIError(Exception):
    """A driver answered, but not in a way the sidecar can use."""


async def get_plugin_info(
    conn: Connection, timeout: float | None = None
) -> csi_pb2.GetPluginInfoResponse:
    """Call Identity/GetPluginInfo."""
    resp: csi_pb2.GetPluginInfoResponse = await conn.identity.GetPluginInfo(
        csi_pb2.GetPluginInfoRequest(), timeout=timeout
    )
    return resp


async def get_driver_name(conn: Connection, timeout: float | None = None) -> str:
    """The driver's name from GetPluginInfo.

    Raises:
        CSIError: ``driver name is empty`` when the driver returns no name.
        grpc.aio.AioRpcError: when the call fails.
    """
    name = (await get_plugin_info(conn, timeout)).name
    if not name:
        raise CSIError("driver name is empty")
    return name


async def probe(conn: Connection, timeout: float | None = None) -> bool:
    """Call Identity/Probe once: True when ready or when ``ready`` is unset (as the spec says).

    Raises:
        grpc.aio.AioRpcError: when the call fails.
    """
    resp: csi_pb2.ProbeResponse = await conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=timeout)
    return not resp.HasField("ready") or resp.ready.value


async def probe_until_ready(
    conn: Connection, timeout: float, *, overall_timeout: float | None = None
) -> None:
    """Probe the driver until it says it is ready (Go: ``ProbeForever``).

    Probes at once, then every second. A probe that times out (DeadlineExceeded) or answers
    ``ready=false`` means "not ready yet"; any other error fails at once.

    Args:
        conn: the driver connection.
        timeout: the deadline of each single probe, in seconds.
        overall_timeout: give up after this many seconds; None probes forever.

    Raises:
        CSIError: ``CSI driver probe failed: ...`` for any error other than DeadlineExceeded.
        TimeoutError: when ``overall_timeout`` passes before the driver is ready.
    """
    deadline = None if overall_timeout is None else time.monotonic() + overall_timeout
    log.info("Probing CSI driver for readiness")
    while True:
        attempt = timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the CSI driver to become ready")
            attempt = min(timeout, remaining)
        try:
            if await probe(conn, attempt):
                log.info("CSI driver is ready")
                return
            log.info("CSI driver is not ready yet")
        except grpc.aio.AioRpcError as exc:
            if not is_grpc_code(exc, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise CSIError(f"CSI driver probe failed: {format_error(exc)}") from exc
            log.info("CSI driver probe timed out")
        pause = PROBE_INTERVAL
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        await asyncio.sleep(pause)


async def get_plugin_capability_list(
    conn: Connection, timeout: float | None = None
) -> list[csi_pb2.PluginCapability]:
    """Every ``PluginCapability`` entry (services and volume expansion types)."""
    resp: csi_pb2.GetPluginCapabilitiesResponse = await conn.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=timeout
    )
    return list(resp.capabilities)


async def get_plugin_capabilities(
    conn: Connection, timeout: float | None = None
) -> set[PluginServiceType]:
    """The ``PluginCapability.Service`` types the driver advertises (VolumeExpansion ignored)."""
    resp: csi_pb2.GetPluginCapabilitiesResponse = await conn.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=timeout
    )
    return {cap.service.type for cap in resp.capabilities if cap.HasField("service")}


async def get_controller_capabilities(
    conn: Connection, timeout: float | None = None
) -> set[ControllerCapability]:
    """The ``ControllerServiceCapability.RPC`` types from ControllerGetCapabilities."""
    resp: csi_pb2.ControllerGetCapabilitiesResponse = (
        await conn.controller.ControllerGetCapabilities(
            csi_pb2.ControllerGetCapabilitiesRequest(), timeout=timeout
        )
    )
    return {cap.rpc.type for cap in resp.capabilities if cap.HasField("rpc")}


async def get_node_capabilities(
    conn: Connection, timeout: float | None = None
) -> set[NodeCapability]:
    """The ``NodeServiceCapability.RPC`` types from NodeGetCapabilities."""
    resp: csi_pb2.NodeGetCapabilitiesResponse = await conn.node.NodeGetCapabilities(
        csi_pb2.NodeGetCapabilitiesRequest(), timeout=timeout
    )
    return {cap.rpc.type for cap in resp.capabilities if cap.HasField("rpc")}


async def get_group_controller_capabilities(
    conn: Connection, timeout: float | None = None
) -> set[GroupControllerCapability]:
    """The ``GroupControllerServiceCapability.RPC`` types from GroupControllerGetCapabilities."""
    resp: csi_pb2.GroupControllerGetCapabilitiesResponse = (
        await conn.group_controller.GroupControllerGetCapabilities(
            csi_pb2.GroupControllerGetCapabilitiesRequest(), timeout=timeout
        )
    )
    return {cap.rpc.type for cap in resp.capabilities if cap.HasField("rpc")}


async def node_get_info(
    conn: Connection, timeout: float | None = None
) -> csi_pb2.NodeGetInfoResponse:
    """Call Node/NodeGetInfo (node ID, max volumes, topology)."""
    resp: csi_pb2.NodeGetInfoResponse = await conn.node.NodeGetInfo(
        csi_pb2.NodeGetInfoRequest(), timeout=timeout
    )
    return resp
