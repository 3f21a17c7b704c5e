"""Benchmark: our snapshot-controller + snapshotter vs Go's snapshot-controller + csi-snapshotter.

Each side runs BOTH snapshot roles (two processes, as a cluster would: the controller and the
sidecar next to the driver), on one testbed control plane with the playground driver.

* ``churn``: N VolumeSnapshots (default 200) of 10 claims, created 32 at a time; wait until
  every one is ready; delete them all; wait until every snapshot and content is gone and the
  driver holds no snapshot. At Go's default flags (``--kube-api-qps=5 --kube-api-burst=10``,
  10 workers) and at ``--kube-api-qps=100 --kube-api-burst=200``; both sides get the same flags.
* ``cache``: M pre-provisioned contents and M VolumeSnapshots bound to them (default 10,000,
  written straight to the API server with finalizers and ready statuses, so there is nothing
  to do) fill both roles' caches; each side then takes one dynamic snapshot (proof that its
  caches synced and it works), idles for a few seconds, and the probe is deleted.

Wall is the workload's time from the processes' start; CPU is the two processes' CPU seconds
(``os.wait4``); peak RSS is the sum of the two processes' own high-water marks (``VmHWM``, read
before they stop); the per-role figures are extra rows, and so are the API server's request
counters over the run (``apiserver_request_total``: writes of snapshots, contents and claims,
their single GETs, event writes and 409 conflicts), which do not depend on the machine's load.

    python bench/snapshots.py [--count 200] [--cache-count 10000] [--runs 2]
                              [--workload churn|cache|both] [--config default|fast|both] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
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
    Impl,
    Run,
    go_binary,
    high_water_mib,
    ours,
    precompile,
    proc_cpu_s,
    proc_status_mib,
    report,
    wait_until,
)

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state

NS = "bench-snap"
CACHE_NS = "bench-snap-cache"
CLAIMS = 10
SNAP = "/apis/snapshot.storage.k8s.io/v1"
VSC = f"{SNAP}/volumesnapshotcontents"
CLASSES = f"{SNAP}/volumesnapshotclasses"
PV = "/api/v1/persistentvolumes"
CLASS = "bench-snap"
PARALLEL = 32
CONFIGS = {
    "default": (),
    "fast": ("--kube-api-qps=100", "--kube-api-burst=200"),
}
VS_FINALIZERS = [
    "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection",
    "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection",
]
VSC_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
ROLES = ("controller", "snapshotter")

PairWorkload = Callable[[Sequence[subprocess.Popen[bytes]]], Awaitable[dict[str, float]]]


async def _limited(coros: list[Any], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def _list_all(api: RawApi, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        params = {"limit": "500", **({"continue": token} if token else {})}
        page = await api.get(path, **params)
        items.extend(page["items"])
        token = page["metadata"].get("continue") or ""
        if not token:
            return items


COUNTED = ("volumesnapshots", "volumesnapshotcontents", "persistentvolumeclaims", "events")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")


async def api_requests(api: RawApi) -> dict[str, float]:
    """The API server's request counters for the resources the roles touch.

    Keys: ``writes`` (create, update, patch, delete of snapshots, contents and claims, their
    status included), ``GETs`` (single reads of those; the bench itself only LISTs), ``event
    writes`` and ``409s`` (conflicts on any of them).
    """
    _, text = await api.call("GET", "/metrics")
    out = {"writes": 0.0, "GETs": 0.0, "event writes": 0.0, "409s": 0.0}
    for line in str(text).splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        resource, verb, value = labels.get("resource"), labels.get("verb"), float(m.group(2))
        if resource not in COUNTED:
            continue
        if labels.get("code") == "409":
            out["409s"] += value
        if resource == "events":
            if verb in WRITES:
                out["event writes"] += value
        elif verb in WRITES:
            out["writes"] += value
        elif verb == "GET":
            out["GETs"] += value
    return out


async def measure_pair(
    impls: Sequence[Impl], workload: PairWorkload, log_dir: Path, api: RawApi
) -> Run:
    """Start every process of ``impls``, run ``workload`` against them, stop and measure them.

    Wall is the workload's time from the start; CPU is the sum over the processes; peak RSS
    the sum of their own ``VmHWM``, RSS the sum of ``VmRSS`` at the end. Extras: each role's
    CPU and peak RSS, and the API server's request counts during the run (both sides' counts
    include the bench's own 2 x N writes).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    before = await api_requests(api)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    start = time.monotonic()
    for impl in impls:
        log = (log_dir / f"{impl.name}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                list(impl.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(impl.env or {})},
                cwd=REPO,
            )
        )
    try:
        extra = await workload(procs)
    except BaseException:
        for proc in procs:
            proc.kill()
            os.wait4(proc.pid, 0)
        raise
    finally:
        for log in logs:
            log.close()
    wall = time.monotonic() - start
    hwm = [high_water_mib(p.pid) or float("nan") for p in procs]
    rss = sum(proc_status_mib(p.pid, "VmRSS") for p in procs)
    cpu = []
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, _, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
        proc.returncode = 0
        cpu.append(usage.ru_utime + usage.ru_stime)
    for role, c, h in zip(ROLES, cpu, hwm, strict=True):
        extra[f"{role} cpu s"] = c
        extra[f"{role} peak RSS MiB"] = h
    after = await api_requests(api)
    for key, value in after.items():
        extra[f"API {key}"] = value - before[key]
    return Run(wall=wall, cpu=sum(cpu), peak_rss_mib=sum(hwm), rss_mib=rss, extra=extra)


