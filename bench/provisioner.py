"""Benchmark: our provisioner vs the Go external-provisioner.

Three workloads on testbed control planes with the playground driver (topology on):

* ``churn``: create N claims of an Immediate class (32 at a time), wait until all are Bound,
  delete them, wait until every PV is gone and the driver has no volume left. Measured at the
  Go defaults (``--kube-api-qps=5 --kube-api-burst=10``, 100 workers) and at
  ``--kube-api-qps=100 --kube-api-burst=200``; both implementations get the same flags.
* ``cache``: M static PVs and M pending claims of another provisioner fill the caches; the
  provisioner then provisions one claim of its own (proof that its caches synced; the claim is
  pre-annotated so kube-controller-manager's backlog with M claims does not matter) and idles
  for a few seconds; peak RSS is what counts. The probe is cleaned up by hand.
* ``spread``: on three nodes, N WaitForFirstConsumer claims, each with a pod the scheduler
  places, bound, then deleted with their pods, until no PV and no volume is left. Central: one
  provisioner, one driver standing in for the three nodes; node deployment: a driver and a
  provisioner (``--node-deployment``, ``NODE_NAME``) per node, their CPU and peak RSS summed.
  Both modes for ours and Go, at the Go defaults.

    python bench/provisioner.py [--count 500] [--cache-count 10000] [--runs 1]
                                [--workload churn|cache|spread|both|all]
                                [--config default|fast|both]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    RESULTS,
    Impl,
    Workload,
    compare,
    go_binary,
    ours,
    precompile,
    record,
    wait_until,
)
from provisioner_spread import spread_tables

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import ApiError, RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state

PV = "/api/v1/persistentvolumes"
SC = "/apis/storage.k8s.io/v1/storageclasses"
NS = "bench"
CLAIMS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
CONFIGS = {
    "default": (),
    "fast": ("--kube-api-qps=100", "--kube-api-burst=200"),
}
PARALLEL = 32
KCM_QPS = 1000.0
PHASES = ("provision", "delete")


async def _gather_limited(coros: list[Any], limit: int = PARALLEL) -> None:
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


class Bench:
    """The testbed objects shared by every run."""

    def __init__(self, cp: ControlPlane, count: int) -> None:
        self.cp = cp
        self.api: RawApi = cp.admin
        self.count = count
        self.driver = cp.driver_name
        self.statedir: Path | None = None
        self.socket: Path | None = None

    async def prepare(self) -> None:
        drv = await self.cp.start_driver(attach=False, topology=True)
        self.statedir = drv.state_dir
        self.socket = drv.socket
        await self.cp.create_namespace(NS)
        await self.api.create(SC, objects.storage_class("bench", self.driver))
        await self.api.create(SC, objects.storage_class("other", "other.csi.example.com"))

    def _our_pvs(self, pvs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [pv for pv in pvs if pv["spec"].get("csi", {}).get("driver") == self.driver]

    async def reset(self) -> None:
        """Before a run: no claim of the bench class, no PV or volume of the driver."""
        pvs = self._our_pvs(await _list_all(self.api, PV))
        assert not pvs, f"{len(pvs)} PVs left over"
        assert self.statedir is not None
        assert not load_state(self.statedir).volumes, "volumes left over"

    def churn(self) -> Workload:
        async def run(proc: subprocess.Popen[bytes]) -> dict[str, float]:
            def alive() -> None:
                if proc.poll() is not None:
                    raise RuntimeError(f"provisioner exited with {proc.returncode}")

            names = [f"claim-{i:04d}" for i in range(self.count)]
            t0 = time.monotonic()
            await _gather_limited([self.api.create(CLAIMS, objects.pvc(n, "bench")) for n in names])

            async def all_bound() -> bool:
                alive()
                items = await _list_all(self.api, CLAIMS)
                bound = [c for c in items if c["status"].get("phase") == "Bound"]
                return len(bound) == self.count

            await wait_until(all_bound, 3600, "all claims Bound", interval=0.5)
            t1 = time.monotonic()
            await _gather_limited([self.api.delete(f"{CLAIMS}/{n}") for n in names])

            async def all_gone() -> bool:
                alive()
                pvs = self._our_pvs(await _list_all(self.api, PV))
                assert self.statedir is not None
                return not pvs and not load_state(self.statedir).volumes

            await wait_until(all_gone, 3600, "all PVs and volumes deleted", interval=0.5)
            t2 = time.monotonic()
            return {"provision phase s": t1 - t0, "delete phase s": t2 - t1}

        return run

    async def fill_caches(self, count: int) -> None:
        """``count`` static PVs and pending claims of another provisioner."""
        pvs = []
        for i in range(count):
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": f"static-{i:05d}",
                    "annotations": {"pv.kubernetes.io/provisioned-by": "other.csi.example.com"},
                    "labels": {"app": "bench", "tier": f"t{i % 10}"},
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"},
                    "csi": {
                        "driver": "other.csi.example.com",
                        "volumeHandle": f"vol-{i:05d}-0123456789abcdef",
                        "volumeAttributes": {"pool": "p1", "created": str(i)},
                    },
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "other",
                },
            }
            pvs.append(self.api.create(PV, pv))
        await _gather_limited(pvs, 64)
        claims = [
            self.api.create(CLAIMS, {**objects.pvc(f"other-{i:05d}", "other", size="1Gi")})
            for i in range(count)
        ]
        await _gather_limited(claims, 64)

    async def ceiling(self, count: int, tag: int = 0) -> float:
        """Claims per second the API server takes when a raw client sends the writes a
        provisioner makes per claim: an Event, the PV, a second Event, then a PV patch and
        the PV's deletion (unthrottled, 100 at a time, as many as the provisioners' workers)."""

        async def one(i: int) -> None:
            name = f"ceiling-{tag}-{i:05d}"
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{name}.", "namespace": NS},
                "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": NS, "name": name},
                "reason": "Provisioning",
                "message": "External provisioner is provisioning volume",
                "type": "Normal",
                "count": 1,
            }
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": name,
                    "annotations": {"pv.kubernetes.io/provisioned-by": "ceiling.example.com"},
                },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Mi"},
                    "csi": {"driver": "ceiling.example.com", "volumeHandle": name},
                    "persistentVolumeReclaimPolicy": "Delete",
                    "storageClassName": "ceiling",
                },
            }
            await self.api.create(f"/api/v1/namespaces/{NS}/events", event)
            await self.api.create(PV, pv)
            await self.api.create(f"/api/v1/namespaces/{NS}/events", event)
            await self.api.patch(f"{PV}/{name}", {"metadata": {"annotations": {"x": "y"}}})
            await self.api.delete(f"{PV}/{name}")

        t0 = time.monotonic()
        await _gather_limited([one(i) for i in range(count)], 100)
        return count / (time.monotonic() - t0)

    def cache(self, settle: float) -> Workload:
        async def run(proc: subprocess.Popen[bytes]) -> dict[str, float]:
            t0 = time.monotonic()
            name = f"probe-{int(t0 * 1000)}"
            probe = objects.pvc(name, "bench")
            # Annotated as kube-controller-manager would, so its backlog does not matter.
            probe["metadata"]["annotations"] = {
                "volume.kubernetes.io/storage-provisioner": self.driver
            }
            await self.api.create(CLAIMS, probe)

            async def provisioned() -> dict[str, Any] | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"provisioner exited with {proc.returncode}")
                for pv in self._our_pvs(await _list_all(self.api, PV)):
                    if pv["spec"]["claimRef"]["name"] == name:
                        return pv
                return None

            await wait_until(provisioned, 600, "the probe PV", interval=0.2)
            synced = time.monotonic() - t0
            await asyncio.sleep(settle)
            pv = await provisioned()
            assert pv is not None
            for path in (f"{CLAIMS}/{name}", f"{PV}/{pv['metadata']['name']}"):
                await self.api.delete(path)
                try:
                    await self.api.patch(path, {"metadata": {"finalizers": None}})
                except ApiError as exc:  # already gone: its finalizers were removed for us
                    if exc.status != 404:
                        raise
            assert self.socket is not None
            conn = await connect(str(self.socket))
            try:
                req = csi_pb2.DeleteVolumeRequest(volume_id=pv["spec"]["csi"]["volumeHandle"])
                await conn.controller.DeleteVolume(req, timeout=30)
            finally:
                await conn.close()
            return {"synced + first PV s": synced}

        return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--cache-count", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--workload",
        choices=["churn", "cache", "spread", "ceiling", "both", "all"],
        default="both",
    )
    parser.add_argument("--config", choices=[*CONFIGS, "both"], default="both")
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also measure the API server's ceiling (a raw client's writes of the same kinds) "
        "and report the churn throughput as a fraction of it",
    )
    parser.add_argument("-v", type=int, default=2, help="-v of both provisioners")
    parser.add_argument(
        "--kcm-qps",
        type=float,
        default=KCM_QPS,
        help="kube-controller-manager's client QPS (burst twice that): high, so that the PV "
        "binder is not the bottleneck; 0 keeps its default (20)",
    )
    args = parser.parse_args()
    precompile()  # installed packages have their bytecode; do not time the compiler
    go = go_binary("GO_CSI_PROVISIONER", "csi-provisioner")
    if go is None:
        sys.exit("the Go csi-provisioner is not built (testbed/build.sh)")
    configs = list(CONFIGS) if args.config == "both" else [args.config]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-provisioner-"))
    print(f"logs in {log_dir}")
    tables = []
    if args.workload in ("spread", "all"):
        tables.extend(await spread_tables(go, args.count, args.runs, args.v, log_dir / "spread"))
        if args.workload == "spread":
            print("\n\n".join(tables))
            return
    kcm = {"kcm_qps": args.kcm_qps, "kcm_burst": int(args.kcm_qps * 2)} if args.kcm_qps else {}
    async with ControlPlane(nodes=1, **kcm) as cp:  # type: ignore[arg-type]
        bench = Bench(cp, args.count)
        await bench.prepare()
        assert bench.socket is not None
        common = [
            f"--csi-address={bench.socket}",
            f"--kubeconfig={cp.kubeconfig('csi-provisioner')}",
            f"-v={args.v}",
        ]
        if args.workload in ("churn", "both", "all"):
            for name in configs:
                flags = [*common, *CONFIGS[name]]
                impls = [Impl("ours", ours("provisioner", *flags)), Impl("go", [go, *flags])]
                table = await compare(
                    f"provisioner, {args.count} claims bound and deleted, {name} flags "
                    f"({' '.join(CONFIGS[name]) or 'qps 5, burst 10'}; 100 workers)",
                    impls,
                    bench.churn(),
                    args.runs,
                    log_dir / name,
                    setup=bench.reset,
                    settle=True,
                    ops=args.count,
                )
                print(table, flush=True)
                tables.append(table)
        if args.ceiling or args.workload == "ceiling":
            best = max([await bench.ceiling(args.count, run) for run in range(max(1, args.runs))])
            lines = [f"API server ceiling: {best:.1f} claims/s (raw client, same kinds of writes)"]
            titles = [k[: -len(": provision phase s")] for k in RESULTS if "phase" in k]
            for title in dict.fromkeys(t for t in titles if "claims bound and deleted" in t):
                rates = {}
                for impl in ("ours", "go"):
                    phases = [
                        RESULTS[f"{title}: {p} phase s"][impl] for p in ("provision", "delete")
                    ]
                    rates[impl] = args.count / sum(x or float("nan") for x in phases)
                    lines.append(
                        f"{title}: {impl} {rates[impl]:.1f} claims/s = "
                        f"{rates[impl] / best:.2f} of the ceiling"
                    )
                record(f"{title}: fraction of ceiling", rates["ours"] / best, rates["go"] / best)
            record("API server ceiling claims/s", best, best)
            print("\n".join(lines), flush=True)
            tables.append("\n".join(lines))
        if args.workload in ("cache", "both", "all"):
            await bench.fill_caches(args.cache_count)
            flags = [*common, *CONFIGS["fast"]]
            impls = [Impl("ours", ours("provisioner", *flags)), Impl("go", [go, *flags])]
            table = await compare(
                f"provisioner idle with {args.cache_count} PVs and {args.cache_count} claims "
                "of another provisioner in the caches",
                impls,
                bench.cache(args.settle),
                args.runs,
                log_dir / "cache",
                setup=bench.reset,
            )
            print(table, flush=True)
            tables.append(table)
    print("\n\n".join(tables))


if __name__ == "__main__":
    asyncio.run(main())
