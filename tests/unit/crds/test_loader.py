"""The CRD loader: the six shipped manifests, read as package data."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars import crds


def _walk_schemas(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk_schemas(child, f"{path}.{name}")
    if "properties" in node.get("items", {}):  # list entries that are objects; scalars need none
        found += _walk_schemas(node["items"], f"{path}[]")
    return found


def test_snapshot_crds_in_install_order() -> None:
    loaded = crds.snapshot_crds()
    assert [c["metadata"]["name"] for c in loaded] == list(crds.SNAPSHOT_CRD_NAMES)
    for crd in loaded:
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        plural, _, group = crd["metadata"]["name"].partition(".")
        assert crd["spec"]["group"] == group
        assert crd["spec"]["names"]["plural"] == plural
        # Protected groups (*.k8s.io) need the approval annotation or the API server refuses.
        assert crd["metadata"]["annotations"]["api-approved.kubernetes.io"].startswith("https://")
        assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == (
            ["v1"] if group == crds.SNAPSHOT_GROUP else ["v1beta2"]
        )


def test_every_call_returns_fresh_objects() -> None:
    first = crds.snapshot_crds()
    first[0]["spec"]["names"]["kind"] = "Changed"
    assert crds.snapshot_crds()[0]["spec"]["names"]["kind"] == "VolumeSnapshotClass"


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(
        KeyError, match="unknown CRD 'volumesnapshot'; known: volumesnapshotclasses"
    ):
        crds.load("volumesnapshot")


@pytest.mark.parametrize("name", crds.SNAPSHOT_CRD_NAMES)
def test_every_field_of_served_versions_is_documented(name: str) -> None:
    """kubectl explain shows our descriptions; only the standard metadata field has none."""
    for version in crds.load(name)["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        undocumented = [
            path
            for path, node in _walk_schemas(schema, version["name"])
            if not node.get("description") and not path.endswith(".metadata")
        ]
        assert not undocumented, undocumented


def test_is_established() -> None:
    def crd(*conditions: tuple[str, str]) -> dict[str, Any]:
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert crds.is_established(crd(("NamesAccepted", "True"), ("Established", "True")))
    assert not crds.is_established(crd(("NamesAccepted", "True"), ("Established", "False")))
    assert not crds.is_established(crd(("NamesAccepted", "True")))
    assert not crds.is_established({"metadata": {"name": "x"}})
    assert not crds.is_established({"status": {"conditions": None}})


def test_served_versions_storage_first() -> None:
    group = crds.load(f"volumegroupsnapshots.{crds.GROUP_SNAPSHOT_GROUP}")
    assert crds.served_versions(group) == ["v1beta2", "v1", "v1beta1"]
    assert crds.served_versions(crds.load(f"volumesnapshots.{crds.SNAPSHOT_GROUP}")) == ["v1"]
