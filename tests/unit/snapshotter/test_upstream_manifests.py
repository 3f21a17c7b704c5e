"""external-snapshotter v8.6.0's own manifests for csi-snapshotter work unchanged with ours.

The arguments of the ``csi-snapshotter`` container in ``deploy/kubernetes/csi-snapshotter/
setup-csi-snapshotter.yaml`` (read from the Go module cache, with kubelet's ``$(VAR)``
expansion) parse and pass the start-up checks, and the RBAC of ``rbac-csi-snapshotter.yaml`` is
exactly the testbed's (``csi_sidecars/playground/rbac/csi-snapshotter.yaml``) but for the
optional Secrets role that Go ships commented out and ``get`` on volumesnapshots.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.playground import rbac
from csi_sidecars.snapshotter.flags import validate
from tests.support.upstream import (
    SNAPSHOTTER_MODULE,
    SNAPSHOTTER_VERSION,
    manifest_args,
    manifest_rules,
    require_module,
    rule_triples,
)
from tests.unit.snapshotter.test_flags import parse


def deploy_dir() -> Path:
    return require_module(SNAPSHOTTER_MODULE, SNAPSHOTTER_VERSION) / "deploy/kubernetes"


def test_setup_manifest_args_start_unchanged() -> None:
    found = manifest_args(
        deploy_dir() / "csi-snapshotter/setup-csi-snapshotter.yaml", "csi-snapshotter"
    )
    assert found, "no csi-snapshotter container in the manifest"
    for argv in found:
        assert "--csi-address=/csi/csi.sock" in argv  # $(ADDRESS) expanded
        flags = parse(*argv)
        assert validate(flags, {}) == ""
        assert flags.csi.address == "/csi/csi.sock"
        assert flags.v == 5
        assert flags.kube.leader_election is False


def test_rbac_is_the_go_sidecar_s() -> None:
    upstream = manifest_rules(deploy_dir() / "csi-snapshotter/rbac-csi-snapshotter.yaml")
    ours = {
        role["metadata"]["name"]: rule_triples(role["rules"])
        for role in rbac.cluster_roles("csi-snapshotter")
    }
    assert set(upstream) == {"external-snapshotter-runner", "external-snapshotter-leaderelection"}
    # Ours reads a content's snapshot before its first CreateSnapshot (get only).
    assert ours["external-snapshotter-runner"] - upstream["external-snapshotter-runner"] == {
        ("snapshot.storage.k8s.io", "volumesnapshots", "get")
    }
    ours["external-snapshotter-runner"] -= {("snapshot.storage.k8s.io", "volumesnapshots", "get")}
    for name, rules in upstream.items():
        assert ours[name] == rules, name
    # The one addition: Secrets, commented out in Go's file, as a role of its own.
    assert set(ours) - set(upstream) == {"external-snapshotter-secrets"}
    assert ours["external-snapshotter-secrets"] == {("", "secrets", "get"), ("", "secrets", "list")}


@pytest.mark.parametrize(
    "flag", ["--leader-election=true", "--http-endpoint=:8080", "--extra-create-metadata"]
)
def test_common_deployment_additions_parse(flag: str) -> None:
    # what csi-driver-host-path and most vendors add to the upstream args
    flags = parse("--v=5", "--csi-address=/csi/csi.sock", flag)
    assert validate(flags, {}) == ""
