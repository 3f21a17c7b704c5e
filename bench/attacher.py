"""Benchmark: our attacher vs the Go external-attacher: N VolumeAttachments attached and detached.

The attacher is isolated from everything else: a testbed control plane (the attach/detach
controller ignores VolumeAttachments it did not create), the playground driver with attach
enabled, N volumes created in the driver and N static PVs, created once. Each run starts the
attacher, waits until it is idle (start-up done), creates the N VAs through the API (32 at a
time), waits until all are attached, deletes them, waits until all are gone, and checks the
driver has no publication left. Before each run the attacher's PV finalizers are removed so
every run does the same writes. ``workload CPU ms per op`` is the CPU from the idle point until
idle again after the last detach, per VolumeAttachment; ``cpu s`` is the whole run's.

Both implementations get the same flags; two flag sets are measured: the defaults
(``--kube-api-qps=5 --kube-api-burst=10 --worker-threads=10``) and
``--kube-api-qps=100 --kube-api-burst=200 --worker-threads=50``.

    python bench/attacher.py [--count 200] [--runs 1] [--config default|fast|both]
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
from harness import Impl, Workload, compare, go_binary, ours, precompile, wait_until

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.driver import load_state

VA = "/apis/storage.k8s.io/v1/volumeattachments"
PV = "/api/v1/persistentvolumes"
CONFIGS = {
    "default": (),
    "fast": ("--kube-api-qps=100", "--kube-api-burst=200", "--worker-threads=50"),
}
PARALLEL = 32


async def _gather_limited(coros: list[Any], limit: int = PARALLEL) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> None:
        async with sem:
            await coro

    await asyncio.gather(*(one(c) for c in coros))


def _pv(name: str, driver: str, handle: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Mi"},
            "csi": {"driver": driver, "volumeHandle": handle},
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
        },
    }


def _va(name: str, driver: str, pv: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "VolumeAttachment",
        "metadata": {"name": name},
        "spec": {"attacher": driver, "nodeName": node, "source": {"persistentVolumeName": pv}},
    }


class Bench:
    """The testbed objects shared by every run."""

    def __init__(self, cp: ControlPlane, count: int) -> None:
        self.cp = cp
        self.api: RawApi = cp.admin
        self.count = count
        self.driver = cp.driver_name
        self.node = cp.node_names[0]
        self.pvs = [f"bench-pv-{i:04d}" for i in range(count)]
        self.statedir: Path | None = None

    async def prepare(self) -> None:
        drv = await self.cp.start_driver(attach=True, topology=False)
        self.statedir = drv.state_dir
        self.socket = drv.socket
        conn = await connect(str(drv.socket))
        cap = csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
        )

        async def one(name: str) -> None:
            req = csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[cap])
            resp = await conn.controller.CreateVolume(req, timeout=30)
            await self.api.create(PV, _pv(name, self.driver, resp.volume.volume_id))

        await _gather_limited([one(n) for n in self.pvs])
        await conn.close()

    async def reset(self) -> None:
        """Before a run: no VAs, no attacher finalizer on the PVs."""
        items = (await self.api.get(PV))["items"]
        patches = []
        for pv in items:
            fins = pv["metadata"].get("finalizers") or []
            kept = [f for f in fins if not f.startswith("external-attacher/")]
            if kept != fins:
                patches.append(
                    self.api.patch(
                        f"{PV}/{pv['metadata']['name']}", {"metadata": {"finalizers": kept}}
                    )
                )
        await _gather_limited(patches)
        assert not (await self.api.get(VA))["items"], "VolumeAttachments left over"

    async def _count(self, attached: bool | None) -> int:
        items = (await self.api.get(VA))["items"]
        if attached is None:
            return len(items)
        return sum(1 for va in items if bool(va.get("status", {}).get("attached")) == attached)

    def workload(self) -> Workload:
        async def run(proc: subprocess.Popen[bytes]) -> dict[str, float]:
            def alive() -> None:
                if proc.poll() is not None:
                    raise RuntimeError(f"attacher exited with {proc.returncode}")

            t0 = time.monotonic()
            await _gather_limited(
                [
                    self.api.create(VA, _va(f"va-{pv}", self.driver, pv, self.node))
                    for pv in self.pvs
                ]
            )

            async def all_attached() -> bool:
                alive()
                return await self._count(True) == self.count

            await wait_until(all_attached, 900, "all attached", interval=0.1)
            t1 = time.monotonic()
            await _gather_limited([self.api.delete(f"{VA}/va-{pv}") for pv in self.pvs])

            async def none_left() -> bool:
                alive()
                return await self._count(None) == 0

            await wait_until(none_left, 900, "all detached", interval=0.1)
            t2 = time.monotonic()
            assert self.statedir is not None
            left = [v for v in load_state(self.statedir).volumes.values() if v.attached]
            assert not left, f"{len(left)} volumes still published"
            return {"attach phase s": t1 - t0, "detach phase s": t2 - t1}

        return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--config", choices=[*CONFIGS, "both"], default="both")
    parser.add_argument("-v", type=int, default=2, help="-v of both attachers")
    args = parser.parse_args()
    precompile()  # installed packages have their bytecode; do not time the compiler
    go = go_binary("GO_CSI_ATTACHER", "csi-attacher")
    if go is None:
        sys.exit("the Go csi-attacher is not built (testbed/build.sh)")
    configs = list(CONFIGS) if args.config == "both" else [args.config]
    async with ControlPlane(nodes=1) as cp:
        bench = Bench(cp, args.count)
        await bench.prepare()
        common = [
            f"--csi-address={bench.socket}",
            f"--kubeconfig={cp.kubeconfig('csi-attacher')}",
            f"-v={args.v}",
        ]
        log_dir = Path(tempfile.mkdtemp(prefix="bench-attacher-"))
        for name in configs:
            flags = [*common, *CONFIGS[name]]
            impls = [Impl("ours", ours("attacher", *flags)), Impl("go", [go, *flags])]
            table = await compare(
                f"attacher, {args.count} VolumeAttachments, {name} flags "
                f"({' '.join(CONFIGS[name]) or 'qps 5, burst 10, 10 workers'})",
                impls,
                bench.workload(),
                args.runs,
                log_dir / name,
                setup=bench.reset,
                settle=True,
                ops=args.count,
            )
            print(table, flush=True)
            print(flush=True)
        print(f"logs: {log_dir}")


if __name__ == "__main__":
    asyncio.run(main())
