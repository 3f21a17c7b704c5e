"""Every value set lints and renders exactly as committed (scripts/render-chart.py --update)."""

from __future__ import annotations

import pytest

from tests.unit.chart.conftest import load_script

render_chart = load_script("render-chart")
CASES = render_chart.cases()
REQUIRED = {
    "defaults",
    "snapshots",
    "node-only",
    "kubelet-dir",
    "csidriver-template",
    "extra-args",
    "example-hostpath",
}


def test_the_required_value_sets_exist() -> None:
    assert {c.name for c in CASES} >= REQUIRED


def test_no_rendering_without_its_case() -> None:
    names = {c.name for c in CASES}
    orphans = [p.name for p in render_chart.RENDERED.glob("*.yaml") if p.stem not in names]
    assert not orphans, f"renderings without a value set: {orphans}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_lints_and_renders_as_committed(case: object, helm_binary: str) -> None:
    render_chart.lint(case, helm_binary)
    rendered = render_chart.render(case, helm_binary)
    expected = case.expected.read_text()  # type: ignore[attr-defined]
    assert rendered == expected, (
        f"{case.name} renders differently from {case.expected}; if intended, run "  # type: ignore[attr-defined]
        "python scripts/render-chart.py --update and review the diff"
    )
