"""The whole snapshotter (command main, controller, performer) on the kube fake and the
playground driver, in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import EVENTS, JsonDict
from csi_sidecars.playground.driver.server import Driver, run_driver
from csi_sidecars.runtime.featuregates import parse_gates
from csi_sidecars.runtime.options import CsiOptions, HttpOptions, RetryOptions
from csi_sidecars.snapshotter.command import run_snapshotter
from csi_sidecars.snapshotter.flags import GATES, SnapshotterFlags
from tests.support.poll import poll
from tests.unit.snapshotter.reactor import ensure_bound_snapshot

__all__ = [
    "DRIVER",
    "NAMESPACE",
    "Env",
    "create_content",
    "dynamic_content",
    "make_flags",
    "poll",
    "running",
]

DRIVER = "snap.csi.test"
NAMESPACE = "default"


def make_flags(**overrides: Any) -> SnapshotterFlags:
    """Flags as the command line would give them, with quick retries."""
    gates = overrides.pop("feature_gates", [])
    flags = SnapshotterFlags(
        csi=CsiOptions("unused", overrides.pop("timeout", 5.0)),
        http=HttpOptions(),
        kube=KubeOptions(),
        retry=RetryOptions(overrides.pop("retry_start", 0.05), overrides.pop("retry_max", 0.5)),
        gates=parse_gates(gates, GATES),
        worker_threads=3,
    )
    return dataclasses.replace(flags, **overrides)


def snapshot_class(name: str = "gold", parameters: dict[str, str] | None = None) -> JsonDict:
    return {
        "metadata": {"name": name},
        "driver": DRIVER,
        "deletionPolicy": "Delete",
        "parameters": parameters if parameters is not None else {"tier": "fast"},
    }


def dynamic_content(
    name: str, volume: str, *, uid: str | None = None, cls: str = "gold", policy: str = "Delete"
) -> JsonDict:
    """A dynamic VolumeSnapshotContent bound to VolumeSnapshot ``snap-<name>``."""
    return {
        "metadata": {"name": name, "finalizers": [api.VSC_FINALIZER]},
        "spec": {
            "driver": DRIVER,
            "deletionPolicy": policy,
            "source": {"volumeHandle": volume},
            "volumeSnapshotClassName": cls,
            "volumeSnapshotRef": {
                "name": f"snap-{name}",
                "namespace": NAMESPACE,
                "uid": uid or str(uuid.uuid4()),
            },
        },
    }


async def create_content(kube: FakeKube, body: JsonDict) -> JsonDict:
    """Create ``body``; a dynamic content first gets the VolumeSnapshot it is bound to (the
    sidecar reads it before a first CreateSnapshot)."""
    await ensure_bound_snapshot(kube, body)
    return await kube.create(api.VOLUME_SNAPSHOT_CONTENTS, body)


@dataclass
class Env:
    kube: FakeKube
    drv: Driver
    conn: Connection
    metrics: CSIMetrics
    stop: asyncio.Event
    task: asyncio.Task[int]

    def content(self, name: str) -> JsonDict | None:
        return self.kube.peek(api.VOLUME_SNAPSHOT_CONTENTS, name)

    def group_content(self, name: str) -> JsonDict | None:
        return self.kube.peek(api.VOLUME_GROUP_SNAPSHOT_CONTENTS, name)

    def ready(self, name: str) -> JsonDict | None:
        obj = self.content(name)
        return obj if obj and (obj.get("status") or {}).get("readyToUse") is True else None

    def snapshots(self) -> dict[str, Any]:
        """The driver's snapshots by name."""
        return {s.name: s for s in self.drv.state.data.snapshots.values()}

    def events(self) -> list[JsonDict]:
        return self.kube.objects(EVENTS)

    async def volume(self, name: str, size: int = 1 << 20) -> str:
        """Create a volume on the driver; its ID."""
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        req = csi_pb2.CreateVolumeRequest(
            name=name,
            volume_capabilities=[cap],
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        )
        resp = await self.conn.controller.CreateVolume(req, timeout=5)
        return str(resp.volume.volume_id)

    async def delete_content(self, name: str) -> None:
        """What the snapshot-controller does when the VolumeSnapshot goes: annotate, delete."""
        await self.kube.patch(
            api.VOLUME_SNAPSHOT_CONTENTS,
            name,
            {"metadata": {"annotations": {api.ANN_VOLUME_SNAPSHOT_BEING_DELETED: "yes"}}},
        )
        await self.kube.delete(api.VOLUME_SNAPSHOT_CONTENTS, name)

    def queue_adds(self, queue: str = "csi-snapshotter-content") -> float:
        value = self.metrics.registry.get_sample_value("workqueue_adds_total", {"name": queue})
        return float(value or 0.0)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    kube: FakeKube | None = None,
    driver: dict[str, Any] | None = None,
    drv: Driver | None = None,
    node: str = "",
    **flag_overrides: Any,
) -> AsyncIterator[Env]:
    """Run the playground driver (unless ``drv`` is given) and the snapshotter on ``kube``."""
    kube = kube or FakeKube()
    async with contextlib.AsyncExitStack() as stack:
        if drv is None:
            drv = await stack.enter_async_context(
                run_driver(tmp_path, driver_name=DRIVER, **(driver or {}))
            )
        metrics = CSIMetrics()
        conn = await connect(drv.endpoint, metrics=metrics)
        stack.push_async_callback(conn.close)
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_snapshotter(
                make_flags(**flag_overrides), stop, node=node, port=kube, conn=conn, metrics=metrics
            )
        )
        env = Env(kube, drv, conn, metrics, stop, task)
        try:
            yield env
        finally:
            stop.set()
            code = await asyncio.wait_for(task, 20)
        assert code == 0
