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
from tests.unit.chart.conftest import Helm

ALL_ON = {
    "controller": {"snapshotter": {"enabled": True}, "resizer": {"enabled": True}},
    "snapshotController": {"enabled": True},
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


def _chart_containers(helm: Helm) -> list[tuple[str, list[str]]]:
    out = helm.template(ALL_ON)
    found = []
    for workload in out.all("Deployment") + out.all("DaemonSet"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container.get("command", [""])[0] == "csi-sidecars":
                found.append((container["command"][1], list(container["args"])))
    return found


def test_chart_runs_every_role(helm: Helm) -> None:
    roles = {role for role, _ in _chart_containers(helm)}
    assert roles == {
        "provisioner",
        "attacher",
        "snapshotter",
        "resizer",
        "cluster-driver-registrar",
        "livenessprobe",
        "node-driver-registrar",
        "snapshot-controller",
    }


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
