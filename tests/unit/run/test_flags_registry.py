"""``run``: --roles resolution, the flag scheme and how values reach each role (no I/O)."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.cli import main
from csi_sidecars.run import registry
from csi_sidecars.run.command import command, peek_roles
from csi_sidecars.run.flags import build
from csi_sidecars.run.node import LIVENESSPROBE, NODE_DRIVER_REGISTRAR
from csi_sidecars.runtime.flags import DURATION, bool_flag

ROLES = "node-driver-registrar,livenessprobe"


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--roles=a,b", "-v=5"], "a,b"),
        (["-roles", "a"], "a"),
        (["--roles", "a", "--roles=b"], "b"),
        (["-v=5"], None),
        (["--", "--roles=a"], None),
        (["--rolesx=a"], None),
    ],
)
def test_peek_roles(args: list[str], found: str | None) -> None:
    assert peek_roles(args) == found


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "needs at least one role"),
        ("livenessprobe,nope", "unknown role 'nope'"),
        ("livenessprobe,livenessprobe", "listed twice"),
        ("node-driver-registrar,provisioner", "mixes roles that cannot share a process"),
        ("provisioner,attacher,provisioner", "listed twice"),
        ("node-driver-registrar,resizer", "mixes roles that cannot share a process"),
    ],
)
def test_resolve_refuses_clearly(spec: str, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        registry.resolve(spec)


def test_resolve_keeps_the_order() -> None:
    kind, entries = registry.resolve(" livenessprobe , node-driver-registrar ")
    assert kind.name == registry.NODE and not kind.tls
    assert [e.name for e in entries] == ["livenessprobe", "node-driver-registrar"]


def _role_params(*options: Any) -> list[click.Parameter]:
    @click.command()
    def f(**_: Any) -> None: ...

    for option in options:
        f = option(f)
    return list(f.params)


def test_unprefixed_goes_to_every_role_and_prefixed_wins() -> None:
    a = _role_params(
        click.option("--csi-address", default="/run/csi/socket"),
        click.option("--timeout", type=DURATION, default="1s"),
        click.option("--health-port", type=int, default=0),
    )
    b = _role_params(
        click.option("--csi-address", default="/run/csi/socket"),
        click.option("--health-port", default="9808"),
        bool_flag("--flag"),
    )
    table = build([("a", a), ("b", b)])

    @click.command(params=table.params())
    def cmd(**_: Any) -> None:
        ctx = click.get_current_context()
        out["a"] = table.values_for("a", ctx)
        out["b"] = table.values_for("b", ctx)

    out: dict[str, dict[str, Any]] = {}
    result = CliRunner().invoke(
        cmd,
        ["--csi-address=/x.sock", "--b.csi-address=/y.sock", "--health-port=9000", "--b.flag=true"],
    )
    assert result.exit_code == 0, result.output
    assert out["a"] == {"csi_address": "/x.sock", "timeout": 1.0, "health_port": 9000}
    # Each role converts the shared raw value with its own type: int for a, str for b.
    assert out["b"] == {"csi_address": "/y.sock", "health_port": "9000", "flag": True}

    result = CliRunner().invoke(cmd, ["--a.timeout=3s"])
    assert result.exit_code == 0, result.output
    assert out["a"]["timeout"] == 3.0 and out["a"]["csi_address"] == "/run/csi/socket"

    result = CliRunner().invoke(cmd, ["--health-port=http"])
    assert result.exit_code == 2
    assert "'http' is not a valid integer" in result.output


def test_flags_disagreeing_on_being_boolean_have_no_unprefixed_form() -> None:
    a = _role_params(bool_flag("--x"))
    b = _role_params(click.option("--x", default=""))
    table = build([("a", a), ("b", b)])
    opts = {opt for p in table.params() for opt in p.opts}
    assert opts == {"--a.x", "--b.x"}


def test_the_node_roles_flags_in_run_help() -> None:
    result = CliRunner().invoke(main, ["run", "--roles", ROLES, "--help"])
    assert result.exit_code == 0, result.output
    for flag in (
        "--node-driver-registrar.kubelet-registration-path",
        "--livenessprobe.probe-timeout",
        "--livenessprobe.http-endpoint",
        "--node-driver-registrar.http-endpoint",
        "--csi-address",
    ):
        assert flag in result.output
    assert {p.name for p in NODE_DRIVER_REGISTRAR.params()} >= {"kubelet_registration_path"}
    assert {p.name for p in LIVENESSPROBE.params()} >= {"probe_timeout", "max_concurrent_probes"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--roles is required"),
        (["--roles=node-driver-registrar,attacher"], "cannot share a process"),
        (["--roles", ROLES, "--livenessprobe.no-such=1"], "-livenessprobe.no-such"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_version_needs_no_roles() -> None:
    result = CliRunner().invoke(command, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("csi-sidecars run ")
