"""Benchmark: our controller bundle (one process) vs the four Go controller sidecars (four).

``csi-sidecars run --roles provisioner,attacher,resizer,snapshotter`` against csi-provisioner,
csi-attacher, csi-resizer and csi-snapshotter, each with the same flags (qps 100, burst 200,
the sidecar identities' kubeconfigs, no leader election). Go's numbers are the sums over its
four processes: CPU seconds (``wait4``), idle ``VmRSS`` and each process's own peak (``VmHWM``).

Cluster: a testbed control plane (kube-controller-manager at qps 200), the playground driver
(attach on, controller-only expansion), Go's snapshot-controller running throughout for both
(it is not measured), and N cached volumes made once: N driver volumes with static PVs and
bound claims, N VolumeAttachments, N driver snapshots with pre-provisioned
VolumeSnapshotContents. A warm-up run of the bundle attaches the N volumes and reads the N
snapshots, so every measured run starts from the same settled state. With ``--foreign`` the N
objects of each kind belong to another driver instead (API objects only, quick to make at
10,000): every sidecar caches them, none acts on them.

(a) idle: start, wait until the processes' CPU stops growing (the caches are synced and there
    is nothing to do), read ``VmRSS``; stop.
(b) mixed: M claims of a StorageClass are provisioned, attached (a VolumeAttachment each),
    expanded (1Gi -> 2Gi), snapshotted (a VolumeSnapshot each), then the snapshots, the
    attachments and the claims are deleted until nothing of them is left; CPU seconds of the
    workload (after the idle point) and of the whole run.

    python bench/controller_bundle.py [--cached 1000] [--claims 50] [--runs 2] [--json]

``BENCH_PROFILE=<dir>`` (and ``BENCH_PROFILER=cprofile``) profiles the bundle (see harness.ours).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    REPO,
    go_binary,
    high_water_mib,
    ours,
    proc_cpu_s,
    proc_status_mib,
    record,
    settle_cpu,
    wait_until,
)

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane

ROLES = ("provisioner", "attacher", "resizer", "snapshotter")
GO = {
    "provisioner": ("GO_CSI_PROVISIONER", "csi-provisioner"),
    "attacher": ("GO_CSI_ATTACHER", "csi-attacher"),
    "resizer": ("GO_CSI_RESIZER", "csi-resizer"),
    "snapshotter": ("GO_CSI_SNAPSHOTTER", "csi-snapshotter"),
}
NS = "bench-cached"
MIXED = "bench-mixed"
SC = "bench-bundle"
VSCLASS = "bench-bundle"
PV = "/api/v1/persistentvolumes"
VA = "/apis/storage.k8s.io/v1/volumeattachments"
SNAP = "/apis/snapshot.storage.k8s.io/v1"
VSC = f"{SNAP}/volumesnapshotcontents"
GIB = 1024**3
PARALLEL = 32
FLAGS = ("--kube-api-qps=100", "--kube-api-burst=200", "--timeout=30s", "-v=2")


async def _limited(coros: Sequence[Awaitable[Any]], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


class Procs:
    """One implementation's running processes."""

    def __init__(self, name: str, argvs: list[list[str]], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, argv in enumerate(argvs):
            with (log_dir / f"{name}-{i}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
                )

    def alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name}: {proc.args[0]} exited with {proc.returncode}")

    def cpu(self) -> float:
        return sum(proc_cpu_s(p.pid) for p in self.procs)

    def rss(self) -> float:
        return sum(proc_status_mib(p.pid, "VmRSS") for p in self.procs)

    def hwm(self) -> float:
        return sum(high_water_mib(p.pid) or float("nan") for p in self.procs)

    async def settle(self, quiet: float = 0.05, window: float = 2.0, limit: float = 600) -> float:
        """Wait until the CPU grows by less than ``quiet`` s per ``window``; seconds waited."""

        def cpu() -> float:
            self.alive()  # names the process that exited
            return self.cpu()

        return await settle_cpu(cpu, quiet, window, limit, what=self.name)

    async def stop(self) -> float:
        """SIGTERM every process; their total CPU seconds."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        total = 0.0
        for proc in self.procs:
            _, _, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
            proc.returncode = 0
            total += usage.ru_utime + usage.ru_stime
        return total


class Bench:
    def __init__(
        self, cp: ControlPlane, cached: int, claims: int, foreign: bool, idle_window: float = 0.0
    ) -> None:
        self.foreign = foreign
        self.idle_window = idle_window
        self.cp = cp
        self.api: RawApi = cp.admin
        self.cached = cached
        self.claims = [f"claim-{i:04d}" for i in range(claims)]

    async def prepare(self, snapshot_controller: str) -> None:
        drv = await self.cp.start_driver(
            args=["--disable-node-expansion", "--max-volume-size=1Ti"], attach=True, topology=True
        )
        self.socket = drv.socket
        self.driver = self.cp.driver_name
        for ns in (NS, MIXED):
            await self.cp.create_namespace(ns)
        sc = objects.storage_class(SC, self.driver)
        sc["allowVolumeExpansion"] = True
        await self.api.ensure("/apis/storage.k8s.io/v1/storageclasses", sc)
        await self.api.ensure(
            f"{SNAP}/volumesnapshotclasses",
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {"name": VSCLASS},
                "driver": self.driver,
                "deletionPolicy": "Delete",
            },
        )
        await self._cached_objects()
        await self.cp.start_process(
            "snapshot-controller",
            [snapshot_controller, f"--kubeconfig={self.cp.kubeconfig('snapshot-controller')}"],
        )

    async def _foreign_objects(self) -> None:
        """The N cached objects of another driver: every sidecar caches them, none acts."""
        other = "other.csi.example.com"
        node = self.cp.node_names[0]

        async def one(i: int) -> None:
            name = f"cached-{i:05d}"
            pv_name = f"{NS}-{name}"
            await self.api.create(
                PV,
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {
                        "name": pv_name,
                        "annotations": {"pv.kubernetes.io/provisioned-by": other},
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "capacity": {"storage": "1Gi"},
                        "csi": {"driver": other, "volumeHandle": f"vol-{i}", "fsType": "ext4"},
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "other",
                        "claimRef": {"namespace": NS, "name": name},
                    },
                },
            )
            claim = objects.pvc(name, "other", size="1Gi")
            claim["spec"]["volumeName"] = pv_name
            await self.api.create(f"/api/v1/namespaces/{NS}/persistentvolumeclaims", claim)
            va = self._va(f"va-{name}", pv_name, node)
            va["spec"]["attacher"] = other
            await self.api.create(VA, va)
            await self.api.create(
                VSC,
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotContent",
                    "metadata": {"name": f"content-{name}"},
                    "spec": {
                        "driver": other,
                        "deletionPolicy": "Retain",
                        "source": {"snapshotHandle": f"snap-{i}"},
                        "volumeSnapshotRef": {"name": f"vs-{name}", "namespace": NS},
                    },
                },
            )

        t0 = time.monotonic()
        await _limited([one(i) for i in range(self.cached)], 64)
        print(f"{self.cached} foreign cached volumes made in {time.monotonic() - t0:.0f}s")

    async def _cached_objects(self) -> None:
        if self.foreign:
            await self._foreign_objects()
            return
        conn = await connect(str(self.socket))
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        node = self.cp.node_names[0]

        async def one(i: int) -> None:
            name = f"cached-{i:05d}"
            req = csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
            )
            vol = (await conn.controller.CreateVolume(req, timeout=30)).volume.volume_id
            snap = await conn.controller.CreateSnapshot(
                csi_pb2.CreateSnapshotRequest(source_volume_id=vol, name=f"snap-{name}"),
                timeout=30,
            )
            pv_name = f"{NS}-{name}"
            csi = {"driver": self.driver, "volumeHandle": vol}
            await self.api.create(
                PV,
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": pv_name},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "capacity": {"storage": "1Gi"},
                        "csi": csi,
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": SC,
                        "claimRef": {"namespace": NS, "name": name},
                    },
                },
            )
            claim = objects.pvc(name, SC, size="1Gi")
            claim["spec"]["volumeName"] = pv_name
            await self.api.create(f"/api/v1/namespaces/{NS}/persistentvolumeclaims", claim)
            await self.api.create(VA, self._va(f"va-{name}", pv_name, node))
            await self.api.create(
                VSC,
                {
                    "apiVersion": "snapshot.storage.k8s.io/v1",
                    "kind": "VolumeSnapshotContent",
                    "metadata": {"name": f"content-{name}"},
                    "spec": {
                        "driver": self.driver,
                        "deletionPolicy": "Retain",
                        "source": {"snapshotHandle": snap.snapshot.snapshot_id},
                        "volumeSnapshotRef": {"name": f"vs-{name}", "namespace": NS},
                    },
                },
            )

        t0 = time.monotonic()
        await _limited([one(i) for i in range(self.cached)])
        await conn.close()
        print(f"{self.cached} cached volumes made in {time.monotonic() - t0:.0f}s", flush=True)

    def _va(self, name: str, pv: str, node: str) -> dict[str, Any]:
        return {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "VolumeAttachment",
            "metadata": {"name": name},
            "spec": {
                "attacher": self.driver,
                "nodeName": node,
                "source": {"persistentVolumeName": pv},
            },
        }

    # -- the two implementations ----------------------------------------------------------

    def argvs(self, impl: str) -> list[list[str]]:
        common = [f"--csi-address={self.socket}", *FLAGS]
        kubeconfig = {role: str(self.cp.kubeconfig(f"csi-{role}")) for role in ROLES}
        if impl == "ours":
            per_role = [f"--{r}.kubeconfig={kubeconfig[r]}" for r in ROLES]
            return [ours("run", f"--roles={','.join(ROLES)}", *common, *per_role)]
        argvs = []
        for role in ROLES:
            binary = go_binary(*GO[role])
            if binary is None:
                sys.exit(f"the Go {GO[role][1]} is not built (testbed/build.sh)")
            argvs.append([binary, *common, f"--kubeconfig={kubeconfig[role]}"])
        return argvs

    # -- the mixed workload ---------------------------------------------------------------

    async def _items(self, path: str) -> list[dict[str, Any]]:
        return list((await self.api.get(path))["items"])

    async def mixed(self, procs: Procs) -> dict[str, float]:
        claims_path = f"/api/v1/namespaces/{MIXED}/persistentvolumeclaims"
        snaps_path = f"{SNAP}/namespaces/{MIXED}/volumesnapshots"
        n = len(self.claims)

        async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
            async def guarded() -> bool:
                procs.alive()
                return await check()

            await wait_until(guarded, 900, what, interval=0.3)

        await _limited(
            [self.api.create(claims_path, objects.pvc(c, SC, "1Gi")) for c in self.claims]
        )

        async def bound() -> bool:
            items = await self._items(claims_path)
            return sum(1 for c in items if (c.get("status") or {}).get("phase") == "Bound") == n

        await until(bound, "claims bound")
        pvs = [c["spec"]["volumeName"] for c in await self._items(claims_path)]
        node = self.cp.node_names[0]
        await _limited([self.api.create(VA, self._va(f"va-{pv}", pv, node)) for pv in pvs])

        async def attached() -> bool:
            items = await self._items(VA)
            names = {f"va-{pv}" for pv in pvs}
            ok = [
                v
                for v in items
                if v["metadata"]["name"] in names and v.get("status", {}).get("attached")
            ]
            return len(ok) == n

        await until(attached, "attached")
        body = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
        await _limited([self.api.patch(f"{claims_path}/{c}", body) for c in self.claims])

        async def expanded() -> bool:
            items = await self._items(claims_path)
            done = [c for c in items if c["status"].get("capacity", {}).get("storage") == "2Gi"]
            return len(done) == n

        await until(expanded, "expanded")
        await _limited(
            [
                self.api.create(
                    snaps_path,
                    {
                        "apiVersion": "snapshot.storage.k8s.io/v1",
                        "kind": "VolumeSnapshot",
                        "metadata": {"name": f"vs-{c}"},
                        "spec": {
                            "source": {"persistentVolumeClaimName": c},
                            "volumeSnapshotClassName": VSCLASS,
                        },
                    },
                )
                for c in self.claims
            ]
        )

        async def ready() -> bool:
            items = await self._items(snaps_path)
            return sum(1 for s in items if (s.get("status") or {}).get("readyToUse")) == n

        await until(ready, "snapshots ready")
        await _limited([self.api.delete(f"{snaps_path}/vs-{c}") for c in self.claims])
        await _limited([self.api.delete(f"{VA}/va-{pv}") for pv in pvs])
        await _limited([self.api.delete(f"{claims_path}/{c}") for c in self.claims])

        async def gone() -> bool:
            if await self._items(snaps_path) or await self._items(claims_path):
                return False
            contents = [
                c
                for c in await self._items(VSC)
                if c["metadata"]["name"].startswith("snapcontent-")
            ]
            vas = [v for v in await self._items(VA) if v["metadata"]["name"].startswith("va-pvc-")]
            live = [p for p in await self._items(PV) if p["metadata"]["name"] in set(pvs)]
            return not contents and not vas and not live

        await until(gone, "everything deleted")
        return {}


async def run_once(bench: Bench, impl: str, log_dir: Path, mixed: bool) -> dict[str, float]:
    procs = Procs(impl, bench.argvs(impl), log_dir)
    try:
        settle = await procs.settle()
        out = {"idle RSS MiB": procs.rss(), "CPU s to idle": procs.cpu(), "s to idle": settle}
        if bench.idle_window > 0:  # what the processes spend doing nothing
            cpu0 = procs.cpu()
            await asyncio.sleep(bench.idle_window)
            out["idle CPU s per minute"] = (procs.cpu() - cpu0) * 60 / bench.idle_window
        if mixed:
            cpu0, t0 = procs.cpu(), time.monotonic()
            await bench.mixed(procs)
            await procs.settle(window=1.0)
            out["mixed workload CPU s"] = procs.cpu() - cpu0
            out["mixed workload wall s"] = time.monotonic() - t0
        out["peak RSS MiB (sum of VmHWM)"] = procs.hwm()
    except BaseException:
        await procs.stop()
        raise
    out["CPU s, whole run"] = await procs.stop()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--idle-window", type=float, default=0.0, help="seconds to measure idle CPU over"
    )
    parser.add_argument("--impls", default="ours,go", help="which to run (profiling: ours)")
    parser.add_argument(
        "--foreign",
        action="store_true",
        help="the cached objects belong to another driver (API objects only: fast to make)",
    )
    args = parser.parse_args()
    controller = go_binary("GO_SNAPSHOT_CONTROLLER", "snapshot-controller")
    if controller is None:
        sys.exit("the Go snapshot-controller is not built (testbed/build.sh)")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    async with ControlPlane(nodes=1, kcm_qps=200, kcm_burst=400) as cp:
        bench = Bench(cp, args.cached, args.claims, args.foreign, args.idle_window)
        await bench.prepare(controller)
        warm = await run_once(bench, "ours", log_dir / "warm-up", mixed=False)
        print(f"warm-up (attaches and reads the cached objects): {warm}", flush=True)
        impls = args.impls.split(",")
        results: dict[str, list[dict[str, float]]] = {impl: [] for impl in impls}
        for i in range(args.runs):
            for impl in impls if i % 2 == 0 else impls[::-1]:
                got = await run_once(bench, impl, log_dir / f"run{i}", mixed=args.claims > 0)
                print(f"run {i} {impl}: {got}", flush=True)
                results[impl].append(got)
    kind = "foreign " if args.foreign else ""
    title = f"controller bundle vs 4 Go sidecars, {args.cached} {kind}cached, {args.claims} claims"
    print(f"\n## {title}\n\n| metric | ours (1 process) | Go (sum of 4) | ratio |")
    print("|---|---:|---:|---:|")
    if len(impls) < 2:
        return
    for key in results["ours"][0]:
        a = statistics.median(r[key] for r in results["ours"])
        b = statistics.median(r[key] for r in results["go"])
        record(f"{title}: {key}", a, b)
        print(f"| {key} | {a:.2f} | {b:.2f} | {a / b if b else float('nan'):.2f} |")
    print(f"\nmedians of {args.runs} alternating runs; logs: {log_dir}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
