"""The generic scriptable CSI server of the tests: any method of any CSI service.

Each method answers through ``handlers[name](request, context)``: a coroutine returning the reply
for unary methods, an async generator of replies for the SnapshotMetadata streams. Methods
without a handler answer UNIMPLEMENTED. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.csi.messages import csi_pb2

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]
SERVICES = ("Identity", "Controller", "GroupController", "Node", "SnapshotMetadata")


class FakeCSI:
    """A grpc.aio server on a unix socket serving every CSI service from ``handlers``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.endpoint = f"unix://{socket_path}"
        self.handlers: dict[str, Handler] = {}
        self.requests: list[tuple[str, Any]] = []
        self.server: grpc.aio.Server | None = None

    def requests_of(self, method: str) -> list[Any]:
        return [r for m, r in self.requests if m == method]

    def _unary(self, name: str) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.requests.append((name, request))
            fn = self.handlers.get(name)
            if fn is None:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} not scripted")
            return await fn(request, context)

        return handle

    def _stream(self, name: str) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.requests.append((name, request))
            fn = self.handlers.get(name)
            if fn is None:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} not scripted")
            async for msg in fn(request, context):
                yield msg

        return handle

    async def start(self) -> FakeCSI:
        server = grpc.aio.server()
        handlers = []
        for service in SERVICES:
            desc = csi_pb2.DESCRIPTOR.services_by_name[service]
            table = {}
            for method in desc.methods:
                req = getattr(csi_pb2, method.input_type.name)
                resp = getattr(csi_pb2, method.output_type.name)
                if method.server_streaming:
                    table[method.name] = grpc.unary_stream_rpc_method_handler(
                        self._stream(method.name),
                        request_deserializer=req.FromString,
                        response_serializer=resp.SerializeToString,
                    )
                else:
                    table[method.name] = grpc.unary_unary_rpc_method_handler(
                        self._unary(method.name),
                        request_deserializer=req.FromString,
                        response_serializer=resp.SerializeToString,
                    )
            handlers.append(grpc.method_handlers_generic_handler(f"csi.v1.{service}", table))
        server.add_generic_rpc_handlers(handlers)
        server.add_insecure_port(self.endpoint)
        await server.start()
        self.server = server
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.socket_path)


def reply(msg: Any) -> Handler:
    """A handler that always answers ``msg``."""

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return msg

    return handle


def fail(code: grpc.StatusCode, message: str) -> Handler:
    """A handler that always fails with ``code``."""

    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    return handle
