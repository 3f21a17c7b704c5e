"""Reading the end state back: API objects, the driver's state and request log, processes, logs.

Also the cluster objects the workload needs before it starts (namespaces, the Secret whose
values must never reach a log, StorageClasses, a VolumeSnapshotClass, VolumeAttributesClasses).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_sidecars.playground import objects
from csi_sidecars.playground.driver import load_state
from csi_sidecars.playground.driver.requestlog import read_request_log

from .model import (
    PV_PATH,
    SC_PATH,
    VA_PATH,
    VAC_PATH,
    VSC_PATH,
    VSCLASS_PATH,
    Process,
    Tracked,
    World,
    collection,
    spec,
)
from .testbed import Testbed

NAMESPACES = ("chaos-a", "chaos-b", "chaos-c")
SECRET_NAME = "chaos-secret"
SECRET_NAMESPACE = "default"
LABEL = "chaos.csi-sidecars.io/run"
SNAPSHOT_CLASS = "chaos-snap"
VACS = ("chaos-gold", "chaos-silver")


@dataclass(frozen=True)
class StorageClass:
    """One StorageClass of the workload."""

    name: str
    wffc: bool
    parameters: dict[str, str]


def _secret_params(*kinds: str) -> dict[str, str]:
    out = {}
    for kind in kinds:
        out[f"csi.storage.k8s.io/{kind}-secret-name"] = SECRET_NAME
        out[f"csi.storage.k8s.io/{kind}-secret-namespace"] = SECRET_NAMESPACE
    return out


CLASSES = (
    StorageClass(
        "chaos-imm", False, _secret_params("provisioner", "controller-publish", "controller-expand")
    ),
    StorageClass("chaos-wffc", True, {"tier": "wffc"}),
    StorageClass("chaos-imm-plain", False, {"tier": "plain"}),
)


def secret_values() -> list[str]:
    """Fresh secret values for one run (random, so a hit in a log is never a coincidence)."""
    return [f"chaos-secret-{secrets.token_hex(12)}", f"chaos-token-{secrets.token_hex(12)}"]


async def prepare(tb: Testbed, values: list[str]) -> None:
    """Create the namespaces, the Secret and the classes the workload uses."""
    assert tb.api is not None
    for ns in NAMESPACES:
        await tb.cp.create_namespace(ns)
    data = {
        key: base64.b64encode(v.encode()).decode()
        for key, v in zip(("password", "token"), values, strict=True)
    }
    await tb.api.create(
        f"/api/v1/namespaces/{SECRET_NAMESPACE}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET_NAME}, "data": data},
    )
    for sc in CLASSES:
        body = objects.storage_class(
            sc.name,
            tb.driver_name,
            binding_mode="WaitForFirstConsumer" if sc.wffc else "Immediate",
            parameters=sc.parameters,
        )
        await tb.api.create(SC_PATH, body)
    await tb.api.create(
        VSCLASS_PATH,
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": SNAPSHOT_CLASS},
            "driver": tb.driver_name,
            "deletionPolicy": "Delete",
            "parameters": _secret_params("snapshotter"),
        },
    )
    for i, name in enumerate(VACS):
        await tb.api.create(
            VAC_PATH,
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "VolumeAttributesClass",
                "metadata": {"name": name},
                "driverName": tb.driver_name,
                "parameters": {"iops": str(1000 * (i + 1))},
            },
        )


async def _namespaced(tb: Testbed, kind: str) -> list[dict[str, Any]]:
    assert tb.api is not None
    out: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        out += await tb.api.items(collection(kind, ns))
    return out


async def _warnings(tb: Testbed) -> list[dict[str, Any]]:
    assert tb.api is not None
    out: list[dict[str, Any]] = []
    for ns in (*NAMESPACES, "default"):
        out += await tb.api.items(f"/api/v1/namespaces/{ns}/events", fieldSelector="type=Warning")
    return out


def _scan(files: list[Path], needles: list[bytes]) -> dict[str, int]:
    hits: dict[str, int] = {}
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        count = sum(data.count(n) for n in needles)
        if count:
            hits[str(path)] = count
    return hits


def needles(values: list[str]) -> list[bytes]:
    """The byte strings that betray a secret: each value, plain and base64-encoded."""
    out = []
    for v in values:
        out += [v.encode(), base64.b64encode(v.encode())]
    return out


async def gather(tb: Testbed, values: list[str], *, scan_logs: bool = True) -> World:
    """Read the whole end state back."""
    assert tb.api is not None and tb.driver is not None
    driver = tb.driver_name
    world = World(driver=driver)
    world.pvcs = await _namespaced(tb, "pvc")
    world.pods = await _namespaced(tb, "pod")
    world.snapshots = await _namespaced(tb, "snapshot")
    world.pvs = [
        pv for pv in await tb.api.items(PV_PATH) if spec(pv).get("csi", {}).get("driver") == driver
    ]
    world.vas = [va for va in await tb.api.items(VA_PATH) if spec(va).get("attacher") == driver]
    world.contents = [c for c in await tb.api.items(VSC_PATH) if spec(c).get("driver") == driver]
    world.events = await _warnings(tb)
    state = load_state(tb.statedir)
    world.volumes = {vid: v.name for vid, v in state.volumes.items()}
    world.driver_snapshots = {sid: s.name for sid, s in state.snapshots.items()}
    world.publications = {(p["volume_id"], p["node_id"]) for p in state.publications()}
    world.calls = read_request_log(tb.request_log)
    health = await asyncio.gather(*(tb.healthy(r) for r in tb.replicas))
    world.processes = [
        Process(r.name, r.role, r.impl, r.process.running, ok, why, r.restarts, list(r.exits))
        for r, (ok, why) in zip(tb.replicas, health, strict=True)
    ]
    drv = tb.driver.process
    world.processes.append(
        Process("driver", "driver", "playground", bool(drv and drv.running), True)
    )
    if scan_logs:
        world.secret_hits = await asyncio.to_thread(_scan, tb.log_files(), needles(values))
    return world


def dump_world(path: Path, world: World, ledger: list[Tracked]) -> None:
    """Write the end state and the ledger as JSON, for reading a failed run afterwards."""
    doc = {
        "ledger": [dataclasses.asdict(t) for t in ledger],
        "pvcs": world.pvcs,
        "pods": world.pods,
        "snapshots": world.snapshots,
        "pvs": world.pvs,
        "volumeattachments": world.vas,
        "contents": world.contents,
        "warnings": world.events,
        "volumes": world.volumes,
        "driver_snapshots": world.driver_snapshots,
        "publications": sorted(world.publications),
        "processes": [dataclasses.asdict(p) for p in world.processes],
    }
    path.write_text(json.dumps(doc, indent=1, default=str))
