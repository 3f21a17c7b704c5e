"""A lean unary gRPC server for the node roles: grpclib on a unix socket, no grpcio.

:class:`Service` collects the unary methods of one gRPC service (``pluginregistration.
Registration``), each an ``async`` function from the request message to the reply message; a
handler that raises :class:`~csi_sidecars.csi.lean.status.RpcError` answers with that status.
:class:`UnaryServer` serves services on a unix socket path. grpclib enforces the caller's
deadline (``grpc-timeout``). Unknown methods get grpc-go's answer, ``Unimplemented`` with
``unknown method X for service Y`` (or ``unknown service Y``): grpclib's own answer for them
lacks the ``content-type`` header, which gRPC clients report as ``Unknown`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message
from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from csi_sidecars.csi.lean.status import RpcError

UnaryHandler = Callable[[Any], Awaitable[Message]]


class Service:
    """The unary methods of one gRPC service.

    Args:
        name: the full service name, e.g. ``pluginregistration.Registration``.
    """

    def __init__(self, name: str) -> None:
        """Start with no methods."""
        self.name = name
        self._handlers: dict[str, Handler] = {}

    def unary(
        self,
        method: str,
        handler: UnaryHandler,
        request_type: type[Message],
        reply_type: type[Message],
    ) -> None:
        """Serve ``handler`` as the unary method ``method`` (its short name, ``GetInfo``)."""

        async def serve(stream: Stream[Any, Any]) -> None:
            request = await stream.recv_message()
            try:
                reply = await handler(request)
            except RpcError as err:
                raise GRPCError(Status(err.code), err.details) from None
            await stream.send_message(reply)

        self._handlers[f"/{self.name}/{method}"] = Handler(
            serve, Cardinality.UNARY_UNARY, request_type, reply_type
        )

    def __mapping__(self) -> dict[str, Handler]:
        """grpclib's view of the service: full method name -> handler."""
        return dict(self._handlers)


def _unimplemented(message: str) -> Handler:
    async def fail(stream: Stream[Any, Any]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, message)

    return Handler(fail, Cardinality.UNARY_UNARY, Message, Message)


class _Methods(dict[str, Handler]):
    """A method table whose misses answer as grpc-go does (grpclib looks methods up with get)."""

    def __init__(self, methods: dict[str, Handler]) -> None:
        super().__init__(methods)
        self.services = {name.split("/")[1] for name in methods}

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        if found is not None:
            return found
        service, _, method = key.lstrip("/").partition("/")
        if service in self.services:
            return _unimplemented(f"unknown method {method} for service {service}")
        return _unimplemented(f"unknown service {service}")


class UnaryServer:
    """Serves :class:`Service` objects on one unix socket."""

    def __init__(self, *services: Service) -> None:
        """Serve ``services`` once started."""
        self._services = services
        self._server: Server | None = None

    async def start_unix(self, path: str) -> None:
        """Bind ``path`` and start accepting connections.

        Raises:
            OSError: when the socket cannot be bound.
        """
        server = Server(list(self._services), codec=ProtoCodec())
        # grpclib hands its table to each connection when it is accepted, i.e. after start.
        server._mapping = _Methods(server._mapping)
        await server.start(path=path)
        self._server = server

    async def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, cancel running calls and wait up to ``timeout`` s for them to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), timeout)
