"""livenessprobe: flag parsing, flag rules and the /healthz answers (pure)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.cli import main
from csi_sidecars.csi.lean import status
from csi_sidecars.csi.lean.client import DialTimeoutError
from csi_sidecars.csi.lean.identity import DriverError
from csi_sidecars.livenessprobe.command import command
from csi_sidecars.livenessprobe.config import (
    Answer,
    ConfigError,
    build_config,
    overloaded_answer,
    probe_answer,
)
from csi_sidecars.livenessprobe.server import go_error_text

DEADLINE = "context deadline exceeded"


def parse(args: list[str]) -> dict[str, object]:
    ctx = command.make_context("livenessprobe", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # deploy/kubernetes-*/hostpath/csi-hostpath-plugin.yaml and the livenessprobe README
        (["--csi-address=/csi/csi.sock"], {"csi_address": "/csi/csi.sock"}),
        (
            ["--csi-address=/csi/csi.sock", "--health-port=9898"],
            {"csi_address": "/csi/csi.sock", "health_port": "9898"},
        ),
        (
            ["--csi-address=/csi/csi.sock", "--probe-timeout=3s", "--health-port=9898", "-v=5"],
            {"probe_timeout": 3.0, "health_port": "9898", "v": 5},
        ),
        (["-csi-address=/csi/csi.sock", "-probe-timeout=500ms"], {"probe_timeout": 0.5}),
        (["--http-endpoint=:9808", "--metrics-path=/m"], {"http_endpoint": ":9808"}),
        (["--metrics-address=:9809", "--v", "4"], {"metrics_address": ":9809", "v": 4}),
        ([], {"csi_address": "/run/csi/socket", "probe_timeout": 3.0, "health_port": "9808"}),
        (["--automaxprocs", "--logging-format=json"], {"logging_format": "json"}),
    ],
)
def test_upstream_manifest_args_parse(args: list[str], expected: dict[str, object]) -> None:
    params = parse(args)
    for key, value in expected.items():
        assert params[key] == value


def test_defaults() -> None:
    params = parse([])
    assert params["http_endpoint"] == ""
    assert params["metrics_address"] == ""
    assert params["metrics_path"] == "/metrics"
    assert params["max_concurrent_probes"] == 8


def test_unknown_flag_is_rejected() -> None:
    with pytest.raises(click.UsageError, match="flag provided but not defined: -no-such"):
        parse(["--no-such=1"])


def test_role_is_registered_and_has_version() -> None:
    result = CliRunner().invoke(main, ["livenessprobe", "--version"])
    assert result.exit_code == 0
    assert result.output.startswith("csi-sidecars livenessprobe ")


def base(**kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "csi_address": "/csi/csi.sock",
        "probe_timeout": 3.0,
        "health_port": "9808",
        "http_endpoint": "",
        "metrics_address": "",
        "metrics_path": "/metrics",
    }
    args.update(kw)
    return args


def test_health_port_listens_on_ipv4_wildcard_without_metrics() -> None:
    cfg = build_config(**base(health_port="9898"))  # type: ignore[arg-type]
    assert cfg.health_address == "0.0.0.0:9898"
    assert not cfg.metrics_on_health
    assert cfg.metrics_address == ""


def test_http_endpoint_serves_health_and_metrics() -> None:
    cfg = build_config(**base(http_endpoint="127.0.0.1:9808"))  # type: ignore[arg-type]
    assert cfg.health_address == "127.0.0.1:9808"
    assert cfg.metrics_on_health


def test_metrics_address_is_separate() -> None:
    cfg = build_config(**base(metrics_address=":9810"))  # type: ignore[arg-type]
    assert cfg.health_address == "0.0.0.0:9808"
    assert cfg.metrics_address == ":9810"
    assert not cfg.metrics_on_health


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"health_port": "9898", "http_endpoint": ":1"},
            "Only one of `--health-port` and `--http-endpoint` can be explicitly set",
        ),
        (
            {"metrics_address": ":2", "http_endpoint": ":1"},
            "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set",
        ),
        ({"probe_timeout": 0.0}, "--probe-timeout must be positive"),
        ({"health_port": "http"}, "invalid --health-port"),
        ({"metrics_path": "metrics"}, "--metrics-path must start with '/'"),
        ({"max_concurrent_probes": -1}, "--max-concurrent-probes"),
        ({"csi_address": "tcp://x:1"}, "--csi-address: unsupported address 'tcp://x:1'"),
        ({"csi_address": "localhost"}, "--csi-address: invalid address 'localhost'"),
    ],
)
def test_conflicts(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(**base(**kw))  # type: ignore[arg-type]
    assert message in str(info.value)


def test_default_health_port_with_http_endpoint_is_fine() -> None:
    # Go compares against the default, so repeating it explicitly is not a conflict.
    cfg = build_config(**base(health_port="9808", http_endpoint=":1"))  # type: ignore[arg-type]
    assert cfg.health_address == ":1"


@pytest.mark.parametrize(
    ("kwargs", "answer"),
    [
        ({}, Answer(200, "ok")),
        ({"ready": True}, Answer(200, "ok")),
        ({"ready": None}, Answer(200, "ok")),
        ({"ready": False}, Answer(500, "driver responded but is not ready")),
        ({"error": "context deadline exceeded"}, Answer(500, "context deadline exceeded")),
        ({"ready": True, "error": "boom"}, Answer(500, "boom")),
    ],
)
def test_probe_answer(kwargs: dict[str, object], answer: Answer) -> None:
    assert probe_answer(**kwargs) == answer  # type: ignore[arg-type]


def test_overloaded_answer() -> None:
    assert overloaded_answer() == Answer(503, "too many concurrent probes")


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (DialTimeoutError("context deadline exceeded: x accepted nothing"), DEADLINE),
        (TimeoutError(), DEADLINE),
        (
            status.RpcError(status.DEADLINE_EXCEEDED, DEADLINE),
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
        ),
        (
            status.RpcError(9, "no disk"),
            "rpc error: code = FailedPrecondition desc = no disk",
        ),
        (
            status.RpcError(status.UNAVAILABLE, "connection refused"),
            "rpc error: code = Unavailable desc = connection refused",
        ),
        (DriverError("driver name is empty"), "driver name is empty"),
    ],
)
def test_go_error_text(err: BaseException, text: str) -> None:
    assert go_error_text(err) == text
