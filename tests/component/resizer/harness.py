"""The whole resizer (command main, controller, performer) on the kube fake and the playground
driver, reached through ``run_resizer(..., port=, conn=)``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_sidecars.csi.connection import Connection, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import (
    EVENTS,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    VOLUME_ATTRIBUTES_CLASSES,
)
from csi_sidecars.playground.driver.server import Driver, run_driver
from csi_sidecars.resizer import names
from csi_sidecars.resizer.command import run_resizer
from csi_sidecars.resizer.controller import ResizerConfig
from csi_sidecars.runtime.featuregates import parse_gates
from csi_sidecars.runtime.options import CsiOptions, HttpOptions

DRIVER = "resize.csi.test"
NS = "ns1"
GIB = 1024**3
PVC = PERSISTENT_VOLUME_CLAIMS


async def poll(cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """``cond()`` once it is truthy; fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert loop.time() < deadline, f"timed out waiting for {what or cond}"
        await asyncio.sleep(0.02)


@dataclass
class Env:
    """A running resizer and what it talks to."""

    kube: FakeKube
    drv: Driver
    conn: Connection
    task: asyncio.Task[int]
    stop: asyncio.Event
    metrics: CSIMetrics
    handles: dict[str, str] = field(default_factory=dict)

    def pvc(self, name: str = "claim1") -> JsonDict:
        got = self.kube.peek(PVC, name, NS)
        assert got is not None
        return got

    def pv(self, name: str = "pv-claim1") -> JsonDict:
        got = self.kube.peek(PERSISTENT_VOLUMES, name)
        assert got is not None
        return got

    def status(self, name: str = "claim1") -> JsonDict:
        return dict(self.pvc(name).get("status") or {})

    def events(self, reason: str | None = None) -> list[JsonDict]:
        return [
            e
            for e in self.kube.objects(EVENTS)
            if e["involvedObject"]["kind"] == "PersistentVolumeClaim"
            and (reason is None or e["reason"] == reason)
        ]

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events()]

    def capacity(self, claim: str = "claim1") -> int:
        return int(self.drv.state.data.volumes[self.handles[claim]].capacity_bytes)

    async def claim(
        self, name: str = "claim1", size: str = "1Gi", *, vac: str | None = None, **pv_csi: Any
    ) -> None:
        """A volume in the driver, its PV and a claim bound to it (``size`` everywhere)."""
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        resp = await self.conn.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
            ),
            timeout=5,
        )
        handle = str(resp.volume.volume_id)
        self.handles[name] = handle
        claim: JsonDict = {
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "volumeName": f"pv-{name}",
            },
            "status": {"phase": "Bound", "capacity": {"storage": size}},
        }
        if vac is not None:
            claim["spec"]["volumeAttributesClassName"] = vac
            claim["status"]["currentVolumeAttributesClassName"] = vac
        created = await self.kube.create(PVC, claim, NS)
        await self.kube.create(
            PERSISTENT_VOLUMES,
            {
                "metadata": {"name": f"pv-{name}"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": size},
                    "csi": {"driver": DRIVER, "volumeHandle": handle, "fsType": "ext4", **pv_csi},
                    "volumeMode": "Filesystem",
                    "claimRef": {
                        "namespace": NS,
                        "name": name,
                        "uid": created["metadata"]["uid"],
                    },
                    **({"volumeAttributesClassName": vac} if vac else {}),
                },
            },
        )

    async def request(self, size: str, name: str = "claim1") -> None:
        """The user edits the claim's storage request."""
        await self.kube.patch(
            PVC, name, {"spec": {"resources": {"requests": {"storage": size}}}}, NS
        )

    async def set_class(self, vac: str | None, name: str = "claim1") -> None:
        """The user edits the claim's VolumeAttributesClass."""
        await self.kube.patch(PVC, name, {"spec": {"volumeAttributesClassName": vac}}, NS)

    async def vac(self, name: str, **params: str) -> None:
        await self.kube.create(
            VOLUME_ATTRIBUTES_CLASSES,
            {"metadata": {"name": name}, "driverName": DRIVER, "parameters": params},
        )


def config(**overrides: Any) -> ResizerConfig:
    values: dict[str, Any] = {
        "timeout": 2.0,
        "resync": 0.0,
        "workers": 3,
        "retry_start": 0.05,
        "retry_max": 0.5,
    }
    values.update(overrides)
    return ResizerConfig(**values)


@contextlib.asynccontextmanager
async def resizer(
    tmp_path: Path,
    *,
    kube: FakeKube | None = None,
    gates: tuple[str, ...] = (),
    expect_exit: int = 0,
    driver: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Env]:
    """Run the playground driver (modify on; iops/throughput accepted) and the resizer."""
    kube = kube or FakeKube()
    opts: dict[str, Any] = {
        "driver_name": DRIVER,
        "enable_controller_modify_volume": True,
        "accepted_mutable_parameter_names": ["iops", "throughput"],
        "max_volume_size": 8 * GIB,
    }
    opts.update(driver or {})
    cfg = config(**overrides)
    async with run_driver(tmp_path, **opts) as drv:
        metrics = CSIMetrics()
        conn = await connect(drv.endpoint, metrics=metrics)
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_resizer(
                cfg,
                parse_gates(gates, names.GATES),
                CsiOptions(drv.endpoint, cfg.timeout),
                HttpOptions(),
                KubeOptions(),
                stop,
                port=kube,
                conn=conn,
                metrics=metrics,
            )
        )
        env = Env(kube, drv, conn, task, stop, metrics)
        try:
            yield env
        finally:
            stop.set()
            code = await asyncio.wait_for(task, 20)
            await conn.close()
        assert code == expect_exit
