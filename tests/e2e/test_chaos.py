"""A short seeded chaos run: our sidecars under kills, partitions, API server restarts, etcd
compaction and driver faults keep every invariant (bench/chaos.py, run as a user runs it).

The run starts its own control plane (it restarts the API server and compacts etcd, which the
session's control plane must not suffer). The seed is fixed, so a failure here replays with the
command the output prints; ``CHAOS_SEED`` and ``CHAOS_DURATION`` override seed and length.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.chaos.testbed import uts_wrapper
from csi_sidecars.playground import binaries
from tests.e2e.conftest import require, require_driver

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CHAOS_SEED", "20251"))
DURATION = float(os.environ.get("CHAOS_DURATION", "120"))
SETTLE = 60.0


def _replicas() -> str:
    # Without a UTS namespace two replicas would share one leader identity.
    return "2" if uts_wrapper() is not None else "1"


@pytest.mark.timeout(DURATION + SETTLE + 150)
async def test_seeded_chaos_run_keeps_every_invariant() -> None:
    require(*binaries.CONTROL_PLANE_BINARIES)
    require_driver()
    argv = [
        sys.executable,
        str(REPO / "bench" / "chaos.py"),
        f"--seed={SEED}",
        f"--duration={DURATION:g}",
        f"--settle={SETTLE:g}",
        "--target=ours",
        f"--replicas={_replicas()}",
        "--json",
        "--verbose",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    print(text)
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line (exit {proc.returncode})"
    doc: dict[str, Any] = json.loads(lines[-1])
    broken = {k: v["detail"] for k, v in doc["invariants"].items() if not v["held"]}
    assert not broken, f"invariants broken: {json.dumps(broken, indent=1)}"
    assert doc["violations"] == 0 and proc.returncode == 0
    assert doc["seed"] == SEED and doc["target"] == "ours"
    # The run was a real one: faults of several kinds hit a real workload.
    assert sum(doc["faults"].values()) >= DURATION / 15, doc["faults"]
    assert len(doc["faults"]) >= 4, doc["faults"]
    assert doc["workload"].get("claims", 0) >= DURATION / 5, doc["workload"]
    assert doc["workload"].get("early-delete claims", 0) >= 3, doc["workload"]
    for name in ("no-leaked-volumes", "expected-states", "no-create-after-delete"):
        assert doc["invariants"][name]["detail"]["checked"] > 0, name
