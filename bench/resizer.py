"""Benchmark: our resizer vs the Go csi-resizer: N expansions and N modifications, then with pods.

A testbed control plane, the playground driver (controller expansion only, so an expansion
finishes without a node step; ControllerModifyVolume on), N volumes with static PVs and bound
PVCs in a StorageClass that allows expansion, and two VolumeAttributesClasses. Each run starts
the resizer, raises every claim's request by 1Gi (32 writes at a time), waits until every claim
reports the new capacity, then switches every claim to the other class and waits until every
claim reports it as current. Wall, CPU and peak RSS come from the harness (``os.wait4``).

The second scenario adds P pods to the cluster first (``--pods``, default 10,000; held back by a
scheduling gate, each with a claim volume) and measures the same workload (memory as the
process's own ``VmHWM``, see :func:`_memory`): Go caches every pod
of the cluster for its in-use check (``--handle-volume-inuse-error``, on by default), ours lists
one namespace's pods only after a FailedPrecondition.

    python bench/resizer.py [--count 100] [--pods 10000] [--runs 1] [--json]

With ``--json`` (the harness's) the last line printed is one JSON object of every median.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Impl, Run, go_binary, measure, ours, report, wait_until

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane

NS = "bench-resize"
PODS_NS = "bench-pods"
PV = "/api/v1/persistentvolumes"
PVC = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
VAC = "/apis/storage.k8s.io/v1/volumeattributesclasses"
SC = "bench-resize"
CLASSES = ("bench-a", "bench-b")
PARALLEL = 32
GIB = 1024**3
FLAGS = ("--kube-api-qps=100", "--kube-api-burst=200", "--retry-interval-start=200ms")


async def _limited(coros: list[Any], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def _pod(i: int) -> dict[str, Any]:
    """A pod of a realistic size that the scheduler leaves alone (a scheduling gate)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{i:05d}",
            "labels": {"app": "bench", "shard": str(i % 16)},
            "annotations": {"bench/description": "x" * 200},
        },
        "spec": {
            "schedulingGates": [{"name": "bench.csi-sidecars.io/hold"}],
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1.0",
                    "command": ["/bin/app", "--serve"],
                    "env": [{"name": f"VAR_{k}", "value": "v" * 20} for k in range(8)],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"c-{i:05d}"}}],
        },
    }


def _memory(pid: int) -> dict[str, float]:
    """The process's own peak and current RSS (``VmHWM`` / ``VmRSS``, MiB).

    The harness's ``ru_maxrss`` of a child also counts the parent's memory at the time of the
    fork/exec (Linux carries the old mm's high-water mark over exec), which here grows with the
    pods the benchmark created; ``VmHWM`` belongs to the process's own address space.
    """
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[f"{key} MiB"] = int(value.split()[0]) / 1024.0
    return out


