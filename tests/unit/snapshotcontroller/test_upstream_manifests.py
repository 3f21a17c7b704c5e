"""external-snapshotter v8.6.0's own manifests for the snapshot-controller work unchanged.

The arguments of ``deploy/kubernetes/snapshot-controller/setup-snapshot-controller.yaml``
(read from the Go module cache) start our controller with the same settings, and the RBAC of
``rbac-snapshot-controller.yaml`` is exactly the testbed's
(``csi_sidecars/playground/rbac/snapshot-controller.yaml``) but for the optional Nodes role
that Go ships commented out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.playground import rbac
from csi_sidecars.snapshotcontroller.controller import Config
from tests.support.upstream import (
    SNAPSHOTTER_MODULE,
    SNAPSHOTTER_VERSION,
    manifest_args,
    manifest_rules,
    require_module,
    rule_triples,
)
from tests.unit.snapshotcontroller.test_command import parse


def deploy_dir() -> Path:
    return require_module(SNAPSHOTTER_MODULE, SNAPSHOTTER_VERSION) / "deploy/kubernetes"


def test_setup_manifest_args_start_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    found = manifest_args(
        deploy_dir() / "snapshot-controller/setup-snapshot-controller.yaml", "snapshot-controller"
    )
    assert found == [["--v=5", "--leader-election=true"]], "the upstream manifest changed"
    seen = parse(monkeypatch, *found[0])
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


def test_rbac_is_the_go_controller_s() -> None:
    upstream = manifest_rules(deploy_dir() / "snapshot-controller/rbac-snapshot-controller.yaml")
    ours = {
        role["metadata"]["name"]: rule_triples(role["rules"])
        for role in rbac.cluster_roles("snapshot-controller")
    }
    assert set(upstream) == {"snapshot-controller-runner", "snapshot-controller-leaderelection"}
    for name, rules in upstream.items():
        assert ours[name] == rules, name
    assert set(ours) - set(upstream) == {"snapshot-controller-nodes"}
    assert ours["snapshot-controller-nodes"] == {
        ("", "nodes", verb) for verb in ("get", "list", "watch")
    }
