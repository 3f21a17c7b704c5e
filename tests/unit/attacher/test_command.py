"""The real ``attacher`` command: upstream manifest arguments parse, start-up checks exit 1."""

from __future__ import annotations

import click.testing
import pytest

from csi_sidecars.attacher.command import command, controller_options
from csi_sidecars.attacher.flags import AttacherFlags
from csi_sidecars.runtime.options import CsiOptions, HttpOptions

UPSTREAM = [
    "--v=5",
    "--csi-address=/var/lib/csi/sockets/pluginproxy/mock.socket",
    "--leader-election",
    "--http-endpoint=:8080",
]
VENDOR = [
    "-v=2",
    "-csi-address=/csi/csi.sock",
    "-timeout=1200s",
    "-leader-election",
    "-leader-election-namespace=kube-system",
    "-worker-threads=1000",
    "-kube-api-qps=200",
    "-kube-api-burst=400",
    "--retry-interval-start=500ms",
    "--default-fstype=ext4",
    "--leader-election=true",
]


@pytest.mark.parametrize("args", [UPSTREAM, VENDOR])
def test_upstream_arguments_are_accepted(args: list[str]) -> None:
    result = click.testing.CliRunner().invoke(command, [*args, "--version"])
    assert result.exit_code == 0, result.output
    assert "csi-sidecars attacher" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--worker-threads=0"],
        ["--http-endpoint=:1", "--metrics-address=:2"],
        ["--feature-gates=Nope=true"],
    ],
)
def test_startup_checks_exit_1(args: list[str]) -> None:
    result = click.testing.CliRunner().invoke(command, args)
    assert result.exit_code == 1


def test_controller_options_from_flags() -> None:
    flags = AttacherFlags(
        csi=CsiOptions("/x.sock", 20.0),
        http=HttpOptions(metrics_address="127.0.0.1:9"),
        max_grpc_log_length=5,
    )
    opts = controller_options(flags)
    assert opts.http_address == "127.0.0.1:9"
    assert (opts.csi_address, opts.timeout) == ("/x.sock", 20.0)
    assert opts.event_component == "csi-attacher"
    assert opts.drain_timeout == 25.0 and opts.max_grpc_log_length == 5
