"""The chart's generated parts are current: README values table, package copies, renderings."""

from __future__ import annotations

import json

from tests.unit.chart.conftest import CHART, load_script

readme = load_script("gen-chart-readme")
sync = load_script("sync-chart-files")


def test_readme_values_table_is_current() -> None:
    text = (CHART / "README.md").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    wanted = readme.render(text, (CHART / "values.yaml").read_text(), schema)
    assert wanted == text, "run python scripts/gen-chart-readme.py"


def test_every_value_is_documented() -> None:
    rows = readme.documented_rows((CHART / "values.yaml").read_text())
    paths = {r.path for r in rows}
    assert {"driver.name", "kubeletDir", "controller.provisioner.extraArgs"} <= paths
    assert all(r.description for r in rows)


def test_an_undocumented_value_is_an_error() -> None:
    text = "# -- documented\na: 1\nsection:\n  b: 2\n"
    try:
        readme.documented_rows(text)
    except ValueError as err:
        assert str(err) == "values.yaml: section.b has no '# --' description"
    else:
        raise AssertionError("an undocumented value passed")


def test_chart_copies_equal_the_package_files() -> None:
    """files/crds and files/rbac are the package's CRDs and RBAC rules; appVersion its version."""
    assert sync.stale() == [], "run python scripts/sync-chart-files.py"
    copied = {p.name for p in (CHART / "files" / "crds").glob("*.yaml")}
    assert len(copied) == 6
