"""One chaos run, phase by phase: start, workload under faults, settle, invariants.

1. start the testbed (control plane, driver, ``replicas`` of every role), make the classes;
2. chaos window (``duration`` seconds): the workload and the fault injector run concurrently;
3. settle window (at most ``settle`` seconds): faults end (rules dropped, partitions healed),
   the workload's actors finish their last steps, every replica must be healthy again, and the
   end state is polled until the convergence invariants hold (or time runs out);
4. the end state is read once more (logs scanned for secrets) and every invariant checked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import invariants
from .faults import WEIGHTS, Injector
from .gather import dump_world, gather, prepare, secret_values
from .model import Result
from .report import Outcome, replay_command
from .roles import cast
from .testbed import Testbed
from .workload import Workload

#: Invariants polled during the settle window: the end state is reached when they hold.
CONVERGENCE = ("no-leaked-volumes", "expected-states", "nothing-stuck", "attachments-match")
#: How long into the settle window an object may only show an error before the run ends.
VISIBLE_ERROR_WAIT = 30.0


@dataclass
class Config:
    """The options of one run (see ``bench/chaos.py --help``)."""

    seed: int
    duration: float = 180.0
    target: str = "ours"
    rate: float = 0.5
    fault_interval: float = 5.0
    settle: float = 120.0
    roles: list[str] | None = None
    mixed: bool = False
    replicas: int = 2
    grace: float = 2.0
    faults: list[str] | None = None
    keep: bool = False
    verbose: bool = False
    bin_dir: Path | None = None

    def replay_args(self) -> dict[str, object]:
        """The options that shape the run, for the replay command."""
        return {
            "seed": self.seed,
            "duration": f"{self.duration:g}",
            "target": self.target,
            "rate": f"{self.rate:g}",
            "fault_interval": f"{self.fault_interval:g}",
            "settle": f"{self.settle:g}",
            "roles": ",".join(self.roles) if self.roles else None,
            "mixed": self.mixed,
            "replicas": self.replicas if self.replicas != 2 else None,
            "faults": ",".join(self.faults) if self.faults else None,
            "grace": f"{self.grace:g}" if self.grace != 2.0 else None,
        }


def _converged(results: dict[str, Result], elapsed: float) -> bool:
    """Whether the end state is reached: the convergence invariants hold, and an object that
    only shows an error has shown it for a while (a retry may still succeed)."""
    if not all(r.held for k, r in results.items() if k in CONVERGENCE):
        return False
    states = results.get("expected-states")
    erring = states is not None and any(e.startswith("visible error") for e in states.examples)
    return not erring or elapsed >= VISIBLE_ERROR_WAIT


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _say(cfg: Config, text: str) -> None:
    if cfg.verbose:
        print(text, flush=True)


async def run(cfg: Config) -> Outcome:
    """Run once; the work directory is removed unless the run failed or ``keep`` is set."""
    casting = cast(cfg.target, cfg.roles, mixed=cfg.mixed, bin_dir=cfg.bin_dir)
    features = casting.features()
    work = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    tb = Testbed(casting, work, replicas=cfg.replicas, bin_dir=cfg.bin_dir)
    values = secret_values()
    kinds = cfg.faults or list(WEIGHTS)
    failed = True
    try:
        _say(cfg, f"starting testbed in {work}: {casting.describe()}")
        await tb.start(features)
        await prepare(tb, values)
        if not await tb.wait_healthy(90):
            raise RuntimeError("the replicas did not all become healthy at start")
        assert tb.api is not None
        workload = Workload(tb.api, cfg.seed, features, cfg.rate)
        injector = Injector(tb, cfg.seed, cfg.fault_interval, features, kinds)
        began = time.time()
        chaos_end = began + cfg.duration
        _say(cfg, f"chaos window: {cfg.duration:g}s")
        work_task = asyncio.create_task(workload.run(chaos_end))
        await injector.run(chaos_end, verbose=cfg.verbose)
        await injector.stop()
        settle_began = time.time()
        since = _rfc3339(settle_began - 1)
        deadline = settle_began + cfg.settle
        _say(cfg, "settle window: faults ended")
        try:
            await asyncio.wait_for(asyncio.shield(work_task), max(1.0, deadline - time.time()))
        except TimeoutError:
            workload.stats.errors.append("actors still busy at the end of the settle window")
        await tb.wait_healthy(max(1.0, deadline - time.time()))
        results: dict[str, Result] = {}
        while True:
            world = await gather(tb, values, scan_logs=False)
            results = invariants.check_all(
                world, workload.ledger, features, since=since, grace=cfg.grace, log_files=0
            )
            if _converged(results, time.time() - settle_began):
                break
            if time.time() >= deadline:
                break
            await asyncio.sleep(3.0)
        settled = time.time() - settle_began
        if not work_task.done():
            work_task.cancel()
        world = await gather(tb, values)
        results = invariants.check_all(
            world,
            workload.ledger,
            features,
            since=since,
            grace=cfg.grace,
            log_files=len(tb.log_files()),
        )
        dump_world(work / "world.json", world, workload.ledger)
        history = [f"t+{h.at - began:6.1f}s {h.kind}: {h.what}" for h in injector.history]
        (work / "faults.txt").write_text("\n".join(history) + "\n")
        outcome = Outcome(
            seed=cfg.seed,
            target=cfg.target,
            duration=cfg.duration,
            roles=casting.describe(),
            features=features,
            faults=dict(injector.counts),
            invariants=results,
            workload=dict(workload.stats.counts),
            settle_seconds=settled,
            replay=replay_command(cfg.replay_args()),
            work_dir=str(work),
            history=history,
            errors=workload.stats.errors,
        )
        failed = outcome.violations > 0
        return outcome
    finally:
        await tb.stop()
        if not failed and not cfg.keep:
            shutil.rmtree(work, ignore_errors=True)
