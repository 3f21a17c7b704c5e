"""--owner-cluster-role: the CSIDriver's ownerReference and how a missing one counts as drift."""

from __future__ import annotations

import pytest

from csi_sidecars.registrar import cluster_spec as cs

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "csi-registrar", "uid": "uid-1", "resourceVersion": "7"},
    "rules": [],
}
INFO = cs.DriverInfo("x.csi.example.com", controller_service=True, publish_unpublish=True)


def test_owner_reference_names_the_role_by_uid() -> None:
    assert cs.owner_reference(ROLE) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": "csi-registrar",
        "uid": "uid-1",
    }


def test_owner_without_uid_is_an_error() -> None:
    with pytest.raises(ValueError, match="owner object lacks uid"):
        cs.owner_reference({**ROLE, "metadata": {"name": "csi-registrar"}})


def test_with_owner_leaves_the_original_alone() -> None:
    desired = cs.build_csidriver(INFO, cs.SpecOptions())
    owned = cs.with_owner(desired, cs.owner_reference(ROLE))
    assert owned["metadata"]["ownerReferences"] == [cs.owner_reference(ROLE)]
    assert "ownerReferences" not in desired["metadata"]
    assert owned["metadata"]["labels"] == desired["metadata"]["labels"]


def test_a_missing_owner_reference_is_mutable_drift() -> None:
    owned = cs.with_owner(cs.build_csidriver(INFO, cs.SpecOptions()), cs.owner_reference(ROLE))
    live = {"metadata": {**owned["metadata"], "ownerReferences": []}, "spec": owned["spec"]}
    diff = cs.diff_csidriver(owned, live)
    assert diff.kind is cs.DiffKind.DRIFT
    assert diff.describe() == (
        "metadata.ownerReferences[ClusterRole/csi-registrar] (have unset, want uid-1)"
    )
    # another owner's reference next to ours is fine
    live["metadata"]["ownerReferences"] = [{"uid": "other"}, cs.owner_reference(ROLE)]
    assert cs.diff_csidriver(owned, live).kind is cs.DiffKind.IN_SYNC
