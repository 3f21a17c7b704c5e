"""The chaos harness's pure parts: seeded plans, role casting, the report and its JSON line."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bench.chaos import roles
from bench.chaos.cli import config, parser
from bench.chaos.model import Result
from bench.chaos.report import Outcome, json_line, render, replay_command
from bench.chaos.workload import Plan


def test_a_seed_gives_the_same_plans_and_another_seed_others() -> None:
    first = [Plan.draw(7, i) for i in range(30)]
    assert first == [Plan.draw(7, i) for i in range(30)]
    assert first != [Plan.draw(8, i) for i in range(30)]
    # Every fate and every WaitForFirstConsumer claim with a pod show up in 30 plans.
    assert {p.fate for p in first} == {"early", "short", "keep"}
    assert all(p.with_pod for p in first if p.wffc)


def test_cast_picks_ours_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roles, "ours_has", lambda r: r in ("provisioner", "attacher"))
    monkeypatch.setattr(roles, "go_has", lambda r, b=None: True)
    ours = roles.cast("ours")
    assert ours.impl == {"provisioner": "ours", "attacher": "ours"}
    assert ours.features() == ["provision", "attach"]
    mixed = roles.cast("ours", mixed=True)
    assert mixed.impl["snapshotter"] == "go" and mixed.impl["provisioner"] == "ours"
    assert "snapshot" in mixed.features() and "expand" in mixed.features()
    go = roles.cast("go")
    assert set(go.impl.values()) == {"go"} and len(go.roles) == len(roles.PARTS)
    assert go.describe().startswith("provisioner(go) attacher(go)")


def test_cast_rejects_what_nobody_plays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roles, "ours_has", lambda r: r == "provisioner")
    monkeypatch.setattr(roles, "go_has", lambda r, b=None: False)
    with pytest.raises(ValueError, match="no implementation of resizer"):
        roles.cast("ours", ["provisioner", "resizer"])
    with pytest.raises(ValueError, match="unknown role"):
        roles.cast("ours", ["provisioner", "kubelet"])
    with pytest.raises(ValueError, match="--target"):
        roles.cast("rust")
    with pytest.raises(ValueError, match="provisioner must take part"):
        roles.cast("go")


def test_roles_and_faults_options() -> None:
    assert roles.parse_roles("auto") is None
    assert roles.parse_roles("provisioner, attacher") == ["provisioner", "attacher"]
    ns = parser().parse_args(["--seed", "3", "--faults", "sigkill,partition"])
    cfg = config(ns, 3, "go")
    assert (cfg.seed, cfg.target, cfg.faults) == (3, "go", ["sigkill", "partition"])
    with pytest.raises(ValueError, match="unknown fault kind"):
        config(parser().parse_args(["--faults", "meteor"]), 1, "ours")


def _outcome(held: bool) -> Outcome:
    bad = Result(False, 5, 2, ["volume v1 (pvc-u1) has 0 PVs"], "5 volumes, 3 PVs")
    return Outcome(
        seed=42,
        target="ours",
        duration=180,
        roles="provisioner(ours)",
        features=["provision"],
        faults={"sigkill": 3, "partition": 1},
        invariants={
            "no-leaked-volumes": Result(True, 5, note="5 volumes, 5 PVs") if held else bad,
            "nothing-stuck": Result(True, 9),
        },
        workload={"claims": 10},
        replay=replay_command({"seed": 42, "duration": "180", "target": "ours", "mixed": False}),
        work_dir="/tmp/chaos-x",
    )


def test_report_of_a_passing_run() -> None:
    out = _outcome(True)
    text = render(out)
    assert "violations: 0" in text and "FAILED" not in text
    assert re.search(r"^sigkill\s+3$", text, re.M) and re.search(r"^total\s+4$", text, re.M)
    doc = json.loads(json_line(out))
    assert {"seed", "target", "faults", "invariants", "violations"} <= set(doc)
    assert doc["faults"] == {"partition": 1, "sigkill": 3} and doc["violations"] == 0
    assert doc["invariants"]["no-leaked-volumes"] == {
        "held": True,
        "detail": {"checked": 5, "violations": 0, "examples": [], "note": "5 volumes, 5 PVs"},
    }


def test_report_of_a_failing_run_says_how_to_replay() -> None:
    out = _outcome(False)
    assert out.violations == 2
    text = render(out)
    assert re.search(r"^no-leaked-volumes\s+NO\s+2 of 5: 5 volumes, 3 PVs$", text, re.M)
    assert "volume v1 (pvc-u1) has 0 PVs" in text
    assert "FAILED. Replay: python bench/chaos.py --seed 42 --duration 180 --target ours" in text
    assert "/tmp/chaos-x" in text
    assert shlex.split(out.replay)[-1] == "ours"
    assert json.loads(json_line(out))["invariants"]["no-leaked-volumes"]["held"] is False


def test_the_entry_script_is_the_package_cli() -> None:
    script = Path(__file__).resolve().parents[3] / "bench" / "chaos.py"
    assert "from chaos.cli import main" in script.read_text()
