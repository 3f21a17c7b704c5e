"""Chaos harness: a mixed, concurrent storage workload under seeded faults, then invariants.

Claims (Immediate and WaitForFirstConsumer) with pods, deletes, snapshots and restores,
expansions and VolumeAttributesClass changes, as far as the roles exist, across several
namespaces and classes; meanwhile sidecars (two replicas of each role, leaders and standbys)
are SIGKILLed and SIGTERMed, one is cut off from the API server, the API server restarts, etcd
is compacted, the driver restarts, fails, answers late or not at all. After a settle window
every invariant must hold. The parts are in ``bench/chaos/`` (see its ``__init__``).

    python bench/chaos.py --seed 7 --duration 180 --target ours [--json]
    python bench/chaos.py --seed 7 --duration 180 --target go
    python bench/chaos.py --compare --seeds 1,2,3 --duration 180

Exit status: 0 when every invariant held, 1 when one broke (the output says how to replay),
2 for bad options or a testbed that did not start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The sidecars (ours) run from the same checkout as the harness, whatever is pip-installed.
sys.path.insert(0, str(HERE.parent))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
)
# ``chaos`` below is the package bench/chaos/ (a package wins over this module of that name).
sys.path.insert(0, str(HERE))
from chaos.cli import main

if __name__ == "__main__":
    sys.exit(main())
