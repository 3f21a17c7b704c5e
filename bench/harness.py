"""Side-by-side benchmark harness: the same workload against our role and the Go sidecar.

A benchmark describes how to start each implementation (argv) and an async workload that runs
against the started process and returns its own numbers (throughput, latencies, ...). The harness
alternates the two implementations for several runs, measures each process (CPU seconds from
``os.wait4``; resident set size at the end of the workload and its peak, from
``/proc/<pid>/status``) plus wall time of the workload, and prints medians and ratios (ours / Go).
Benchmarks are not tests: they do not run in CI.

Every bench script takes ``--json`` (handled here, at import, so each script's own argument
parser never sees it): at exit the last line printed is one JSON object
``{"<title>: <metric>": {"ours": x, "go": y, "ratio": r}, ...}`` with every median a report
showed, so runs can be compared by a program. Scripts with numbers of their own add them with
:func:`record`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: Every median reported in this process: "title: metric" -> {"ours", "go", "ratio"}.
RESULTS: dict[str, dict[str, float | None]] = {}


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def record(name: str, ours: float, go: float) -> None:
    """Add one metric to the ``--json`` line."""
    ratio = ours / go if go else float("nan")
    RESULTS[name] = {"ours": _number(ours), "go": _number(go), "ratio": _number(ratio)}


def _print_json() -> None:
    print(json.dumps(RESULTS, sort_keys=True), flush=True)


if "--json" in sys.argv[1:]:
    sys.argv = [a for a in sys.argv if a != "--json"]
    atexit.register(_print_json)


@dataclass
class Run:
    """What one run of one implementation measured."""

    wall: float
    cpu: float
    peak_rss_mib: float
    rss_mib: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Impl:
    """One implementation under test: a name and how to start it."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None


Workload = Callable[[subprocess.Popen[bytes]], Awaitable[dict[str, float]]]


_profiles = 0
#: cProfile timed by the main thread's CPU clock: neither waits nor time the process was not
#: scheduled (the machine is shared) are counted, nor the gRPC threads.
_CPROFILE = """
import cProfile, runpy, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "csi_sidecars"
prof = cProfile.Profile(time.thread_time)
try:
    prof.runcall(runpy.run_module, "csi_sidecars", run_name="__main__", alter_sys=True)
finally:
    prof.dump_stats(out)
"""


def ours(role: str, *args: str) -> list[str]:
    """argv that runs one of our roles as a container would.

    With ``BENCH_PROFILE=<dir>`` in the environment the role runs under pyinstrument (not a
    dependency: ``pip install pyinstrument``) and each process writes its profile as text to
    ``<dir>/<role>-<n>.txt``; with ``BENCH_PROFILER=cprofile`` too, cProfile writes
    ``<dir>/<role>-<n>.prof`` instead, timed by the main thread's CPU clock (a coroutine's
    awaits and the time the process was not scheduled do not count, unlike pyinstrument's
    wall clock). CPU numbers of such a run include
    the profiler's cost.
    """
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return [sys.executable, "-m", "csi_sidecars", role, *args]
    global _profiles
    _profiles += 1
    Path(out).mkdir(parents=True, exist_ok=True)
    if os.environ.get("BENCH_PROFILER") == "cprofile":  # CPU in each function, not waits
        target = Path(out) / f"{role}-{_profiles}.prof"
        return [sys.executable, "-c", _CPROFILE, str(target), role, *args]
    else:
        target = Path(out) / f"{role}-{_profiles}.txt"
        profiler = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(target)]
    return [*profiler, "-m", "csi_sidecars", role, *args]


def precompile() -> None:
    """Write the package's bytecode, as installing it does (pip compiles on install).

    Without it every start would compile the package from source: this checkout may run with
    ``PYTHONDONTWRITEBYTECODE`` set, and a start-up benchmark would then measure the compiler.
    """
    import compileall

    compileall.compile_dir(str(REPO / "csi_sidecars"), quiet=1)


def go_binary(env_var: str, default_name: str) -> str | None:
    """Path of a Go sidecar binary: ``$env_var``, else ``$CSI_SIDECARS_BIN_DIR/default_name``."""
    path = os.environ.get(env_var)
    if path:
        return path
    bin_dir = os.environ.get("CSI_SIDECARS_BIN_DIR") or str(
        Path(os.environ.get("CSI_SIDECARS_CACHE", Path.home() / ".cache" / "csi-sidecars")) / "bin"
    )
    candidate = Path(bin_dir) / default_name
    return str(candidate) if candidate.exists() else None


def _rusage_of(pid: int) -> tuple[float, float, float]:
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, usage.ru_stime


