"""The playground's heavy dependency is an extra: without it, a clear message, not a traceback."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from csi_sidecars.playground import cli


def test_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "cryptography" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(cli.command, ["up", "--roles", "none"])
    assert result.exit_code == 1
    assert "pip install 'csi-sidecars[playground]'" in result.output


def test_sidecar_dependencies_do_not_include_the_playground_pki() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("cryptography") for d in project["dependencies"])
    assert any(d.startswith("cryptography") for d in project["optional-dependencies"]["playground"])
