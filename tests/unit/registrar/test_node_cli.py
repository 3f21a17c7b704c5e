"""node-driver-registrar: flag parsing and the checks that run before any I/O."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.cli import main
from csi_sidecars.registrar.node import StartupError, command, resolve_http_address

HOSTPATH_ARGS = [
    "--v=5",
    "--csi-address=/csi/csi.sock",
    "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-hostpath/csi.sock",
]


def parse(args: list[str]) -> dict[str, object]:
    ctx = command.make_context("node-driver-registrar", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            HOSTPATH_ARGS,
            {
                "v": 5,
                "csi_address": "/csi/csi.sock",
                "kubelet_registration_path": "/var/lib/kubelet/plugins/csi-hostpath/csi.sock",
            },
        ),
        ([*HOSTPATH_ARGS, "--http-endpoint=:9809"], {"http_endpoint": ":9809"}),
        (
            [*HOSTPATH_ARGS, "--mode=kubelet-registration-probe"],
            {"mode": "kubelet-registration-probe"},
        ),
        (["-csi-address", "/x.sock", "-timeout=5s"], {"csi_address": "/x.sock", "timeout": 5.0}),
        (["--health-port=9809", "--enable-pprof"], {"health_port": 9809, "enable_pprof": True}),
        (["--connection-timeout=15s"], {"connection_timeout": 15.0}),
        (
            [],
            {
                "csi_address": "/run/csi/socket",
                "kubelet_registration_path": "",
                "plugin_registration_path": "/registration",
                "timeout": 1.0,
                "connection_timeout": 0.0,
                "http_endpoint": "",
                "health_port": 0,
                "enable_pprof": False,
                "mode": "",
            },
        ),
    ],
)
def test_upstream_manifest_args_parse(args: list[str], expected: dict[str, object]) -> None:
    params = parse(args)
    for key, value in expected.items():
        assert params[key] == value


def test_unknown_flag_is_rejected() -> None:
    with pytest.raises(click.UsageError, match="flag provided but not defined: -kubeconfig"):
        parse(["--kubeconfig=/x"])


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["node-driver-registrar", *args])
    return result.exit_code, result.output


def test_version_runs_before_the_required_flag() -> None:
    code, out = run(["--version"])
    assert code == 0
    assert out.startswith("csi-sidecars node-driver-registrar ")


def test_missing_kubelet_registration_path_exits_1() -> None:
    code, _ = run(["--csi-address=/csi/csi.sock"])
    assert code == 1


def test_missing_path_wins_over_probe_mode() -> None:
    code, _ = run(["--mode=kubelet-registration-probe"])
    assert code == 1


def test_probe_mode_is_a_no_op() -> None:
    code, _ = run([*HOSTPATH_ARGS, "--mode=kubelet-registration-probe"])
    assert code == 0


def test_health_port_and_http_endpoint_conflict() -> None:
    code, _ = run([*HOSTPATH_ARGS, "--health-port=9809", "--http-endpoint=127.0.0.1:9809"])
    assert code == 1


@pytest.mark.parametrize(
    ("port", "endpoint", "address"),
    [(0, "", ""), (9809, "", ":9809"), (0, "127.0.0.1:1", "127.0.0.1:1"), (-1, ":2", ":2")],
)
def test_resolve_http_address(port: int, endpoint: str, address: str) -> None:
    assert resolve_http_address(port, endpoint) == address


def test_resolve_http_address_conflict() -> None:
    with pytest.raises(StartupError, match="Only one of `--health-port` and `--http-endpoint`"):
        resolve_http_address(9809, ":9809")
