"""The node-driver-registrar's HTTP checks: ``/healthz`` as in Go, ``/healthz/registration`` ours.

``/healthz`` proves the registrar still answers kubelet: the registration socket must exist and be
a socket (404 ``registration socket does not exist`` / 500 otherwise), a fresh gRPC connection to
it must come up and ``GetInfo`` must return our driver name (500 with the Go error text
otherwise). Unlike Go, dialling is bounded by ``--timeout`` too, so a wedged socket cannot hang the
check for 30 s.

``/healthz/registration`` (not in Go) tells whether kubelet has confirmed the registration with
``NotifyRegistrationStatus(plugin_registered=true)``: 200 ``ok`` once it has, 503 before. Use it
as a readiness or startup probe to notice a registrar that kubelet never calls (wrong hostPath).
"""

from __future__ import annotations

from typing import NamedTuple

from csi_sidecars.csi.lean.client import DialTimeoutError, dial
from csi_sidecars.csi.lean.status import RpcError
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.registrar.node_service import SERVICE, RegistrationState
from csi_sidecars.registrar.node_socket import SocketFileError, socket_exists
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.http import Handler, Request, Response

log = rlog.get_logger("node-register")

NO_SOCKET_BODY = "registration socket does not exist"
NOT_CONFIRMED_BODY = "kubelet has not confirmed the registration yet"


class Check(NamedTuple):
    """An HTTP status and body."""

    status: int
    body: str


async def check_registration_socket(socket_path: str, driver_name: str, timeout: float) -> Check:
    """Dial the registration socket and check that ``GetInfo`` names our driver.

    Args:
        socket_path: the registration socket.
        driver_name: the name GetInfo must return.
        timeout: bound for dialling and for the GetInfo call, each.
    """
    try:
        if not socket_exists(socket_path):
            return Check(404, NO_SOCKET_BODY)
    except SocketFileError as err:
        return Check(500, str(err))
    try:
        conn = await dial("unix:" + socket_path, timeout=timeout)
    except DialTimeoutError:
        return Check(
            500,
            f"error connecting to node-registrar socket {socket_path}: context deadline exceeded",
        )
    async with conn:
        try:
            info = await conn.call(
                f"/{SERVICE}/GetInfo", pr.InfoRequest(), pr.PluginInfo, timeout=timeout
            )
        except RpcError as err:
            return Check(500, f"error getting info from node-registrar socket: {err}")
    if info.name != driver_name:
        return Check(500, f"invalid driver name {info.name}")
    return Check(200, "ok")


def registration_status(state: RegistrationState) -> Check:
    """Whether kubelet has confirmed the registration (for ``/healthz/registration``)."""
    if state.registered:
        return Check(200, "ok")
    return Check(503, NOT_CONFIRMED_BODY)


def healthz_handler(socket_path: str, state: RegistrationState, timeout: float) -> Handler:
    """The handler for ``/healthz``."""

    async def handle(_: Request) -> Response:
        result = await check_registration_socket(socket_path, state.driver_name, timeout)
        if result.status == 200:
            if rlog.v(5):
                log.info("Health check succeeded")
        else:
            log.error("Health check failed", error=result.body)
        return Response(result.status, result.body)

    return handle


def registration_handler(state: RegistrationState) -> Handler:
    """The handler for ``/healthz/registration``."""

    async def handle(_: Request) -> Response:
        result = registration_status(state)
        return Response(result.status, result.body)

    return handle
