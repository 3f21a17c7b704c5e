"""Benchmark: our livenessprobe vs the Go livenessprobe against the same driver.

Workload: once /healthz answers 200, wait a settle period and read the idle resident set size,
then send N probes with C concurrent clients; report probes per second and p50/p99 latency, plus
(from the harness) CPU seconds and the RSS after the probes and its peak. Each probe opens a new
driver connection in both implementations (Go's model since v2.1.0).

The Go binary comes from GO_LIVENESSPROBE or $CSI_SIDECARS_BIN_DIR/livenessprobe. It is not
served by the Go module proxy this project uses, so it is not built by testbed/build.sh; point
GO_LIVENESSPROBE at a binary you have.

    python bench/livenessprobe.py [--probes 2000] [--concurrency 8] [--runs 5] [--settle 1]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    Impl,
    compare,
    go_binary,
    ours,
    precompile,
    proc_cpu_s,
    proc_status_mib,
    wait_until,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_workload(  # type: ignore[no-untyped-def]
    port: int, probes: int, concurrency: int, settle: float
):
    url = f"http://127.0.0.1:{port}/healthz"

    async def workload(proc: subprocess.Popen[bytes]) -> dict[str, float]:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"process exited with {proc.returncode}")
                try:
                    async with session.get(url) as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            ready = await wait_until(healthy, 60, "healthz 200")
            ready_cpu = proc_cpu_s(proc.pid)
            await asyncio.sleep(settle)  # idle RSS is measured after start-up has settled
            idle_rss = proc_status_mib(proc.pid, "VmRSS")
            latencies: list[float] = []
            failures = 0
            remaining = probes

            async def client() -> None:
                nonlocal remaining, failures
                while remaining > 0:
                    remaining -= 1
                    t0 = time.perf_counter()
                    async with session.get(url) as resp:
                        await resp.read()
                        if resp.status != 200:
                            failures += 1
                    latencies.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t0
        latencies.sort()
        return {
            "ready s": ready,
            "ready CPU s": ready_cpu,
            "idle RSS MiB": idle_rss,
            "probes/s": len(latencies) / elapsed,
            "p50 ms": latencies[len(latencies) // 2] * 1000,
            "p99 ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "failed": float(failures),
        }

    return workload


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=1.0)
    args = parser.parse_args()
    go = go_binary("GO_LIVENESSPROBE", "livenessprobe")
    if go is None:
        sys.exit("no Go livenessprobe: set GO_LIVENESSPROBE to its path")
    precompile()
    with tempfile.TemporaryDirectory(prefix="bench-lp-") as tmp:
        sock = Path(tmp) / "csi.sock"
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "csi_sidecars.playground.driver",
                f"--endpoint=unix://{sock}",
                "--nodeid=node-1",
                f"--statedir={tmp}/state",
            ],
        )
        try:
            await wait_until(lambda: asyncio.sleep(0, sock.exists()), 30, "driver socket")
            port = free_port()
            flags = [f"--csi-address={sock}", f"--http-endpoint=127.0.0.1:{port}"]
            impls = [Impl("ours", ours("livenessprobe", *flags)), Impl("go", [go, *flags])]
            table = await compare(
                f"livenessprobe: {args.probes} probes, concurrency {args.concurrency}",
                impls,
                make_workload(port, args.probes, args.concurrency, args.settle),
                args.runs,
                Path(tmp) / "logs",
            )
            print(table)
        finally:
            driver.terminate()
            driver.wait()


if __name__ == "__main__":
    asyncio.run(main())
