"""The ``resizer`` command: Go's flags and defaults, the upstream manifest, bad values."""

from __future__ import annotations

from typing import Any

import click.testing
import pytest

from csi_sidecars.resizer import command as cmd
from csi_sidecars.resizer import names
from csi_sidecars.runtime import app

UPSTREAM = [
    "--v=5",
    "--csi-address=/var/lib/csi/sockets/pluginproxy/mock.socket",
    "--leader-election",
    "--http-endpoint=:8080",
]


def parse(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def fake_run(cfg: Any, gates: Any, csi: Any, http: Any, kube: Any, stop: Any) -> int:
        seen.update(cfg=cfg, gates=gates, csi=csi, http=http, kube=kube)
        return 0

    def fake_app_run(main: Any) -> None:
        import asyncio

        asyncio.run(main(None))
        raise SystemExit(0)

    monkeypatch.setattr(cmd, "run_resizer", fake_run)
    monkeypatch.setattr(app, "run", fake_app_run)
    result = click.testing.CliRunner().invoke(cmd.command, args)
    assert result.exit_code == 0, result.output
    return seen


def test_defaults_match_go(monkeypatch: pytest.MonkeyPatch) -> None:
    got = parse([], monkeypatch)
    cfg = got["cfg"]
    assert (cfg.timeout, cfg.resync, cfg.workers) == (10.0, 600.0, 10)
    assert (cfg.retry_start, cfg.retry_max) == (1.0, 300.0)
    assert cfg.handle_in_use is True and cfg.extra_modify_metadata is False
    gates = got["gates"]
    assert not gates[names.GATE_ANNOTATE_FS_RESIZE]  # v2.2.0: alpha, off
    assert gates[names.GATE_RECOVER]
    assert gates[names.GATE_VAC] and not gates.set_explicitly(names.GATE_VAC)
    assert not gates[names.GATE_RELEASE_ON_EXIT]
    assert got["csi"].address == "/run/csi/socket"
    assert (got["kube"].qps, got["kube"].burst, got["kube"].master) == (5.0, 10, "")


def test_upstream_manifest_and_go_style_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    got = parse(UPSTREAM, monkeypatch)
    assert got["kube"].leader_election and got["http"].endpoint == ":8080"
    got = parse(
        [
            "-csi-address=/csi/csi.sock",
            "-timeout=30s",
            "-workers=3",
            "-resync-period=1m",
            "-master=https://127.0.0.1:6443",
            "-handle-volume-inuse-error=false",
            "--extra-modify-metadata",
            "--feature-gates=VolumeAttributesClass=false,RecoverVolumeExpansionFailure=false",
            "--automaxprocs",
        ],
        monkeypatch,
    )
    cfg = got["cfg"]
    assert (cfg.timeout, cfg.workers, cfg.resync) == (30.0, 3, 60.0)
    assert not cfg.handle_in_use and cfg.extra_modify_metadata
    assert got["kube"].master == "https://127.0.0.1:6443"
    assert not got["gates"][names.GATE_VAC] and got["gates"].set_explicitly(names.GATE_VAC)
    assert not got["gates"][names.GATE_RECOVER]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--feature-gates=Nope=true"], "unrecognized feature gate: Nope"),
        (["--http-endpoint=:1", "--metrics-address=:2"], "Only one of"),
        (["--retry-interval-start=10s", "--retry-interval-max=1s"], "retry-interval-max"),
    ],
)
def test_bad_values_are_refused(args: list[str], message: str) -> None:
    result = click.testing.CliRunner().invoke(cmd.command, args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_lease_name_is_sanitised() -> None:
    assert names.lease_name("hostpath.csi.k8s.io") == "external-resizer-hostpath-csi-k8s-io"
    assert names.lease_name("x/") == "external-resizer-x-X"
    assert names.queue_name("d") == "d-pvc"
