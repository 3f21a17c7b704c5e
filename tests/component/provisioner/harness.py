"""The provisioner controller against the in-memory kube fake and the in-process playground driver.

:class:`Env` runs a :class:`ProvisionerController` in a task and plays the parts of the cluster
the fake does not: it creates StorageClasses, claims (annotated as kube-controller-manager does),
nodes and CSINodes, and marks PVs Released the way the PV controller would.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from csi_sidecars.csi import rpc
from csi_sidecars.csi.connection import Connection, LossPolicy, connect
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import (
    CSI_NODES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    ApiError,
    JsonDict,
    Resource,
)
from csi_sidecars.playground.driver import Driver, run_driver
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.provisioner.context import Settings
from csi_sidecars.provisioner.controller import ProvisionerController
from csi_sidecars.provisioner.events import Event
from csi_sidecars.provisioner.request import ProvisionerOptions

DRIVER = "hostpath.csi.k8s.io"
NS = "default"
IDENTITY = "1700000000000-1234-hostpath.csi.k8s.io"


@dataclass
class Recorded:
    """Events recorded by the controller: (object name, type, reason, message)."""

    items: list[tuple[str, str, str, str]] = field(default_factory=list)

    def __call__(self, obj: Any, resource: Resource, event: Event) -> None:
        self.items.append((obj["metadata"]["name"], event.type, event.reason, event.message))

    def of(self, name: str, reason: str | None = None) -> list[tuple[str, str, str, str]]:
        return [e for e in self.items if e[0] == name and (reason is None or e[2] == reason)]


async def poll(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Wait until ``check()`` is truthy; return its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


def storage_class(name: str = "fast", **fields: Any) -> JsonDict:
    body: JsonDict = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": DRIVER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    body.update(fields)
    return body


def claim(name: str, storage: str = "1Gi", sc: str = "fast", **spec: Any) -> JsonDict:
    annotations = spec.pop("annotations", {})
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"volume.kubernetes.io/storage-provisioner": DRIVER, **annotations},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage}},
            "storageClassName": sc,
            **spec,
        },
    }


class Env:
    """A running controller and handles on everything around it."""

    def __init__(self, kube: FakeKube, driver: Driver, conn: Connection, **settings: Any) -> None:
        self.kube = kube
        self.driver = driver
        self.conn = conn
        self.events = Recorded()
        self.settings = settings
        self.ctrl: ProvisionerController | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, **overrides: Any) -> ProvisionerController:
        """Start a controller (a fresh one, as after a restart)."""
        plugin = await rpc.get_plugin_capabilities(self.conn, 5)
        controller_caps = await rpc.get_controller_capabilities(self.conn, 5)
        args = {**self.settings, **overrides}
        opts = ProvisionerOptions(
            driver=DRIVER,
            plugin_capabilities=frozenset(plugin),
            controller_capabilities=frozenset(controller_caps),
            volume_name_uuid_length=args.pop("volume_name_uuid_length", -1),
        )
        settings = Settings(
            identity=IDENTITY,
            timeout=args.pop("timeout", 5.0),
            strict_topology=args.pop("strict_topology", False),
            immediate_topology=args.pop("immediate_topology", True),
            retry_interval_max=args.pop("retry_max", 1.0),
        )
        self.ctrl = ProvisionerController(
            self.kube,
            self.conn.controller,
            opts,
            settings,
            emit=self.events,
            registry=CollectorRegistry(),
            retry_start=0.02,
            retry_max=args.pop("retry_max_backoff", 0.2),
            worker_threads=args.pop("workers", 4),
            resync_period=0,
        )
        self._task = asyncio.create_task(self.ctrl.run())
        return self.ctrl

    async def crash(self) -> None:
        """Stop the controller abruptly (as a SIGKILL would, minus the process)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- objects --------------------------------------------------------------------------

    async def add_node(self, name: str, topology: bool = True) -> None:
        labels = {TOPOLOGY_KEY: name} if topology else {}
        await self.kube.create(NODES, {"metadata": {"name": name, "labels": labels}})
        drivers = [{"name": DRIVER, "nodeID": name, "topologyKeys": [TOPOLOGY_KEY]}]
        await self.kube.create(
            CSI_NODES, {"metadata": {"name": name}, "spec": {"drivers": drivers}}
        )

    async def add_class(self, name: str = "fast", **fields: Any) -> JsonDict:
        return await self.kube.create(STORAGE_CLASSES, storage_class(name, **fields))

    async def add_claim(self, name: str, **kw: Any) -> JsonDict:
        body = claim(name, **kw)
        body["metadata"]["uid"] = str(uuid.uuid4())
        return await self.kube.create(PERSISTENT_VOLUME_CLAIMS, body, NS)

    def pvc(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUME_CLAIMS, name, NS)

    def pv(self, name: str) -> JsonDict | None:
        return self.kube.peek(PERSISTENT_VOLUMES, name)

    def pv_of(self, pvc: JsonDict) -> JsonDict | None:
        return self.pv(f"pvc-{pvc['metadata']['uid']}")

    def volumes(self) -> dict[str, Any]:
        return dict(self.driver.state.data.volumes)

    async def bind(self, pvc_name: str) -> JsonDict:
        """Do what the PV controller does once the PV exists: bind both sides."""
        first = self.pvc(pvc_name)
        assert first is not None
        pv: JsonDict = await poll(lambda: self.pv_of(first), what=f"PV of {pvc_name}")
        for _ in range(20):
            pvc = self.pvc(pvc_name)
            assert pvc is not None
            pvc["spec"]["volumeName"] = pv["metadata"]["name"]
            try:
                await self.kube.replace(PERSISTENT_VOLUME_CLAIMS, pvc, NS)
                break
            except ApiError as exc:
                if not exc.conflict:
                    raise
        await self.kube.patch(
            PERSISTENT_VOLUME_CLAIMS, pvc_name, {"status": {"phase": "Bound"}}, NS,
            subresource="status",
        )  # fmt: skip
        await self.kube.patch(
            PERSISTENT_VOLUMES, pv["metadata"]["name"], {"status": {"phase": "Bound"}},
            subresource="status",
        )  # fmt: skip
        return pv

    async def release(self, pv_name: str) -> None:
        """Mark a PV Released, as the PV controller does when its claim is gone."""
        await self.kube.patch(
            PERSISTENT_VOLUMES, pv_name, {"status": {"phase": "Released"}}, subresource="status"
        )

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until the controller has nothing queued or in progress."""
        assert self.ctrl is not None
        ctrl = self.ctrl
        await poll(ctrl.idle, timeout, "controller idle")


@contextlib.asynccontextmanager
async def environment(tmp_path: Path, **driver_options: Any) -> AsyncIterator[Env]:
    """A fake cluster with one node, the playground driver, and (not yet started) a controller."""
    kube = FakeKube()
    async with run_driver(tmp_path, driver_name=DRIVER, **driver_options) as drv:
        conn = await connect(drv.endpoint, timeout=5, on_lost=LossPolicy.RECONNECT)
        env = Env(kube, drv, conn)
        try:
            await env.add_node("node-1")
            yield env
        finally:
            await env.crash()
            await conn.close()
