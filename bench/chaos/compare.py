"""Ours and the Go sidecars side by side: the same seeds, one run each, violations counted.

Every run is a separate ``bench/chaos.py --json`` process (its own testbed, nothing shared);
its output goes to ``<log dir>/<target>-seed<N>.log`` and its JSON line is collected. The table
counts, per target and over the seed set: leaked volumes, leaked snapshots, stuck objects,
duplicate backend operations, creates after delete, objects that missed their state, and the
rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .roles import GO, OURS

COLUMNS = {
    "leaked volumes": "no-leaked-volumes",
    "lost volumes": "no-lost-volumes",
    "leaked snapshots": "no-leaked-snapshots",
    "stuck objects": "nothing-stuck",
    "duplicate ops": "no-duplicate-operations",
    "create after delete": "no-create-after-delete",
    "missed state": "expected-states",
    "attachments": "attachments-match",
    "secrets in logs": "no-secrets-in-logs",
    "unhealthy": "processes-healthy",
}
SCRIPT = Path(__file__).resolve().parent.parent / "chaos.py"


def _argv(ns: argparse.Namespace, seed: int, target: str) -> list[str]:
    argv = [
        sys.executable,
        str(SCRIPT),
        "--json",
        f"--seed={seed}",
        f"--target={target}",
        f"--duration={ns.duration:g}",
        f"--rate={ns.rate:g}",
        f"--fault-interval={ns.fault_interval:g}",
        f"--settle={ns.settle:g}",
        f"--roles={ns.roles}",
        f"--replicas={ns.replicas}",
        f"--grace={ns.grace:g}",
    ]
    if ns.faults:
        argv.append(f"--faults={ns.faults}")
    if ns.keep:
        argv.append("--keep")
    if ns.bin_dir:
        argv.append(f"--bin-dir={ns.bin_dir}")
    return argv


def one(ns: argparse.Namespace, seed: int, target: str, log_dir: Path) -> dict[str, Any]:
    """Run one seed against one target; its JSON object (or an error record)."""
    log = log_dir / f"{target}-seed{seed}.log"
    with log.open("w") as out:
        proc = subprocess.run(
            _argv(ns, seed, target), stdout=subprocess.PIPE, stderr=out, check=False
        )
    text = proc.stdout.decode(errors="replace")
    with log.open("a") as out:
        out.write(text)
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        return {"seed": seed, "target": target, "error": f"exit {proc.returncode}, see {log}"}
    doc: dict[str, Any] = json.loads(lines[-1])
    doc["log"] = str(log)
    return doc


def _count(doc: dict[str, Any], invariant: str) -> str:
    inv = doc.get("invariants", {}).get(invariant)
    if inv is None:
        return "-"
    detail = inv.get("detail") or {}
    return str(detail.get("violations", 0 if inv.get("held") else 1))


def table(docs: list[dict[str, Any]]) -> str:
    """Per run and per target over the seed set: violations by kind."""
    header = ["target", "seed", *COLUMNS, "total"]
    rows: list[list[str]] = []
    totals: dict[str, dict[str, int]] = {}
    for doc in docs:
        target = str(doc.get("target"))
        if "error" in doc:
            rows.append([target, str(doc["seed"]), doc["error"]])
            continue
        counts = [_count(doc, inv) for inv in COLUMNS.values()]
        rows.append([target, str(doc["seed"]), *counts, str(doc.get("violations", "?"))])
        bucket = totals.setdefault(target, {})
        for name, value in zip(COLUMNS, counts, strict=True):
            if value != "-":
                bucket[name] = bucket.get(name, 0) + int(value)
        bucket["total"] = bucket.get("total", 0) + int(doc.get("violations", 0))
    for target, bucket in totals.items():
        rows.append(
            [target, "all", *(str(bucket.get(c, "-")) for c in COLUMNS), str(bucket["total"])]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    roles = {str(d.get("target")): str(d.get("roles")) for d in docs if "roles" in d}
    lines += ["", *(f"{t}: {r}" for t, r in sorted(roles.items()))]
    return "\n".join(lines)


def compare(ns: argparse.Namespace) -> int:
    """``--compare``: every seed against ours then Go; prints the table (and JSON with --json)."""
    seeds = [int(s) for s in str(ns.seeds).split(",") if s.strip()]
    log_dir = Path(tempfile.mkdtemp(prefix="chaos-compare-", dir="/tmp"))
    docs = []
    for seed in seeds:
        for target in (OURS, GO):
            print(f"seed {seed}, {target}: running ({log_dir})", file=sys.stderr, flush=True)
            docs.append(one(ns, seed, target, log_dir))
    print(table(docs))
    print(f"logs: {log_dir}")
    if ns.json:
        print(json.dumps({"runs": docs}))
    return 0
