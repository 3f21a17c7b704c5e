"""A minimal CRI client: list, stop and remove pod sandboxes of a node's containerd.

When the testbed stops a real node it stops kubelet first (so nothing restarts containers),
then asks containerd itself to stop every pod sandbox: that kills the containers, tears down
their network through CNI and releases their IP, which killing processes would not. Only four
RuntimeService calls are needed, so their messages are declared here from the CRI v1 field
numbers (``k8s.io/cri-api`` ``pkg/apis/runtime/v1/api.proto``) instead of shipping generated code;
unknown fields in replies are ignored by protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "runtime.v1"
_SERVICE = f"/{_PACKAGE}.RuntimeService"

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_ENUM = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

#: message name -> [(field name, number, type, label, type name)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "VersionRequest": [("version", 1, _STRING, _OPTIONAL, "")],
    "VersionResponse": [
        ("version", 1, _STRING, _OPTIONAL, ""),
        ("runtime_name", 2, _STRING, _OPTIONAL, ""),
        ("runtime_version", 3, _STRING, _OPTIONAL, ""),
        ("runtime_api_version", 4, _STRING, _OPTIONAL, ""),
    ],
    "PodSandboxMetadata": [
        ("name", 1, _STRING, _OPTIONAL, ""),
        ("uid", 2, _STRING, _OPTIONAL, ""),
        ("namespace", 3, _STRING, _OPTIONAL, ""),
    ],
    "PodSandbox": [
        ("id", 1, _STRING, _OPTIONAL, ""),
        ("metadata", 2, _MESSAGE, _OPTIONAL, f".{_PACKAGE}.PodSandboxMetadata"),
        ("state", 3, _ENUM, _OPTIONAL, f".{_PACKAGE}.PodSandboxState"),
    ],
    "ListPodSandboxRequest": [],
    "ListPodSandboxResponse": [
        ("items", 1, _MESSAGE, _REPEATED, f".{_PACKAGE}.PodSandbox"),
    ],
    "StopPodSandboxRequest": [("pod_sandbox_id", 1, _STRING, _OPTIONAL, "")],
    "StopPodSandboxResponse": [],
    "RemovePodSandboxRequest": [("pod_sandbox_id", 1, _STRING, _OPTIONAL, "")],
    "RemovePodSandboxResponse": [],
}


def _build() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="csi_sidecars_testbed_cri.proto", package=_PACKAGE, syntax="proto3"
    )
    enum = fdp.enum_type.add(name="PodSandboxState")
    enum.value.add(name="SANDBOX_READY", number=0)
    enum.value.add(name="SANDBOX_NOTREADY", number=1)
    for name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in _MESSAGES
    }


_CLASSES = _build()


@dataclass(frozen=True)
class Sandbox:
    """A pod sandbox as the runtime lists it."""

    id: str
    name: str
    namespace: str
    uid: str
    ready: bool


class CriClient:
    """RuntimeService calls on one CRI socket; use as ``async with CriClient(path) as cri``."""

    def __init__(self, socket: str, timeout: float = 30.0) -> None:
        self.socket = socket
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(f"unix://{socket}")

    async def __aenter__(self) -> CriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _call(self, method: str, request: Any, reply: str) -> Any:
        call = self._channel.unary_unary(
            f"{_SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=_CLASSES[reply].FromString,
        )
        return await call(request, timeout=self.timeout)

    async def version(self) -> tuple[str, str]:
        """``(runtime name, runtime version)``, e.g. ``("containerd", "1.6.20~ds1")``."""
        reply = await self._call("Version", _CLASSES["VersionRequest"](), "VersionResponse")
        return str(reply.runtime_name), str(reply.runtime_version)

    async def sandboxes(self) -> list[Sandbox]:
        """Every pod sandbox the runtime knows, ready or not."""
        reply = await self._call(
            "ListPodSandbox", _CLASSES["ListPodSandboxRequest"](), "ListPodSandboxResponse"
        )
        return [
            Sandbox(
                id=str(item.id),
                name=str(item.metadata.name),
                namespace=str(item.metadata.namespace),
                uid=str(item.metadata.uid),
                ready=item.state == 0,
            )
            for item in reply.items
        ]

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Stop a sandbox: kill its containers, tear down its network."""
        request = _CLASSES["StopPodSandboxRequest"](pod_sandbox_id=sandbox_id)
        await self._call("StopPodSandbox", request, "StopPodSandboxResponse")

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove a stopped sandbox and its containers."""
        request = _CLASSES["RemovePodSandboxRequest"](pod_sandbox_id=sandbox_id)
        await self._call("RemovePodSandbox", request, "RemovePodSandboxResponse")

    async def remove_all(self) -> int:
        """Stop and remove every sandbox; returns how many there were."""
        found = await self.sandboxes()
        for sandbox in found:
            await self.stop_sandbox(sandbox.id)
            await self.remove_sandbox(sandbox.id)
        return len(found)