def _alive(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for role, proc in zip(ROLES, procs, strict=True):
        if proc.poll() is not None:
            raise RuntimeError(f"the {role} exited with {proc.returncode}")


def _snapshot(name: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"source": {"persistentVolumeClaimName": claim}, "volumeSnapshotClassName": CLASS},
    }


class Bench:
    """The testbed objects shared by every run."""

    def __init__(self, cp: ControlPlane, count: int) -> None:
        self.cp = cp
        self.api: RawApi = cp.admin
        self.count = count
        self.driver = cp.driver_name
        self.statedir: Path | None = None
        self.socket: Path | None = None

    def backend(self) -> dict[str, Any]:
        assert self.statedir is not None
        return dict(load_state(self.statedir).snapshots)

    async def prepare(self) -> None:
        """The driver, a snapshot class and CLAIMS bound claims with static PVs."""
        drv = await self.cp.start_driver(attach=False, topology=False)
        self.statedir = drv.state_dir
        self.socket = drv.socket
        await self.cp.create_namespace(NS)
        await self.api.create(
            CLASSES,
            {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotClass",
                "metadata": {"name": CLASS},
                "driver": self.driver,
                "deletionPolicy": "Delete",
            },
        )
        conn = await connect(str(drv.socket))
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )
        try:
            for i in range(CLAIMS):
                name = f"claim-{i:02d}"
                resp = await conn.controller.CreateVolume(
                    csi_pb2.CreateVolumeRequest(
                        name=name,
                        volume_capabilities=[cap],
                        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
                    ),
                    timeout=30,
                )
                pv = f"{NS}-{name}"
                await self.api.create(PV, _static_pv(pv, self.driver, resp.volume.volume_id, name))
                await self.api.create(
                    f"/api/v1/namespaces/{NS}/persistentvolumeclaims", _pvc(name, pv)
                )
        finally:
            await conn.close()

        async def bound() -> bool:
            items = (await self.api.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims"))["items"]
            return sum(1 for c in items if c["status"].get("phase") == "Bound") == CLAIMS

        await wait_until(bound, 120, "claims bound", interval=0.2)

    async def reset(self) -> None:
        """Before a run: no snapshot or content of the churn, nothing on the driver."""
        left = await _list_all(self.api, f"{SNAP}/namespaces/{NS}/volumesnapshots")
        assert not left, f"{len(left)} VolumeSnapshots left over"
        assert not self.backend(), "backend snapshots left over"

    def churn(self) -> PairWorkload:
        async def run(procs: Sequence[subprocess.Popen[bytes]]) -> dict[str, float]:
            path = f"{SNAP}/namespaces/{NS}/volumesnapshots"
            names = [f"snap-{i:04d}" for i in range(self.count)]
            t0 = time.monotonic()
            await _limited(
                [
                    self.api.create(path, _snapshot(n, f"claim-{i % CLAIMS:02d}"))
                    for i, n in enumerate(names)
                ]
            )

            async def all_ready() -> bool:
                _alive(procs)
                items = await _list_all(self.api, path)
                ready = [s for s in items if (s.get("status") or {}).get("readyToUse")]
                return len(ready) == self.count

            await wait_until(all_ready, 3600, "every snapshot ready", interval=0.5)
            t1 = time.monotonic()
            await _limited([self.api.delete(f"{path}/{n}") for n in names])

            async def all_gone() -> bool:
                _alive(procs)
                if await _list_all(self.api, path):
                    return False
                contents = [
                    c for c in await _list_all(self.api, VSC) if c["spec"]["driver"] == self.driver
                ]
                return not contents and not self.backend()

            await wait_until(
                all_gone, 3600, "every snapshot, content and backend gone", interval=0.5
            )
            t2 = time.monotonic()
            return {"create phase s": t1 - t0, "delete phase s": t2 - t1}

        return run

    async def fill_caches(self, count: int) -> float:
        """``count`` pre-provisioned contents and snapshots bound to them, settled; seconds."""
        t0 = time.monotonic()
        await self.cp.create_namespace(CACHE_NS)
        path = f"{SNAP}/namespaces/{CACHE_NS}/volumesnapshots"
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))

        async def one(i: int) -> None:
            name = f"cached-{i:05d}"
            content = f"cached-content-{i:05d}"
            vs = {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshot",
                "metadata": {
                    "name": name,
                    "finalizers": VS_FINALIZERS,
                    "labels": {"app": "bench", "shard": str(i % 16)},
                },
                "spec": {"source": {"volumeSnapshotContentName": content}},
            }
            made = await self.api.create(path, vs)
            vsc = {
                "apiVersion": "snapshot.storage.k8s.io/v1",
                "kind": "VolumeSnapshotContent",
                "metadata": {"name": content, "finalizers": [VSC_FINALIZER]},
                "spec": {
                    "driver": self.driver,
                    "deletionPolicy": "Delete",
                    "source": {"snapshotHandle": f"imported-{i:05d}-0123456789abcdef"},
                    "volumeSnapshotRef": {
                        "apiVersion": "snapshot.storage.k8s.io/v1",
                        "kind": "VolumeSnapshot",
                        "name": name,
                        "namespace": CACHE_NS,
                        "uid": made["metadata"]["uid"],
                    },
                },
            }
            await self.api.create(VSC, vsc)
            await self.api.patch(
                f"{VSC}/{content}/status",
                {
                    "status": {
                        "snapshotHandle": f"imported-{i:05d}-0123456789abcdef",
                        "readyToUse": True,
                        "creationTime": int(now * 1e9),
                        "restoreSize": 1 << 30,
                    }
                },
            )
            await self.api.patch(
                f"{path}/{name}/status",
                {
                    "status": {
                        "boundVolumeSnapshotContentName": content,
                        "readyToUse": True,
                        "creationTime": stamp,
                        "restoreSize": "1Gi",
                    }
                },
            )

        await _limited([one(i) for i in range(count)], 64)
        return time.monotonic() - t0

    def cache(self, settle: float) -> PairWorkload:
        async def run(procs: Sequence[subprocess.Popen[bytes]]) -> dict[str, float]:
            path = f"{SNAP}/namespaces/{NS}/volumesnapshots"
            t0 = time.monotonic()
            name = f"probe-{int(t0 * 1000)}"
            await self.api.create(path, _snapshot(name, "claim-00"))

            async def ready() -> bool:
                _alive(procs)
                vs = await self.api.get_or_none(f"{path}/{name}")
                return bool(vs and (vs.get("status") or {}).get("readyToUse"))

            await wait_until(ready, 900, "the probe snapshot ready", interval=0.2)
            synced = time.monotonic() - t0
            ready_cpu = sum(proc_cpu_s(p.pid) for p in procs)
            await asyncio.sleep(settle)
            idle = [proc_status_mib(p.pid, "VmRSS") for p in procs]
            await self.api.delete(f"{path}/{name}")

            async def gone() -> bool:
                _alive(procs)
                return await self.api.get_or_none(f"{path}/{name}") is None and not self.backend()

            await wait_until(gone, 900, "the probe deleted", interval=0.2)
            extra = {
                "synced + probe ready s": synced,
                "CPU s until probe ready": ready_cpu,
                "idle RSS MiB": sum(idle),
            }
            for role, rss in zip(ROLES, idle, strict=True):
                extra[f"{role} idle RSS MiB"] = rss
            return extra

        return run


