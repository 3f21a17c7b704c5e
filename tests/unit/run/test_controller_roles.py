"""``run`` with controller roles: adapters configure through the roles' own commands (no I/O)."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.cli import main
from csi_sidecars.run import registry
from csi_sidecars.run.controller import (
    ATTACHER,
    CLUSTER_DRIVER_REGISTRAR,
    PROVISIONER,
    RESIZER,
    SNAPSHOTTER,
    ControllerConfig,
    ControllerRole,
)
from csi_sidecars.run.flags import build

BUNDLE = "provisioner,attacher,resizer,snapshotter"
ADAPTERS = (PROVISIONER, ATTACHER, RESIZER, SNAPSHOTTER, CLUSTER_DRIVER_REGISTRAR)


def test_every_controller_role_resolves_to_the_controller_kind() -> None:
    kind, entries = registry.resolve(f"{BUNDLE},cluster-driver-registrar")
    assert kind.name == registry.CONTROLLER and kind.tls and kind.runner
    adapters = [registry.load(entry.target or "") for entry in entries]
    assert [a.name for a in adapters] == [*BUNDLE.split(","), "cluster-driver-registrar"]


@pytest.mark.parametrize("spec", ["livenessprobe,provisioner", "attacher,livenessprobe"])
def test_the_livenessprobe_joins_the_controller_bundle(spec: str) -> None:
    kind, entries = registry.resolve(spec)
    assert kind.name == registry.CONTROLLER
    assert [e.name for e in entries] == spec.split(",")
    assert registry.resolve("livenessprobe")[0].name == registry.NODE


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.name)
def test_adapters_offer_the_roles_flags_without_the_bundles_own(adapter: ControllerRole) -> None:
    names = {p.name for p in adapter.params()}
    assert {"csi_address", "kubeconfig", "leader_election", "http_endpoint"} <= names
    assert not names & {"v", "logging_format", "version"}


def configured(adapter: ControllerRole, *args: str) -> ControllerConfig:
    """Configure ``adapter`` from ``run``-style arguments, as the bundle does."""
    table = build([(adapter.name, adapter.params())])
    cmd = click.Command(
        "t", params=[click.Option(["-v", "v"], type=int, default=0), *table.params()]
    )
    ctx = cmd.make_context("t", list(args))
    with ctx:
        return adapter.configure(table.values_for(adapter.name, ctx))


def test_configure_runs_the_roles_own_command_and_hands_back_its_main() -> None:
    got = configured(
        ATTACHER,
        "--attacher.http-endpoint=127.0.0.1:9000",
        "--leader-election=true",
        "--attacher.leader-election-labels=team:storage",
    )
    assert callable(got.main)
    assert got.routes() == [
        ("127.0.0.1:9000", "/metrics"),
        ("127.0.0.1:9000", "/healthz"),
        ("127.0.0.1:9000", "/healthz/leader-election"),
    ]
    assert configured(RESIZER).routes() == []


def test_configure_applies_the_roles_own_checks() -> None:
    with pytest.raises(SystemExit) as exc:
        configured(ATTACHER, "--attacher.worker-threads=0")
    assert exc.value.code == 1
    with pytest.raises(click.BadParameter):
        configured(ATTACHER, "--attacher.leader-election-labels=not a label")


def test_help_lists_each_roles_prefixed_flags_and_the_shared_ones() -> None:
    result = CliRunner().invoke(main, ["run", "--roles", BUNDLE, "--help"])
    assert result.exit_code == 0, result.output
    for flag in (
        "--provisioner.extra-create-metadata",
        "--attacher.reconcile-sync",
        "--resizer.handle-volume-inuse-error",
        "--snapshotter.snapshot-name-prefix",
        "--kube-api-qps",
        "--csi-address",
    ):
        assert flag in result.output, flag


def test_a_bad_role_flag_exits_1_naming_the_role() -> None:
    result = CliRunner().invoke(
        main, ["run", "--roles", "provisioner,attacher", "--attacher.worker-threads=0"]
    )
    assert result.exit_code == 1
    assert "Role attacher cannot start" in result.output + str(result.stderr_bytes or b"")


def test_two_roles_on_one_endpoint_are_a_configuration_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    args: list[Any] = ["run", "--roles", "attacher,resizer", "--http-endpoint=127.0.0.1:9000"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    out = result.output + capfd.readouterr().err
    assert "both serve /metrics on 127.0.0.1:9000" in out
