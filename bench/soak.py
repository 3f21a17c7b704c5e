"""Soak: provisioner RSS while claims are churned (created, bound, deleted) round after round.

One testbed control plane (kube-controller-manager with a raised client QPS so the PV binder
keeps up), the playground driver, and one provisioner process (ours, Go, or each in turn) with
``--kube-api-qps=100 --kube-api-burst=200``. Each round creates ``--per-round`` claims of an
Immediate class, waits until all are Bound, deletes them and waits until their PVs and volumes
are gone. Every ``--every`` claims the provisioner's resident set (``VmRSS``) and CPU seconds
are printed; at the end, the growth from the first mark to the last. A process that keeps
nothing per finished claim stays flat.

``--tracemalloc DIR`` runs our provisioner with tracemalloc on and makes it write a snapshot at
every mark (SIGUSR1) into DIR; ``--diff A B`` prints what grew between two snapshots::

    python bench/soak.py [--claims 10000] [--per-round 40] [--every 1000] [--impl ours|go|both]
    python bench/soak.py --claims 3000 --tracemalloc /tmp/snaps
    python bench/soak.py --diff /tmp/snaps/1000.snap /tmp/snaps/3000.snap
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import REPO, go_binary, ours, record, wait_until

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state

PV = "/api/v1/persistentvolumes"
SC = "/apis/storage.k8s.io/v1/storageclasses"
NS = "soak"
CLAIMS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
FLAGS = ("--kube-api-qps=100", "--kube-api-burst=200")
KCM_QPS = 1000
KCM_BURST = 2000
PARALLEL = 32

#: Runs our provisioner with tracemalloc on; SIGUSR1 writes a snapshot to DIR/<n>.snap, where
#: n is read from DIR/next (the soak writes the claim count there first).
TRACED = """
import os, runpy, signal, sys, tracemalloc
out = sys.argv.pop(1)
tracemalloc.start(12)
def snap(*_):
    with open(os.path.join(out, "next")) as f:
        name = f.read().strip()
    tracemalloc.take_snapshot().dump(os.path.join(out, name + ".snap"))
    open(os.path.join(out, name + ".done"), "w").close()
