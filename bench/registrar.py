"""Benchmark: our node-driver-registrar vs the Go one: start-up to a usable socket, and RSS.

Workload: from process start until the registration socket answers GetInfo (as kubelet would
dial it), then hold for a settle period; the harness then reads the resident set size (steady
state), its peak and the CPU seconds.

The Go binary comes from GO_NODE_DRIVER_REGISTRAR or $CSI_SIDECARS_BIN_DIR/
csi-node-driver-registrar. It is not served by the Go module proxy this project uses; point
GO_NODE_DRIVER_REGISTRAR at a binary you have.

    python bench/registrar.py [--runs 7] [--settle 2]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Impl, compare, go_binary, ours, precompile, proc_cpu_s, wait_until

from csi_sidecars.csi.messages import pluginregistration_pb2, pluginregistration_pb2_grpc

DRIVER = "hostpath.csi.k8s.io"


def make_workload(reg_dir: Path, settle: float):  # type: ignore[no-untyped-def]
    reg_sock = reg_dir / f"{DRIVER}-reg.sock"

    async def workload(proc: subprocess.Popen[bytes]) -> dict[str, float]:
        t0 = time.monotonic()

        async def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}")
            if not reg_sock.exists():
                return False
            try:
                async with grpc.aio.insecure_channel(f"unix://{reg_sock}") as channel:
                    stub = pluginregistration_pb2_grpc.RegistrationStub(channel)
                    info = await stub.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=1)
                    return info.name == DRIVER
            except grpc.aio.AioRpcError:
                return False

        await wait_until(answers, 60, "registration socket")
        ready = time.monotonic() - t0
        ready_cpu = proc_cpu_s(proc.pid)
        await asyncio.sleep(settle)  # steady-state RSS (read by the harness) is the point
        return {"ready s": ready, "ready CPU s": ready_cpu}

    return workload


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    go = go_binary("GO_NODE_DRIVER_REGISTRAR", "csi-node-driver-registrar")
    if go is None:
        sys.exit("no Go node-driver-registrar: set GO_NODE_DRIVER_REGISTRAR to its path")
    precompile()
    with tempfile.TemporaryDirectory(prefix="bench-reg-") as tmp:
        sock = Path(tmp) / "csi.sock"
        reg_dir = Path(tmp) / "registry"
        reg_dir.mkdir()
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csi_sidecars.playground.driver",
                f"--endpoint=unix://{sock}",
                "--nodeid=node-1",
                f"--statedir={tmp}/state",
                f"--drivername={DRIVER}",
            ],
        )
        try:
            await wait_until(lambda: asyncio.sleep(0, sock.exists()), 30, "driver socket")
            flags = [
                f"--csi-address={sock}",
                "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-hostpath/csi.sock",
                f"--plugin-registration-path={reg_dir}",
            ]
            impls = [
                Impl("ours", ours("node-driver-registrar", *flags)),
                Impl("go", [go, *flags]),
            ]
            print(
                await compare(
                    "node-driver-registrar: start-up and RSS",
                    impls,
                    make_workload(reg_dir, args.settle),
                    args.runs,
                    Path(tmp) / "logs",
                )
            )
        finally:
            driver.terminate()
            driver.wait()


if __name__ == "__main__":
    asyncio.run(main())
