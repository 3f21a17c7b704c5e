"""RBAC of every sidecar identity: the ClusterRole manifests in this directory, and bindings.

The YAML files are data (a Helm chart can ship the same rules); this module reads them and builds
the bindings that tie them to an identity. One file per identity, named after it. A ClusterRole
annotated ``csi-sidecars.k8s.io/bind: cluster`` is bound cluster-wide; ``namespace`` means the
rules only apply in the namespaces the sidecar runs in, through a RoleBinding there.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml  # type: ignore[import-untyped]

BIND_ANNOTATION = "csi-sidecars.k8s.io/bind"
RBAC_GROUP = "rbac.authorization.k8s.io"

#: Every sidecar identity the testbed creates, in a stable order.
IDENTITIES: tuple[str, ...] = (
    "csi-provisioner",
    "csi-attacher",
    "csi-resizer",
    "csi-snapshotter",
    "snapshot-controller",
    "cluster-driver-registrar",
    "node-driver-registrar",
)


def cluster_roles(identity: str) -> list[dict[str, Any]]:
    """The ClusterRoles of ``identity``, as read from ``<identity>.yaml``.

    Raises:
        FileNotFoundError: there is no file for ``identity``.
    """
    text = resources.files(__package__).joinpath(f"{identity}.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _scope(role: dict[str, Any]) -> str:
    scope = role.get("metadata", {}).get("annotations", {}).get(BIND_ANNOTATION, "cluster")
    if scope not in ("cluster", "namespace"):
        raise ValueError(f"ClusterRole {role['metadata']['name']}: bad {BIND_ANNOTATION} {scope!r}")
    return str(scope)


def _subject(user: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": user}


def cluster_objects(identity: str, user: str | None = None) -> list[dict[str, Any]]:
    """ClusterRoles of ``identity`` plus ClusterRoleBindings of its cluster-scoped ones.

    Args:
        identity: file name (without ``.yaml``).
        user: the user name to bind (default: the identity itself).
    """
    objects: list[dict[str, Any]] = []
    for role in cluster_roles(identity):
        objects.append(role)
        if _scope(role) == "cluster":
            name = role["metadata"]["name"]
            objects.append(
                {
                    "apiVersion": f"{RBAC_GROUP}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": f"{name}-{user or identity}"},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                    "subjects": [_subject(user or identity)],
                }
            )
    return objects


def namespace_bindings(
    identity: str, namespace: str, user: str | None = None
) -> list[dict[str, Any]]:
    """RoleBindings in ``namespace`` for the namespace-scoped ClusterRoles of ``identity``."""
    bindings: list[dict[str, Any]] = []
    for role in cluster_roles(identity):
        if _scope(role) != "namespace":
            continue
        name = role["metadata"]["name"]
        bindings.append(
            {
                "apiVersion": f"{RBAC_GROUP}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{name}-{user or identity}", "namespace": namespace},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                "subjects": [_subject(user or identity)],
            }
        )
    return bindings


def api_path(obj: dict[str, Any]) -> str:
    """The collection path an RBAC object is created in."""
    kind = obj["kind"]
    base = f"/apis/{RBAC_GROUP}/v1"
    if kind == "ClusterRole":
        return f"{base}/clusterroles"
    if kind == "ClusterRoleBinding":
        return f"{base}/clusterrolebindings"
    if kind == "RoleBinding":
        return f"{base}/namespaces/{obj['metadata']['namespace']}/rolebindings"
    raise ValueError(f"unexpected RBAC kind {kind}")