signal.signal(signal.SIGUSR1, snap)
sys.argv[0] = "csi_sidecars"
runpy.run_module("csi_sidecars", run_name="__main__", alter_sys=True)
"""


async def _gather_limited(coros: list[Any], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def _proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (MiB) and CPU seconds of a running process."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    out["cpu"] = (int(fields[11]) + int(fields[12])) / ticks
    return out


class Soak:
    """The testbed objects and the churn rounds."""

    def __init__(self, cp: ControlPlane, per_round: int) -> None:
        self.cp = cp
        self.api: RawApi = cp.admin
        self.per_round = per_round
        self.driver = cp.driver_name
        self.statedir: Path | None = None
        self.socket: Path | None = None
        self.rounds = 0

    async def prepare(self) -> None:
        drv = await self.cp.start_driver(attach=False, topology=True)
        self.statedir = drv.state_dir
        self.socket = drv.socket
        await self.cp.create_namespace(NS)
        await self.api.create(SC, objects.storage_class("soak", self.driver))

    async def _our_pvs(self) -> int:
        items = (await self.api.get(PV))["items"]
        return sum(1 for pv in items if pv["spec"].get("csi", {}).get("driver") == self.driver)

    async def round(self, proc: subprocess.Popen[bytes]) -> None:
        """Create, bind and delete one round of claims."""

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError(f"provisioner exited with {proc.returncode}")

        self.rounds += 1
        names = [f"c{self.rounds:05d}-{i:03d}" for i in range(self.per_round)]
        await _gather_limited([self.api.create(CLAIMS, objects.pvc(n, "soak")) for n in names])

        async def all_bound() -> bool:
            alive()
            items = (await self.api.get(CLAIMS))["items"]
            return sum(1 for c in items if c["status"].get("phase") == "Bound") == len(names)

        await wait_until(all_bound, 600, "all claims Bound", interval=0.1)
        await _gather_limited([self.api.delete(f"{CLAIMS}/{n}") for n in names])

        async def all_gone() -> bool:
            alive()
            assert self.statedir is not None
            if await self._our_pvs() or load_state(self.statedir).volumes:
                return False
            return not (await self.api.get(CLAIMS))["items"]

        await wait_until(all_gone, 600, "all PVs and volumes deleted", interval=0.1)


async def _snapshot(proc: subprocess.Popen[bytes], out: Path, claims: int) -> None:
    (out / "next").write_text(str(claims))
    done = out / f"{claims}.done"
    proc.send_signal(signal.SIGUSR1)

    async def written() -> bool:
        return done.exists()

    await wait_until(written, 300, "the tracemalloc snapshot", interval=0.2)


async def soak_one(
    soak: Soak, name: str, argv: list[str], args: argparse.Namespace, log_dir: Path
) -> list[tuple[int, dict[str, float]]]:
    """Run the rounds against one implementation; the marks (claims, status)."""
    marks: list[tuple[int, dict[str, float]]] = []
    with (log_dir / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            t0 = time.monotonic()
            print(f"\n## {name}\n\n| claims | RSS MiB | peak RSS MiB | CPU s | wall s |")
            print("|---:|---:|---:|---:|---:|", flush=True)
            done = 0
            while done < args.claims:
                await soak.round(proc)
                done += soak.per_round
                if done % args.every == 0 or done >= args.claims:
                    if args.tracemalloc and name == "ours":
                        await _snapshot(proc, Path(args.tracemalloc), done)
                    st = _proc_status(proc.pid)
                    marks.append((done, st))
                    wall = time.monotonic() - t0
                    print(
                        f"| {done} | {st['VmRSS']:.1f} | {st['VmHWM']:.1f} | {st['cpu']:.1f} "
                        f"| {wall:.0f} |",
                        flush=True,
                    )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    first, last = marks[0], marks[-1]
    growth = last[1]["VmRSS"] - first[1]["VmRSS"]
    per_claim = (last[1]["cpu"] - first[1]["cpu"]) / max(1, last[0] - first[0])
    print(
        f"\n{name}: RSS {first[1]['VmRSS']:.1f} -> {last[1]['VmRSS']:.1f} MiB "
        f"({growth:+.1f} MiB) from {first[0]} to {last[0]} claims; "
        f"{per_claim * 1000:.2f} CPU ms per claim",
        flush=True,
    )
    return marks


def diff(a: str, b: str, top: int = 25) -> None:
    """Print the allocation sites that grew most between two snapshots."""
    old = tracemalloc.Snapshot.load(a)
    new = tracemalloc.Snapshot.load(b)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = new.filter_traces(keep).compare_to(old.filter_traces(keep), "traceback")
    print(f"total: {sum(s.size_diff for s in stats) / 1024:+.1f} KiB")
    for stat in stats[:top]:
        print(f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
        for line in stat.traceback.format()[-8:]:
            print("   ", line)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=10000)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--impl", choices=["ours", "go", "both"], default="ours")
    parser.add_argument("--tracemalloc", metavar="DIR", help="snapshots of ours at every mark")
    parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="compare two snapshots")
    parser.add_argument("-v", type=int, default=2, help="-v of the provisioner")
    args = parser.parse_args()
    if args.diff:
        diff(*args.diff)
        return
    if args.every % args.per_round:
        sys.exit("--every must be a multiple of --per-round")
    impls = ["ours", "go"] if args.impl == "both" else [args.impl]
    go = go_binary("GO_CSI_PROVISIONER", "csi-provisioner")
    if "go" in impls and go is None:
        sys.exit("the Go csi-provisioner is not built (testbed/build.sh)")
    if args.tracemalloc:
        Path(args.tracemalloc).mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    print(f"logs in {log_dir}")
    growth: dict[str, float] = {}
    cpu: dict[str, float] = {}
    async with ControlPlane(nodes=1, kcm_qps=KCM_QPS, kcm_burst=KCM_BURST) as cp:
        soak = Soak(cp, args.per_round)
        await soak.prepare()
        assert soak.socket is not None
        flags = [
            f"--csi-address={soak.socket}",
            f"--kubeconfig={cp.kubeconfig('csi-provisioner')}",
            f"-v={args.v}",
            *FLAGS,
        ]
        for name in impls:
            if name == "go":
                assert go is not None
                argv = [go, *flags]
            elif args.tracemalloc:
                argv = [sys.executable, "-c", TRACED, args.tracemalloc, "provisioner", *flags]
            else:
                argv = ours("provisioner", *flags)
            marks = await soak_one(soak, name, argv, args, log_dir)
            (c0, first), (c1, last) = marks[0], marks[-1]
            growth[name] = last["VmRSS"] - first["VmRSS"]
            cpu[name] = (last["cpu"] - first["cpu"]) / max(1, c1 - c0)
    title = f"soak, {args.per_round} claims a round, {args.claims} claims"
    record(f"{title}: RSS growth MiB", growth.get("ours", float("nan")), growth.get("go", 0.0))
    record(f"{title}: CPU s per claim", cpu.get("ours", float("nan")), cpu.get("go", 0.0))


if __name__ == "__main__":
    asyncio.run(main())