def _static_pv(name: str, driver: str, handle: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "csi": {"driver": driver, "volumeHandle": handle},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": NS, "name": claim},
        },
    }


def _pvc(name: str, pv: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


async def compare_pairs(
    api: RawApi,
    title: str,
    sides: dict[str, list[Impl]],
    workload: PairWorkload,
    runs: int,
    log_dir: Path,
    setup: Callable[[], Awaitable[Any]] | None = None,
) -> str:
    """Each side ``runs`` times, alternating; the harness's report of the medians."""
    results: dict[str, list[Run]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(runs):
        for name in order if i % 2 == 0 else list(reversed(order)):
            if setup is not None:
                await setup()
            run = await measure_pair(sides[name], workload, log_dir / f"run{i}-{name}", api)
            print(
                f"  run {i} {name}: wall {run.wall:.1f}s cpu {run.cpu:.1f}s "
                f"rss {run.peak_rss_mib:.0f}MiB",
                flush=True,
            )
            results[name].append(run)
    return report(title, results, "ours", "go")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--cache-count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workload", choices=["churn", "cache", "both"], default="both")
    parser.add_argument("--config", choices=[*CONFIGS, "both"], default="both")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("-v", type=int, default=2, help="-v of every process")
    args = parser.parse_args()
    go_controller = go_binary("GO_SNAPSHOT_CONTROLLER", "snapshot-controller")
    go_sidecar = go_binary("GO_CSI_SNAPSHOTTER", "csi-snapshotter")
    if go_controller is None or go_sidecar is None:
        sys.exit("the Go snapshot-controller / csi-snapshotter are not built (testbed/build.sh)")
    configs = list(CONFIGS) if args.config == "both" else [args.config]
    precompile()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
    print(f"logs in {log_dir}", flush=True)
    async with ControlPlane(nodes=1) as cp:
        bench = Bench(cp, args.count)
        await bench.prepare()

        def sides(extra: Sequence[str]) -> dict[str, list[Impl]]:
            ctl = [f"--kubeconfig={cp.kubeconfig('snapshot-controller')}", f"-v={args.v}", *extra]
            side = [
                f"--csi-address={bench.socket}",
                f"--kubeconfig={cp.kubeconfig('csi-snapshotter')}",
                f"-v={args.v}",
                *extra,
            ]
            return {
                "ours": [
                    Impl("ours-controller", ours("snapshot-controller", *ctl)),
                    Impl("ours-snapshotter", ours("snapshotter", *side)),
                ],
                "go": [
                    Impl("go-controller", [go_controller, *ctl]),
                    Impl("go-snapshotter", [go_sidecar, *side]),
                ],
            }

        if args.workload in ("churn", "both"):
            for name in configs:
                flags = CONFIGS[name]
                table = await compare_pairs(
                    cp.admin,
                    f"snapshots, {args.count} created and deleted, {name} flags "
                    f"({' '.join(flags) or 'qps 5, burst 10'}; 10 workers)",
                    sides(flags),
                    bench.churn(),
                    args.runs,
                    log_dir / name,
                    setup=bench.reset,
                )
                print(table, flush=True)
        if args.workload in ("cache", "both"):
            took = await bench.fill_caches(args.cache_count)
            print(f"{args.cache_count} contents + snapshots written in {took:.1f}s", flush=True)
            table = await compare_pairs(
                cp.admin,
                f"snapshot roles idle with {args.cache_count} VolumeSnapshots and contents cached "
                "(default flags)",
                sides(()),
                bench.cache(args.settle),
                args.runs,
                log_dir / "cache",
                setup=bench.reset,
            )
            print(table, flush=True)
    print(f"logs: {log_dir}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
