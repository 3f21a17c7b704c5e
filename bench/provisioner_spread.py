"""The ``spread`` workload of bench/provisioner.py: WaitForFirstConsumer claims with pods on three
nodes, central provisioner vs one provisioner per node (``--node-deployment``), ours vs Go.

One control plane with three nodes (pods allowed: 1000 each) serves all runs. Two drivers
names share it: ``spread-central`` (one driver process standing in for the three nodes,
``--known-node``) for the central runs, ``spread-node`` (one driver process per node) for the
node deployment runs; every CSINode lists both. A run starts the provisioner(s), creates N
claims and N pods, waits until every claim is Bound, deletes pods and claims, and waits until no
PV of the driver and no driver volume is left. Every process is measured with ``wait4`` (CPU,
peak RSS as ``VmHWM``); the node deployment's three are summed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harness import REPO, Run, high_water_mib, ours, report, wait_until

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state

NS = "spread"
CLAIMS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
PODS = f"/api/v1/namespaces/{NS}/pods"
PV = "/api/v1/persistentvolumes"
SC = "/apis/storage.k8s.io/v1/storageclasses"
CENTRAL, NODE = "spread-central.csi.test", "spread-node.csi.test"
PARALLEL = 32

Procs = list[tuple[list[str], dict[str, str]]]


async def _limited(coros: list[Awaitable[Any]], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


async def _list(api: RawApi, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        page = await api.get(path, limit="500", **({"continue": token} if token else {}))
        items.extend(page["items"])
        token = page["metadata"].get("continue") or ""
        if not token:
            return items


class Spread:
    """The three-node testbed of the workload."""

    def __init__(self, cp: ControlPlane, count: int) -> None:
        self.cp = cp
        self.api = cp.admin
        self.count = count
        self.sockets: dict[str, Path] = {}  # "central" and each node -> driver socket
        self.statedirs: dict[str, list[Path]] = {CENTRAL: [], NODE: []}

    async def _driver(self, key: str, name: str, node: str, extra: list[str]) -> None:
        base = self.cp.work_dir / "spread" / key
        (base / "state").mkdir(parents=True, exist_ok=True)
        sock = base / "csi.sock"
        await self.cp.start_process(
            f"driver-{key}",
            [sys.executable, "-m", "csi_sidecars.playground.driver", f"--endpoint=unix://{sock}",
             f"--nodeid={node}", f"--drivername={name}", f"--statedir={base / 'state'}", *extra],
        )  # fmt: skip

        async def listening() -> bool:
            return sock.exists()

        await wait_until(listening, 30, f"the socket of driver {key}", interval=0.05)
        self.sockets[key] = sock
        self.statedirs[name].append(base / "state")

    async def prepare(self) -> None:
        api = self.api
        status = objects.node_status(pods="1000")
        for node in self.cp.node_names:
            await api.patch(f"/api/v1/nodes/{node}/status", status)
        known = [f"--known-node={n}" for n in self.cp.node_names[1:]]
        await self._driver("central", CENTRAL, self.cp.node_names[0], known)
        for node in self.cp.node_names:
            await self._driver(node, NODE, node, [])
        for name in (CENTRAL, NODE):
            await api.ensure("/apis/storage.k8s.io/v1/csidrivers",
                             objects.csidriver(name, attach_required=False))  # fmt: skip
            for node in self.cp.node_names:
                await self.cp.register_driver(node, driver_name=name)
            late = objects.storage_class(name, name, binding_mode="WaitForFirstConsumer")
            await api.create(SC, late)
        await self.cp.create_namespace(NS)

    def procs(self, impl: str, go: str, mode: str, verbosity: int) -> Procs:
        kubeconfig = f"--kubeconfig={self.cp.kubeconfig('csi-provisioner')}"
        common = [kubeconfig, f"-v={verbosity}"]

        def argv(socket: Path, *extra: str) -> list[str]:
            flags = [f"--csi-address={socket}", *common, *extra]
            return ours("provisioner", *flags) if impl == "ours" else [go, *flags]

        if mode == "central":
            return [(argv(self.sockets["central"]), {})]
        return [(argv(self.sockets[n], "--node-deployment"), {"NODE_NAME": n,
                                                               "POD_NAMESPACE": "default"})
                for n in self.cp.node_names]  # fmt: skip

    async def _volumes(self, name: str) -> dict[str, int]:
        """The driver volumes of ``name`` by node."""
        out: dict[str, int] = {}
        for statedir in self.statedirs[name]:
            for vol in load_state(statedir).volumes.values():
                node = next((t.get(objects.TOPOLOGY_KEY) for t in vol.topology), "?") or "?"
                out[node] = out.get(node, 0) + 1
        return out

    async def clean(self, name: str) -> None:
        pvs = [pv for pv in await _list(self.api, PV) if pv["spec"]["csi"]["driver"] == name]
        assert not pvs and not await self._volumes(name), "left over from an earlier run"

    async def workload(self, name: str, alive: Callable[[], None]) -> dict[str, float]:
        api, names = self.api, [f"c{i:04d}" for i in range(self.count)]
        t0 = time.monotonic()
        await _limited([api.create(CLAIMS, objects.pvc(n, name)) for n in names])
        await _limited([api.create(PODS, objects.pod(n, [n])) for n in names])

        async def bound() -> bool:
            alive()
            claims = await _list(api, CLAIMS)
            return sum(c["status"].get("phase") == "Bound" for c in claims) == self.count

        await wait_until(bound, 3600, "every claim Bound", interval=0.5)
        t1 = time.monotonic()
        spread = await self._volumes(name)
        await _limited([api.delete(f"{PODS}/{n}") for n in names])
        await _limited([api.delete(f"{CLAIMS}/{n}") for n in names])

        async def gone() -> bool:
            alive()
            pvs = [pv for pv in await _list(api, PV) if pv["spec"]["csi"]["driver"] == name]
            return not pvs and not await self._volumes(name)

        await wait_until(gone, 3600, "every PV and volume deleted", interval=0.5)
        t2 = time.monotonic()
        extra = {"provision phase s": t1 - t0, "delete phase s": t2 - t1}
        extra.update({f"volumes on {n}": float(c) for n, c in sorted(spread.items())})
        return extra


async def measure_all(procs: Procs, workload: Callable[..., Awaitable[dict[str, float]]],
                      name: str, log_dir: Path) -> Run:  # fmt: skip
    """Start every process, run the workload, stop them; CPU and peak RSS summed."""
    log_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for i, (argv, env) in enumerate(procs):
        log = (log_dir / f"{i}.log").open("wb")
        started.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **env}, cwd=REPO), log))  # fmt: skip

    def alive() -> None:
        for proc, _ in started:
            if proc.poll() is not None:
                raise RuntimeError(f"a provisioner exited with {proc.returncode}")

    start = time.monotonic()
    try:
        extra = await workload(name, alive)
    except BaseException:
        for proc, _ in started:
            proc.kill()
            os.wait4(proc.pid, 0)
        raise
    wall = time.monotonic() - start
    cpu = rss = 0.0
    for proc, log in started:
        hwm = high_water_mib(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, _, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
        proc.returncode = 0
        cpu += usage.ru_utime + usage.ru_stime
        rss += hwm if hwm is not None else usage.ru_maxrss / 1024.0
        log.close()
    return Run(wall=wall, cpu=cpu, peak_rss_mib=rss, extra=extra)


async def spread_tables(go: str, count: int, runs: int, verbosity: int, log_dir: Path) -> list[str]:
    """Both modes, ours vs Go; the report tables."""
    tables = []
    async with ControlPlane(nodes=3) as cp:
        bed = Spread(cp, count)
        await bed.prepare()
        for mode, name in (("central", CENTRAL), ("node deployment", NODE)):
            results: dict[str, list[Run]] = {"ours": [], "go": []}
            for i in range(runs):
                order = ["ours", "go"] if i % 2 == 0 else ["go", "ours"]
                for impl in order:
                    await bed.clean(name)
                    procs = bed.procs(impl, go, "central" if mode == "central" else "node",
                                      verbosity)  # fmt: skip
                    where = log_dir / mode.replace(" ", "-") / f"run{i}-{impl}"
                    results[impl].append(await measure_all(procs, bed.workload, name, where))
            title = (f"provisioner, {count} WaitForFirstConsumer claims with pods on 3 nodes, "
                     f"{mode} (Go default flags)")  # fmt: skip
            table = report(title, results, "ours", "go")
            print(table, flush=True)
            tables.append(table)
    return tables
