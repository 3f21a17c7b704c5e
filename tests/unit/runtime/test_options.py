"""The shared flag groups: declared once, composed by roles, typed values handed to commands."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.runtime import app
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import FeatureGates, Gate, parse_gates
from csi_sidecars.runtime.flags import GoCommand
from csi_sidecars.runtime.options import (
    CsiOptions,
    HttpOptions,
    RetryOptions,
    compose,
    csi_options,
    feature_gates,
    http_options,
    retry_options,
    worker_threads,
)

GATES = {
    "Alpha1": Gate(False, "alpha"),
    "Beta1": Gate(True, "beta"),
    "GA1": Gate(True, "ga"),
}


def _command(seen: dict[str, Any], **kube: Any) -> click.Command:
    @click.command("role", cls=GoCommand)
    @compose(
        csi_options(timeout="15s"),
        http_options(),
        retry_options(start="2s", maximum="1m"),
        worker_threads(10),
        feature_gates(GATES, role="role"),
        kube_options(**kube) if kube else kube_options,
        app.common_options,
    )
    def cmd(**values: Any) -> None:
        seen.update(values)

    return cmd


def test_groups_hand_typed_values_to_the_command() -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(
        _command(seen),
        [
            "-csi-address=/x.sock",
            "--timeout",
            "1m30s",
            "-http-endpoint=:8080",
            "--retry-interval-max=10m",
            "--worker-threads=3",
            "--feature-gates=Alpha1=true",
            "--feature-gates=GA1=false",
            "--leader-election",
            "-v=5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen["csi"] == CsiOptions("/x.sock", 90.0)
    assert seen["http"] == HttpOptions(":8080", "", "/metrics")
    assert seen["http"].address == ":8080"
    assert seen["retry"] == RetryOptions(2.0, 600.0)
    assert seen["worker_threads"] == 3
    gates = seen["gates"]
    assert isinstance(gates, FeatureGates)
    assert dict(gates) == {"Alpha1": True, "Beta1": True, "GA1": False}
    assert gates.set_explicitly("Alpha1") and not gates.set_explicitly("Beta1")
    assert isinstance(seen["kube"], KubeOptions) and seen["kube"].leader_election
    assert seen["v"] == 5
    # nothing of a group leaks as a loose keyword
    assert not {"csi_address", "http_endpoint", "feature_gates", "kube_api_qps"} & set(seen)


def test_defaults_and_no_timeout_group() -> None:
    seen: dict[str, Any] = {}
    assert CliRunner().invoke(_command(seen), []).exit_code == 0
    assert seen["csi"] == CsiOptions("/run/csi/socket", 15.0)
    assert seen["retry"] == RetryOptions(2.0, 60.0)

    @click.command("probe", cls=GoCommand)
    @csi_options(timeout=None)
    def probe(csi: CsiOptions) -> None:
        seen["probe"] = csi

    result = CliRunner().invoke(probe, ["--timeout=1s"])
    assert result.exit_code == 2 and "flag provided but not defined: -timeout" in result.output
    assert CliRunner().invoke(probe, []).exit_code == 0
    assert seen["probe"] == CsiOptions("/run/csi/socket", 0.0)


def test_master_only_where_asked() -> None:
    seen: dict[str, Any] = {}
    result = CliRunner().invoke(_command(seen), ["--master=https://x:6443"])
    assert result.exit_code == 2 and "-master" in result.output
    result = CliRunner().invoke(_command(seen, master=True), ["--master=https://x:6443"])
    assert result.exit_code == 0, result.output
    assert seen["kube"].master == "https://x:6443"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--feature-gates=Nope=true"], "unrecognized feature gate: Nope"),
        (["--feature-gates=GA1"], "missing bool value for GA1"),
        (["--feature-gates=GA1=maybe"], "invalid value of GA1=maybe"),
    ],
)
def test_bad_gates_are_usage_errors(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(_command({}), argv)
    assert result.exit_code == 2
    assert message in result.output


def test_all_alpha_all_beta_and_unsupported() -> None:
    gates = parse_gates(["AllAlpha=true,AllBeta=false"], GATES)
    assert dict(gates) == {"Alpha1": True, "Beta1": False, "GA1": True}
    assert dict(parse_gates(["AllAlpha=true", "Alpha1=false"], GATES))["Alpha1"] is False
    with pytest.raises(ConfigError, match="Beta1=false is not supported yet by csi-sidecars x"):
        parse_gates(["Beta1=false"], GATES, unsupported={"Beta1": False}, role="x")


def test_http_validate() -> None:
    HttpOptions(":1", "", "/metrics").validate()
    with pytest.raises(ConfigError, match="Only one of `--metrics-address` and `--http-endpoint`"):
        HttpOptions(":1", ":2").validate()
    with pytest.raises(ConfigError, match="custom"):
        HttpOptions(":1", ":2").validate("custom")
    with pytest.raises(ConfigError, match="must start with '/'"):
        HttpOptions(":1", "", "metrics").validate()
    assert HttpOptions(":1", ":2").address == ":2"


def test_retry_validate() -> None:
    RetryOptions(1, 1).validate()
    with pytest.raises(ConfigError, match="positive"):
        RetryOptions(0, 1).validate()
    with pytest.raises(ConfigError, match="shorter"):
        RetryOptions(10, 1).validate()


def test_worker_threads_name_and_range() -> None:
    @click.command("r", cls=GoCommand)
    @worker_threads(10, name="--workers")
    def cmd(workers: int) -> None:
        assert workers == 4

    assert CliRunner().invoke(cmd, ["-workers=4"]).exit_code == 0
    assert CliRunner().invoke(cmd, ["-workers=-1"]).exit_code == 2
