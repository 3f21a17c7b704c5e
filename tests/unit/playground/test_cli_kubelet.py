"""playground CLI: --kubelet is on where the pieces are installed, else it says what is missing."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from csi_sidecars.playground import cli, realnode
from csi_sidecars.playground.realnode import Requirement

MISSING = [Requirement("containerd", False, "apt-get install containerd")]


def test_auto_uses_real_nodes_when_everything_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode, "missing_requirements", lambda bin_dir: [])
    assert cli.decide_kubelet(None, Path("/bin")) is True
    assert cli.decide_kubelet(False, Path("/bin")) is False


def test_auto_falls_back_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(realnode, "missing_requirements", lambda bin_dir: MISSING)
    assert cli.decide_kubelet(None, Path("/bin")) is False
    err = capsys.readouterr().err
    assert "real nodes need: containerd (apt-get install containerd)" in err
    assert "API-only Nodes" in err


def test_an_explicit_kubelet_with_a_piece_missing_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(realnode, "missing_requirements", lambda bin_dir: MISSING)
    with pytest.raises(click.ClickException, match="apt-get install containerd"):
        cli.decide_kubelet(True, Path("/bin"))
