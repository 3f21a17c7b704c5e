"""The snapshot-controller's flags: Go's names and defaults, Go-style argv, validation."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from csi_sidecars.cli import main
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.snapshotcontroller import command as cmd
from csi_sidecars.snapshotcontroller.controller import Config


def parse(monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    """Run the command's parsing only; return what it would start with."""
    seen: dict[str, Any] = {}

    def fake_run(config: Config, http: Any, kube: Any, stop: Any) -> Any:
        raise AssertionError("not reached")

    def fake_app_run(main_fn: Any) -> None:
        seen["main"] = main_fn

    monkeypatch.setattr(cmd.app, "start", lambda *a: None)
    monkeypatch.setattr(cmd.app, "run", fake_app_run)
    monkeypatch.setattr(cmd, "build_config", _spy(cmd.build_config, seen))
    result = CliRunner().invoke(main, ["snapshot-controller", *argv])
    seen["exit"] = result.exit_code
    seen["output"] = result.output
    return seen


def _spy(real: Any, seen: dict[str, Any]) -> Any:
    def spy(**kw: Any) -> Config:
        config = real(**kw)
        seen["config"] = config
        return config

    return spy


def test_defaults_are_gos(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = parse(monkeypatch)
    assert seen["exit"] == 0, seen["output"]
    assert seen["config"] == Config(
        resync=900.0,
        workers=10,
        retry_start=1.0,
        retry_max=300.0,
        retry_crd_max=30.0,
        groups=False,
        distributed=False,
        prevent_volume_mode_conversion=True,
    )


def test_go_style_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = parse(
        monkeypatch,
        "-resync-period=1m",
        "--worker-threads",
        "3",
        "-retry-interval-start=2s",
        "--retry-interval-max=1m",
        "--enable-distributed-snapshotting",
        "--prevent-volume-mode-conversion=false",
        "-retry-crd-interval-max=5s",
        "--feature-gates=CSIVolumeGroupSnapshot=true",
        "--leader-election",
        "--leader-election-namespace=kube-system",
        "--kube-api-qps=50",
        "--kube-api-burst=100",
        "--http-endpoint=127.0.0.1:8080",
        "--metrics-path=/m",
        "-v=5",
        "--automaxprocs",
    )
    assert seen["exit"] == 0, seen["output"]
    assert seen["config"] == Config(
        resync=60.0,
        workers=3,
        retry_start=2.0,
        retry_max=60.0,
        retry_crd_max=5.0,
        groups=True,
        distributed=True,
        prevent_volume_mode_conversion=False,
    )


@pytest.mark.parametrize(
    "argv",
    [["--csi-address=/x"], ["--timeout=1s"], ["--feature-gates=Nope=true"]],
)
def test_flags_go_lacks_are_refused(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    seen = parse(monkeypatch, *argv)
    assert seen["exit"] == 2


def test_bad_values_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = parse(monkeypatch, "--retry-interval-start=10s", "--retry-interval-max=1s")
    assert seen["exit"] == 1
    seen = parse(monkeypatch, "--http-endpoint=:1", "--metrics-address=:2")
    assert seen["exit"] == 1


def test_build_config_refuses_negative_durations() -> None:
    from csi_sidecars.runtime.featuregates import parse_gates
    from csi_sidecars.runtime.options import RetryOptions

    with pytest.raises(ConfigError):
        cmd.build_config(
            resync_period=-1,
            worker_threads=1,
            retry=RetryOptions(),
            gates=parse_gates([], cmd.GATES),
            enable_distributed_snapshotting=False,
            prevent_volume_mode_conversion=True,
            retry_crd_interval_max=1,
        )


def test_lease_and_event_names() -> None:
    from csi_sidecars.snapshotcontroller import names

    assert names.LEASE_NAME == "snapshot-controller-leader"
    assert names.EVENT_COMPONENT == "snapshot-controller"
    assert cmd.GATES["CSIVolumeGroupSnapshot"].default is False
