"""The flags the chart renders are flags of our roles, and a flag given twice wins last.

The chart appends ``extraArgs`` after its own flags and documents that a repeated flag wins
last; that holds only if GoCommand's argv normalisation and click keep the last occurrence of a
single-valued option (and accumulate a repeatable one). Both are checked on the real commands.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import pytest

from csi_sidecars.cli import ROLES
from tests.unit.chart.conftest import Helm, merged

ALL_ON = {
    "controller": {"snapshotter": {"enabled": True}, "resizer": {"enabled": True}},
    "snapshotController": {"enabled": True},
}


#: The roles of the controller pods with every value on (the livenessprobe included).
CONTROLLER_ROLES = {
    "provisioner",
    "attacher",
    "snapshotter",
    "resizer",
    "cluster-driver-registrar",
    "livenessprobe",
}


def command(role: str) -> click.Command:
    """The click command of ``role``."""
    module, _, attr = ROLES[role].partition(":")
    cmd = getattr(importlib.import_module(module), attr)
    assert isinstance(cmd, click.Command)
    return cmd


def parse(role: str, args: list[str]) -> dict[str, Any]:
    """The parameters ``role`` gets from ``args`` (parsed, not run)."""
    with command(role).make_context(role, list(args)) as ctx:
        return dict(ctx.params)


def _chart_containers(helm: Helm, values: dict[str, Any] = ALL_ON) -> list[tuple[str, list[str]]]:
    out = helm.template(values)
    found = []
    for workload in out.all("Deployment") + out.all("DaemonSet"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container.get("command", [""])[0] == "csi-sidecars":
                found.append((container["command"][1], list(container["args"])))
    return found


def test_chart_runs_every_role(helm: Helm) -> None:
    roles = {role for role, _ in _chart_containers(helm)}
    assert roles == CONTROLLER_ROLES | {"node-driver-registrar", "snapshot-controller"}


def test_rendered_flags_are_accepted_by_each_role(helm: Helm) -> None:
    """Each container's args parse with that role's command: no unknown flag, no bad value."""
    containers = _chart_containers(helm)
    assert {role for role, _ in containers} <= set(ROLES)
    for role, args in containers:
        parse(role, args)


@pytest.mark.parametrize(
    ("role", "args", "param", "want"),
    [
        ("provisioner", ["--timeout=60s", "--timeout=5m"], "timeout", 300.0),
        ("provisioner", ["--worker-threads=100", "--worker-threads", "7"], "worker_threads", 7),
        ("provisioner", ["--kube-api-qps=20", "-kube-api-qps=3"], "kube_api_qps", 3.0),
        ("provisioner", ["--leader-election", "--leader-election=false"], "leader_election", False),
        ("attacher", ["--timeout=60s", "--timeout=2m"], "timeout", 120.0),
        ("attacher", ["--v=2", "-v=5"], "v", 5),
        (
            "cluster-driver-registrar",
            ["--allow-recreate", "--allow-recreate=false"],
            "allow_recreate",
            False,
        ),
        (
            "cluster-driver-registrar",
            ["--pod-info-mount=false", "--pod-info-mount"],
            "pod_info_mount",
            True,
        ),
        ("livenessprobe", ["--probe-timeout=3s", "--probe-timeout=10s"], "probe_timeout", 10.0),
        (
            "livenessprobe",
            ["--http-endpoint=:9808", "--http-endpoint=:9900"],
            "http_endpoint",
            ":9900",
        ),
        (
            "node-driver-registrar",
            ["--http-endpoint=:1", "--http-endpoint=:2"],
            "http_endpoint",
            ":2",
        ),
    ],
)
def test_a_flag_given_twice_wins_last(role: str, args: list[str], param: str, want: object) -> None:
    assert parse(role, args)[param] == want


def test_a_repeatable_flag_accumulates() -> None:
    params = parse("cluster-driver-registrar", ["--token-request=a", "--token-request=b,1h"])
    assert params["token_request"] == ("a", "b,1h")


# -- the bundles (controller.bundle.enabled, node.bundle.enabled) ------------------------------

BUNDLES = merged(
    ALL_ON,
    {
        "controller": {
            "bundle": {"enabled": True},
            "provisioner": {"logLevel": 4, "extraArgs": ["--timeout=5m", "-worker-threads=7"]},
        },
        "node": {
            "bundle": {"enabled": True},
            "livenessprobe": {"extraArgs": ["--probe-timeout=9s"]},
        },
    },
)


def _bundle_containers(helm: Helm) -> dict[str, dict[str, Any]]:
    """The ``run`` containers of the bundled render, by workload kind."""
    out = helm.template(BUNDLES)
    found: dict[str, dict[str, Any]] = {}
    for workload in out.all("Deployment") + out.all("DaemonSet"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container.get("command") == ["csi-sidecars", "run"]:
                found[workload["kind"]] = container
    return found


def _configure_bundle(args: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Each role's configuration and flag values from the bundle's args, by the run command's
    own code (the configuration checks included)."""
    from csi_sidecars.run import command as run

    with run.command.make_context("run", list(args)) as ctx:
        _, adapters, table = ctx.meta[run._META]
        with ctx.scope():
            configured = run._configure(adapters, table)
        values = {adapter.name: table.values_for(adapter.name, ctx) for adapter in adapters}
        return {adapter.name: config for adapter, config in configured}, values