class Bench:
    """The testbed objects shared by every run."""

    def __init__(self, cp: ControlPlane, count: int) -> None:
        self.cp = cp
        self.api: RawApi = cp.admin
        self.count = count
        self.claims = [f"claim-{i:04d}" for i in range(count)]
        self.size = 1  # GiB, the current request
        self.round = 0

    async def prepare(self) -> None:
        drv = await self.cp.start_driver(
            args=["--disable-node-expansion", "--max-volume-size=1Ti"], attach=False, topology=False
        )
        self.socket = drv.socket
        driver = self.cp.driver_name
        await self.cp.create_namespace(NS)
        await self.api.ensure(
            "/apis/storage.k8s.io/v1/storageclasses", objects.storage_class(SC, driver)
        )
        for name, iops in zip(CLASSES, ("100", "200"), strict=True):
            await self.api.ensure(
                VAC,
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "VolumeAttributesClass",
                    "metadata": {"name": name},
                    "driverName": driver,
                    "parameters": {"iops": iops},
                },
            )
        conn = await connect(str(drv.socket))
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )

        async def one(claim: str) -> None:
            req = csi_pb2.CreateVolumeRequest(
                name=claim,
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
            )
            resp = await conn.controller.CreateVolume(req, timeout=30)
            pv_name = f"{NS}-{claim}"
            await self.api.create(
                PV,
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": pv_name},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "capacity": {"storage": "1Gi"},
                        "csi": {"driver": driver, "volumeHandle": resp.volume.volume_id},
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": SC,
                        "claimRef": {"namespace": NS, "name": claim},
                    },
                },
            )
            await self.api.create(
                PVC,
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": SC,
                        "volumeName": pv_name,
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                },
            )

        await _limited([one(c) for c in self.claims])
        await conn.close()

        async def bound() -> bool:
            items = (await self.api.get(PVC))["items"]
            return sum(1 for c in items if c.get("status", {}).get("phase") == "Bound") == len(
                self.claims
            )

        await wait_until(bound, 300, "claims bound", interval=0.5)

    async def add_pods(self, count: int) -> float:
        """``count`` gated pods in their own namespace; returns seconds taken."""
        t0 = time.monotonic()
        await self.cp.create_namespace(PODS_NS)
        path = f"/api/v1/namespaces/{PODS_NS}/pods"
        await _limited([self.api.create(path, _pod(i)) for i in range(count)], 64)
        return time.monotonic() - t0

    async def _claims(self) -> list[dict[str, Any]]:
        return list((await self.api.get(PVC))["items"])

    def workload(self) -> Any:
        async def run(proc: Any) -> dict[str, float]:
            def alive() -> None:
                if proc.poll() is not None:
                    raise RuntimeError(f"resizer exited with {proc.returncode}")

            self.size += 1
            self.round += 1
            size = f"{self.size}Gi"
            cls = CLASSES[self.round % 2]
            t0 = time.monotonic()
            body = {"spec": {"resources": {"requests": {"storage": size}}}}
            await _limited([self.api.patch(f"{PVC}/{c}", body) for c in self.claims])

            async def expanded() -> bool:
                alive()
                items = await self._claims()
                done = [c for c in items if c["status"].get("capacity", {}).get("storage") == size]
                return len(done) == self.count

            await wait_until(expanded, 900, f"{self.count} claims at {size}", interval=0.2)
            t1 = time.monotonic()
            body = {"spec": {"volumeAttributesClassName": cls}}
            await _limited([self.api.patch(f"{PVC}/{c}", body) for c in self.claims])

            async def modified() -> bool:
                alive()
                items = await self._claims()
                done = [
                    c for c in items if c["status"].get("currentVolumeAttributesClassName") == cls
                ]
                return len(done) == self.count

            await wait_until(modified, 900, f"{self.count} claims in {cls}", interval=0.2)
            t2 = time.monotonic()
            return {"expand phase s": t1 - t0, "modify phase s": t2 - t1, **_memory(proc.pid)}

        return run


async def _scenario(
    bench: Bench, impls: list[Impl], runs: int, log_dir: Path
) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {impl.name: [] for impl in impls}
    for i in range(runs):
        order = impls if i % 2 == 0 else list(reversed(impls))
        for impl in order:
            results[impl.name].append(await measure(impl, bench.workload(), log_dir / f"run{i}"))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("-v", type=int, default=2, help="-v of both resizers")
    args = parser.parse_args()
    go = go_binary("GO_CSI_RESIZER", "csi-resizer")
    if go is None:
        sys.exit("the Go csi-resizer is not built (testbed/build.sh)")
    async with ControlPlane(nodes=1) as cp:
        bench = Bench(cp, args.count)
        await bench.prepare()
        flags = [
            f"--csi-address={bench.socket}",
            f"--kubeconfig={cp.kubeconfig('csi-resizer')}",
            f"-v={args.v}",
            *FLAGS,
        ]
        impls = [Impl("ours", ours("resizer", *flags)), Impl("go", [go, *flags])]
        log_dir = Path(tempfile.mkdtemp(prefix="bench-resizer-"))
        results = await _scenario(bench, impls, args.runs, log_dir / "plain")
        title = f"resizer, {args.count} expansions + {args.count} modifications"
        print(report(title, results, "ours", "go"), flush=True)
        if args.pods > 0:
            created = await bench.add_pods(args.pods)
            print(f"\n{args.pods} pods created in {created:.1f}s", flush=True)
            results = await _scenario(bench, impls, args.runs, log_dir / "pods")
            print(flush=True)
            print(report(f"{title}, {args.pods} pods in the cluster", results, "ours", "go"))
        print(f"logs: {log_dir}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
