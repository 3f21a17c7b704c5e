"""Benchmark: our node bundle (one process) vs the Go node-driver-registrar + livenessprobe (two).

``csi-sidecars run --roles node-driver-registrar,livenessprobe`` against the two Go sidecars a
DaemonSet runs side by side, on the same driver. Workload: from start until both are usable
(the registration socket answers GetInfo and /healthz answers 200), then a settle period and the
resident set size (ours: the one process; Go: the sum of both), then N probes at concurrency C
through /healthz. CPU seconds and RSS peaks are summed over the Go processes too.

The Go binaries come from GO_NODE_DRIVER_REGISTRAR and GO_LIVENESSPROBE (or
$CSI_SIDECARS_BIN_DIR); they are not built by testbed/build.sh.

    python bench/node_bundle.py [--runs 5] [--settle 1] [--probes 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    REPO,
    Run,
    go_binary,
    precompile,
    proc_cpu_s,
    proc_status_mib,
    report,
    wait_until,
)

from csi_sidecars.csi.messages import pluginregistration_pb2, pluginregistration_pb2_grpc

DRIVER = "hostpath.csi.k8s.io"
HOST_SOCKET = "/var/lib/kubelet/plugins/csi-hostpath/csi.sock"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def registered(reg_sock: Path) -> bool:
    if not reg_sock.exists():
        return False
    try:
        async with grpc.aio.insecure_channel(f"unix://{reg_sock}") as channel:
            stub = pluginregistration_pb2_grpc.RegistrationStub(channel)
            info = await stub.GetInfo(pluginregistration_pb2.InfoRequest(), timeout=1)
            return info.name == DRIVER
    except grpc.aio.AioRpcError:
        return False


async def measure(
    argvs: list[list[str]], reg_sock: Path, port: int, args: argparse.Namespace, logs: Path
) -> Run:
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    start = time.monotonic()
    for i, argv in enumerate(argvs):
        with (logs / f"{i}.log").open("wb") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                for proc in procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
                try:
                    async with session.get(url) as resp:
                        return resp.status == 200 and await registered(reg_sock)
                except aiohttp.ClientError:
                    return False

            ready = await wait_until(healthy, 60, "both roles usable")
            ready_cpu = sum(proc_cpu_s(p.pid) for p in procs)
            await asyncio.sleep(args.settle)
            idle = sum(proc_status_mib(p.pid, "VmRSS") for p in procs)
            remaining = args.probes
            t0 = time.perf_counter()

            async def client() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with session.get(url) as resp:
                        await resp.read()

            await asyncio.gather(*(client() for _ in range(args.concurrency)))
            rate = args.probes / (time.perf_counter() - t0)
        wall = time.monotonic() - start
        rss = sum(proc_status_mib(p.pid, "VmRSS") for p in procs)
        peak = sum(proc_status_mib(p.pid, "VmHWM") for p in procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
    cpu = 0.0
    for proc in procs:
        _, _, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
        proc.returncode = 0
    extra = {"ready s": ready, "ready CPU s": ready_cpu, "idle RSS MiB": idle, "probes/s": rate}
    return Run(wall=wall, cpu=cpu, peak_rss_mib=peak, rss_mib=rss, extra=extra)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    go_reg = go_binary("GO_NODE_DRIVER_REGISTRAR", "csi-node-driver-registrar")
    go_probe = go_binary("GO_LIVENESSPROBE", "livenessprobe")
    if go_reg is None or go_probe is None:
        sys.exit("set GO_NODE_DRIVER_REGISTRAR and GO_LIVENESSPROBE to the Go binaries")
    precompile()
    with tempfile.TemporaryDirectory(prefix="bench-nb-") as tmp:
        sock = Path(tmp) / "csi.sock"
        registry = Path(tmp) / "registry"
        registry.mkdir()
        reg_sock = registry / f"{DRIVER}-reg.sock"
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
            results: dict[str, list[Run]] = {"ours (1 process)": [], "go (2 processes)": []}
            for i in range(args.runs):
                port = free_port()
                reg_flags = [
                    f"--kubelet-registration-path={HOST_SOCKET}",
                    f"--plugin-registration-path={registry}",
                ]
                ours = [
                    sys.executable,
                    "-m",
                    "csi_sidecars",
                    "run",
                    "--roles=node-driver-registrar,livenessprobe",
                    f"--csi-address={sock}",
                    *(f"--node-driver-registrar.{flag[2:]}" for flag in reg_flags),
                    f"--livenessprobe.http-endpoint=127.0.0.1:{port}",
                ]
                go = [
                    [go_reg, f"--csi-address={sock}", *reg_flags],
                    [go_probe, f"--csi-address={sock}", f"--http-endpoint=127.0.0.1:{port}"],
                ]
                order = [("ours (1 process)", [ours]), ("go (2 processes)", go)]
                for name, argvs in order if i % 2 == 0 else order[::-1]:
                    logs = Path(tmp) / "logs" / f"run{i}" / name.split()[0]
                    results[name].append(await measure(argvs, reg_sock, port, args, logs))
                    await wait_until(
                        lambda: asyncio.sleep(0, not reg_sock.exists()), 10, "socket removal"
                    )
            title = (
                "node bundle vs Go node-driver-registrar + livenessprobe "
                f"({args.probes} probes, concurrency {args.concurrency})"
            )
            print(report(title, results, "ours (1 process)", "go (2 processes)"))
        finally:
            driver.terminate()
            driver.wait()


if __name__ == "__main__":
    asyncio.run(main())