def threads_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid`` by ``name/tid`` (empty if gone)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = f"{stat[stat.index('(') + 1 : stat.rindex(')')]}/{task.name}"
        fields = stat.rpartition(")")[2].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far; NaN if gone.

    Unlike wall time it does not grow when other processes load the machine, so "CPU seconds
    until ready" compares start-up cost fairly on a shared machine.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_mib(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MiB; NaN if gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def high_water_mib(pid: int) -> float | None:
    """The process's own peak RSS (``VmHWM``) in MiB, or None when it cannot be read.

    ``ru_maxrss`` from ``wait4`` also counts the moment between fork and exec, when the child
    still is a copy of this (possibly large) bench process; ``VmHWM`` starts again at exec.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


async def settle_cpu(
    cpu: Callable[[], float],
    quiet: float = 0.05,
    window: float = 2.0,
    limit: float = 600.0,
    what: str = "the sidecar",
) -> float:
    """Wait until ``cpu()`` grows by less than ``quiet`` s per ``window``; seconds waited.

    ``cpu`` gives the CPU seconds so far of the processes watched (NaN once one is gone). A
    started sidecar is idle once its caches are synced and its start-up work is done; the CPU it
    uses after that point is the workload's.

    Raises:
        TimeoutError: when they never go idle within ``limit`` seconds.
        RuntimeError: when a process is gone.
    """
    t0 = time.monotonic()
    last = cpu()
    while time.monotonic() - t0 < limit:
        await asyncio.sleep(window)
        now = cpu()
        if math.isnan(now):
            raise RuntimeError(f"{what} exited before it went idle")
        if now - last < quiet:
            return time.monotonic() - t0
        last = now
    raise TimeoutError(f"{what} never went idle in {limit}s")


async def measure(
    impl: Impl, workload: Workload, log_dir: Path, settle: bool = False, ops: int = 0
) -> Run:
    """Start ``impl``, run ``workload`` against it, stop it with SIGTERM and measure it.

    With ``settle`` the workload starts only once the process is idle (its start-up done) and
    the process is let go idle again after it: ``wall s`` is then the workload's alone, and the
    extra rows ``CPU s to idle`` and ``workload CPU s`` split the whole run's CPU into start-up
    and work; with ``ops`` the work is also given per operation (``workload CPU ms per op``).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{impl.name}.log"
    env = {**os.environ, **(impl.env or {})}
    settled: dict[str, float] = {}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(impl.argv), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        start = time.monotonic()
        try:
            if settle:
                cpu = functools.partial(proc_cpu_s, proc.pid)
                settled["s to idle"] = await settle_cpu(cpu)
                idle_cpu = cpu()
                settled["CPU s to idle"] = idle_cpu
                start = time.monotonic()
            extra = await workload(proc)
            wall = time.monotonic() - start
            if settle:
                await settle_cpu(cpu, window=1.0)
                work = cpu() - idle_cpu
                settled["workload CPU s"] = work
                if ops:
                    settled["workload CPU ms per op"] = work * 1000.0 / ops
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        extra.update(settled)
        hwm = high_water_mib(proc.pid)
        now_rss = proc_status_mib(proc.pid, "VmRSS")
        if os.environ.get("BENCH_THREADS"):
            print(f"{impl.name} threads CPU s: {threads_cpu_s(proc.pid)}", flush=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        cpu, rss, sys_cpu = await asyncio.to_thread(_rusage_of, proc.pid)
        extra["sys cpu s"] = sys_cpu
        proc.returncode = 0
    peak = hwm if hwm is not None else rss
    return Run(wall=wall, cpu=cpu, peak_rss_mib=peak, rss_mib=now_rss, extra=extra)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(title: str, results: dict[str, list[Run]], ours_name: str, go_name: str) -> str:
    """Format a table of medians per metric and the ratio ours/Go."""
    metrics: list[tuple[str, Callable[[Run], float]]] = [
        ("wall s", lambda r: r.wall),
        ("cpu s", lambda r: r.cpu),
        ("peak RSS MiB", lambda r: r.peak_rss_mib),
        ("RSS MiB", lambda r: r.rss_mib),
    ]
    extra_keys: list[str] = []
    for runs in results.values():
        for run in runs:
            extra_keys.extend(k for k in run.extra if k not in extra_keys)
    for key in extra_keys:
        metrics.append((key, lambda r, k=key: r.extra.get(k, float("nan"))))
    lines = [f"## {title}", "", f"| metric | {ours_name} | {go_name} | ratio ours/Go |"]
    lines.append("|---|---:|---:|---:|")
    for label, get in metrics:
        a = _median([get(r) for r in results.get(ours_name, [])])
        b = _median([get(r) for r in results.get(go_name, [])])
        ratio = a / b if b else float("nan")
        record(f"{title}: {label}", a, b)
        lines.append(f"| {label} | {a:.3f} | {b:.3f} | {ratio:.2f} |")
    runs = len(results.get(ours_name, []))
    lines.append("")
    lines.append(f"medians of {runs} alternating runs")
    return "\n".join(lines)


async def compare(
    title: str,
    impls: Sequence[Impl],
    workload: Workload,
    runs: int,
    log_dir: Path,
    setup: Callable[[], Awaitable[Any]] | None = None,
    settle: bool = False,
    ops: int = 0,
) -> str:
    """Run each implementation ``runs`` times, alternating, and return the report table.

    ``settle`` and ``ops`` are :func:`measure`'s.
    """
    results: dict[str, list[Run]] = {impl.name: [] for impl in impls}
    for i in range(runs):
        order = impls if i % 2 == 0 else list(reversed(impls))
        for impl in order:
            if setup is not None:
                await setup()
            results[impl.name].append(
                await measure(impl, workload, log_dir / f"run{i}", settle, ops)
            )
    return report(title, results, impls[0].name, impls[-1].name)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.01
) -> float:
    """Poll ``check`` until it is true; return the seconds it took.

    Raises:
        TimeoutError: naming ``what`` when the deadline passes.
    """
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