def test_bundles_replace_the_role_containers(helm: Helm) -> None:
    import ssl  # noqa: F401  (loaded before a node bundle's parse could give it up)

    containers = _bundle_containers(helm)
    assert set(containers) == {"Deployment", "DaemonSet"}
    roles = {kind: c["args"][0] for kind, c in containers.items()}
    assert roles == {
        "Deployment": "--roles=provisioner,attacher,snapshotter,resizer,"
        "cluster-driver-registrar,livenessprobe",
        "DaemonSet": "--roles=node-driver-registrar,livenessprobe",
    }
    # No role runs in a container of its own beside the bundle.
    assert sorted(role for role, _ in _chart_containers(helm, BUNDLES)) == [
        "run",
        "run",
        "snapshot-controller",
    ]
    ports = {kind: [p["name"] for p in c["ports"]] for kind, c in containers.items()}
    assert ports["Deployment"] == [
        "provisioner",
        "attacher",
        "snapshotter",
        "resizer",
        "registrar",
        "healthz",
    ]
    assert ports["DaemonSet"] == ["registrar", "healthz"]
    node = containers["DaemonSet"]
    assert node["readinessProbe"]["httpGet"] == {
        "path": "/healthz/registration",
        "port": "registrar",
    }
    assert {m["name"] for m in node["volumeMounts"]} == {"socket-dir", "registration-dir"}
    assert "--v=4" in containers["Deployment"]["args"]  # the highest role level


def test_bundle_args_configure_every_role_as_its_own_container_would(helm: Helm) -> None:
    import ssl  # noqa: F401

    containers = _bundle_containers(helm)
    controller, values = _configure_bundle(containers["Deployment"]["args"])
    assert set(controller) == CONTROLLER_ROLES
    endpoints = {
        name: cfg.http_address for name, cfg in controller.items() if name != "livenessprobe"
    }
    assert endpoints == {
        "provisioner": ":8080",
        "attacher": ":8081",
        "snapshotter": ":8082",
        "resizer": ":8083",
        "cluster-driver-registrar": ":8084",
    }
    assert all(cfg.leader_election for name, cfg in controller.items() if name != "livenessprobe")
    # Each role's flags reached that role only; its extraArgs still win last.
    assert values["provisioner"]["timeout"] == 300.0
    assert values["provisioner"]["worker_threads"] == 7
    assert values["attacher"]["timeout"] == 60.0
    assert values["attacher"]["worker_threads"] == 10
    _, node_values = _configure_bundle(containers["DaemonSet"]["args"])
    assert set(node_values) == {"node-driver-registrar", "livenessprobe"}
    assert node_values["livenessprobe"]["probe_timeout"] == 9.0
    assert node_values["node-driver-registrar"]["kubelet_registration_path"].endswith(
        "/plugins/csi.example.com/csi.sock"
    )
