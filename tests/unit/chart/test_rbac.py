"""RBAC: per enabled role one ClusterRole and one Role with exactly the package's rules.

The package's rules (csi_sidecars/playground/rbac/, what the testbed grants each role and the
e2e tests run under) are the reference: a role's ClusterRole holds the rules of its
cluster-bound ClusterRoles there (its ``-secrets`` one only when it needs Secrets) and its Role
the namespace-bound ones, nothing more and nothing less. Roles built on other branches
(resizer, snapshotter, snapshot controller) are checked the same way, so when their rules change
there, only the copy (scripts/sync-chart-files.py) and this test are involved.
"""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.playground import rbac
from tests.unit.chart.conftest import Helm, Rendered

#: chart role name -> (package identity, values enabling it)
ROLES: dict[str, tuple[str, dict[str, Any]]] = {
    "provisioner": ("csi-provisioner", {}),
    "attacher": ("csi-attacher", {}),
    "cluster-driver-registrar": ("cluster-driver-registrar", {}),
    "snapshotter": ("csi-snapshotter", {"controller": {"snapshotter": {"enabled": True}}}),
    "resizer": ("csi-resizer", {"controller": {"resizer": {"enabled": True}}}),
    "snapshot-controller": ("snapshot-controller", {"snapshotController": {"enabled": True}}),
}
SECRET_RULE = {"apiGroups": [""], "resources": ["secrets"]}


def _package_rules(
    identity: str, scope: str, secrets: bool, nodes: bool = False
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for role in rbac.cluster_roles(identity):
        bind = role["metadata"].get("annotations", {}).get(rbac.BIND_ANNOTATION, "cluster")
        if bind != scope:
            continue
        if role["metadata"]["name"].endswith("-secrets") and not secrets:
            continue
        if role["metadata"]["name"].endswith("-nodes") and not nodes:
            continue
        rules += role["rules"]
    return rules


def _rules(out: Rendered, kind: str, role: str) -> list[dict[str, Any]]:
    name = f"csi-csi-sidecars-{role}"
    found = [d for d in out.all(kind) if d["metadata"]["name"] == name]
    return list(found[0]["rules"]) if found else []


def _owner_rule(role: str) -> list[dict[str, Any]]:
    if role != "cluster-driver-registrar":
        return []
    return [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": [f"csi-csi-sidecars-{role}"],
            "verbs": ["get"],
        }
    ]


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("secrets", [False, True], ids=["no-secrets", "rbac.secrets"])
def test_rules_are_exactly_the_packages(helm: Helm, role: str, secrets: bool) -> None:
    identity, values = ROLES[role]
    out = helm.template({**values, "rbac": {"secrets": secrets}})
    with_secrets = secrets and role in ("provisioner", "attacher", "snapshotter", "resizer")
    cluster = _package_rules(identity, "cluster", with_secrets) + _owner_rule(role)
    assert _rules(out, "ClusterRole", role) == cluster
    assert _rules(out, "Role", role) == _package_rules(identity, "namespace", False)


def test_secrets_only_for_the_role_a_storage_class_names(helm: Helm) -> None:
    params = {
        "csi.storage.k8s.io/controller-publish-secret-name": "s",
        "csi.storage.k8s.io/controller-publish-secret-namespace": "ns",
    }
    out = helm.template(
        {
            "controller": {"resizer": {"enabled": True}},
            "storageClasses": [{"name": "x", "parameters": params}],
        }
    )
    readers = {
        r["metadata"]["name"]
        for r in out.all("ClusterRole")
        if any("secrets" in rule["resources"] for rule in r["rules"])
    }
    assert readers == {"csi-csi-sidecars-attacher"}


def test_no_secret_access_by_default(helm: Helm) -> None:
    out = helm.template({"controller": {r: {"enabled": True} for r in ("snapshotter", "resizer")}})
    for role in out.all("ClusterRole") + out.all("Role"):
        assert not any("secrets" in rule["resources"] for rule in role["rules"]), role["metadata"]


def test_bindings_tie_each_role_to_its_service_account(helm: Helm) -> None:
    out = helm.template({"snapshotController": {"enabled": True}}, namespace="storage")
    expected_sa = {
        "provisioner": "csi-csi-sidecars-controller",
        "attacher": "csi-csi-sidecars-controller",
        "cluster-driver-registrar": "csi-csi-sidecars-controller",
        "snapshot-controller": "csi-csi-sidecars-snapshot-controller",
    }
    for binding in out.all("ClusterRoleBinding") + out.all("RoleBinding"):
        role = binding["roleRef"]["name"].removeprefix("csi-csi-sidecars-").removesuffix("-events")
        (subject,) = binding["subjects"]
        assert subject == {
            "kind": "ServiceAccount",
            "name": expected_sa[role],
            "namespace": "storage",
        }
        assert binding["roleRef"]["kind"] == binding["kind"].removesuffix("Binding")
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]


def test_registrar_may_write_events_in_default(helm: Helm) -> None:
    """Events about the cluster-scoped CSIDriver go to the default namespace."""
    out = helm.template({}, namespace="storage")
    events = out.get("Role", "csi-csi-sidecars-cluster-driver-registrar-events")
    assert events["metadata"]["namespace"] == "default"
    assert events["rules"] == [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
    ]
    binding = out.get("RoleBinding", "csi-csi-sidecars-cluster-driver-registrar-events")
    assert binding["metadata"]["namespace"] == "default"
    in_default = helm.template({}, namespace="default")
    assert not [r for r in in_default.all("Role") if r["metadata"]["name"].endswith("-events")]


def test_node_roles_get_no_api_access(helm: Helm) -> None:
    out = helm.template({"controller": {"enabled": False}, "csiDriver": {"mode": "template"}})
    assert not out.all("ClusterRole") and not out.all("Role")


def test_rbac_create_false(helm: Helm) -> None:
    out = helm.template({"rbac": {"create": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not out.all(kind)
    args = out.container("controller", "cluster-driver-registrar")["args"]
    assert not any(a.startswith("--owner-cluster-role") for a in args)


@pytest.mark.parametrize(
    ("extra", "granted"),
    [
        ([], False),
        (["--enable-distributed-snapshotting"], True),
        (["--enable-distributed-snapshotting=true"], True),
        (["--enable-distributed-snapshotting", "--enable-distributed-snapshotting=false"], False),
    ],
)
def test_snapshot_controller_reads_nodes_only_when_distributed(
    helm: Helm, extra: list[str], granted: bool
) -> None:
    out = helm.template({"snapshotController": {"enabled": True, "extraArgs": extra}})
    rules = _rules(out, "ClusterRole", "snapshot-controller")
    assert rules == _package_rules("snapshot-controller", "cluster", False, nodes=granted)
    assert any(r["resources"] == ["nodes"] for r in rules) is granted
