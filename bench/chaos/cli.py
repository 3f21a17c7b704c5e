"""Command line of the chaos harness: one run, or ours and Go side by side over seeds."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from .faults import WEIGHTS
from .report import json_line, render
from .roles import TARGETS, parse_roles
from .run import Config, run


def parser() -> argparse.ArgumentParser:
    """The argument parser (``python bench/chaos.py --help``)."""
    p = argparse.ArgumentParser(
        prog="python bench/chaos.py",
        description=(
            "A mixed storage workload under seeded faults (kills, partitions, API server "
            "restarts, etcd compaction, driver faults), then invariants: no leak, no loss, "
            "nothing stuck, no create after delete, no duplicate operations, no secret in "
            "logs, every process healthy."
        ),
    )
    p.add_argument("--seed", type=int, default=None, help="the seed (default: random, printed)")
    p.add_argument("--duration", type=float, default=180.0, help="seconds of chaos (180)")
    p.add_argument("--target", choices=TARGETS, default="ours", help="whose sidecars (ours)")
    p.add_argument("--json", action="store_true", help="print the JSON object as the last line")
    p.add_argument("--rate", type=float, default=0.5, help="claims per second (0.5)")
    p.add_argument(
        "--fault-interval", type=float, default=5.0, help="mean seconds between faults (5)"
    )
    p.add_argument("--settle", type=float, default=120.0, help="at most this long to settle")
    p.add_argument("--roles", default="auto", help="comma-separated roles, or auto (all there)")
    p.add_argument(
        "--mixed", action="store_true", help="with --target ours, Go plays the roles ours lacks"
    )
    p.add_argument("--replicas", type=int, default=2, help="processes per role (2)")
    p.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated fault kinds (default all: {','.join(WEIGHTS)})",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=2.0,
        help="seconds a create may follow its object's delete (watch latency) (2)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--bin-dir", type=Path, default=None, help="the testbed binaries")
    p.add_argument("--verbose", "-v", action="store_true", help="print faults as injected")
    p.add_argument(
        "--compare",
        action="store_true",
        help="run every seed of --seeds against ours and Go, print the violations side by side",
    )
    p.add_argument("--seeds", default="1,2,3", help="seeds for --compare (1,2,3)")
    return p


def config(ns: argparse.Namespace, seed: int, target: str) -> Config:
    """A run's configuration from parsed arguments.

    Raises:
        ValueError: an unknown fault kind.
    """
    faults = [f.strip() for f in ns.faults.split(",") if f.strip()] if ns.faults else None
    unknown = [f for f in faults or [] if f not in WEIGHTS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; kinds: {', '.join(WEIGHTS)}")
    return Config(
        seed=seed,
        duration=ns.duration,
        target=target,
        rate=ns.rate,
        fault_interval=ns.fault_interval,
        settle=ns.settle,
        roles=parse_roles(ns.roles),
        mixed=ns.mixed,
        replicas=ns.replicas,
        grace=ns.grace,
        faults=faults,
        keep=ns.keep,
        verbose=ns.verbose,
        bin_dir=ns.bin_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit status 0 when every invariant held, 1 when one broke, 2 on bad use."""
    ns = parser().parse_args(argv)
    if ns.compare:
        from .compare import compare

        return compare(ns)
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(1, 10**6)
    try:
        cfg = config(ns, seed, ns.target)
        outcome = asyncio.run(run(cfg))
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render(outcome), flush=True)
    if ns.json:
        print(json_line(outcome), flush=True)
    return 1 if outcome.violations else 0
