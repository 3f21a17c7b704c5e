"""Our snapshot CRDs are the same API as external-snapshotter v8.6.0's, field by field.

The upstream CRDs are read at test time from the client module in the Go module cache
(``github.com/kubernetes-csi/external-snapshotter/client/v8@v8.6.0``, ``config/crd/``); they are
not part of this repository. Missing module: skip, or fail under ``CI=true``.

Both sides are normalised, then compared for exact equality. Normalisation removes only:

* every ``description`` (of schema nodes and printer columns): pure documentation, which we write
  in our own words. A property *named* ``description`` would be kept (none exists).
* the ``controller-gen.kubebuilder.io/version`` annotation: it records which controller-gen
  release wrote upstream's files; ours are not written by controller-gen, so claiming a version
  would be false. It has no effect on the API server.
* the top-level ``status`` stanza upstream's snapshot.storage.k8s.io files carry (empty accepted
  names and conditions): the API server owns a CRD's status and ignores it on create.

Everything else must be equal, in order: names, scope, short names, categories, annotations
(``api-approved.kubernetes.io``), every version with its served/storage/deprecated flags and
deprecation warning, subresources, printer columns, and the whole schema: types, formats,
patterns, enums, minimums, required lists, x-kubernetes-* markers, CEL rules and their messages.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi_sidecars import crds
from tests.support.upstream import require_module

REPO = Path(__file__).resolve().parents[3]
IGNORED_ANNOTATIONS = ("controller-gen.kubebuilder.io/version",)


def upstream_dir() -> Path:
    """upstream's config/crd directory (skips or fails the test when the module is absent)."""
    return require_module() / "config" / "crd"


def upstream_file(name: str) -> Path:
    """upstream's file for CRD ``<plural>.<group>``: ``<group>_<plural>.yaml``."""
    plural, _, group = name.partition(".")
    return upstream_dir() / f"{group}_{plural}.yaml"


def _strip_descriptions(node: Any, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            key: _strip_descriptions(value, in_properties=key == "properties" and not in_properties)
            for key, value in node.items()
            if in_properties or key != "description"
        }
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    return node


def normalise(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD without what the module docstring lists as ignored."""
    out = copy.deepcopy(crd)
    out.pop("status", None)
    annotations = out.get("metadata", {}).get("annotations", {})
    for key in IGNORED_ANNOTATIONS:
        annotations.pop(key, None)
    result: dict[str, Any] = _strip_descriptions(out)
    return result


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Every place where two normalised structures differ, as readable paths."""
    if type(ours) is not type(theirs):
        return [f"{path or '/'}: ours {ours!r:.80} != upstream {theirs!r:.80}"]
    if isinstance(ours, dict):
        found: list[str] = []
        for key in sorted(set(ours) | set(theirs)):
            where = f"{path}/{key}"
            if key not in ours:
                found.append(f"{where}: missing in ours (upstream {theirs[key]!r:.80})")
            elif key not in theirs:
                found.append(f"{where}: only in ours ({ours[key]!r:.80})")
            else:
                found += differences(ours[key], theirs[key], where)
        return found
    if isinstance(ours, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} items in ours, {len(theirs)} upstream: {ours!r:.200}"]
        return [
            d
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    if ours != theirs:
        return [f"{path}: ours {ours!r} != upstream {theirs!r}"]
    return []


@pytest.mark.parametrize("name", crds.SNAPSHOT_CRD_NAMES)
def test_crd_equals_upstream(name: str) -> None:
    theirs = yaml.safe_load(upstream_file(name).read_text())
    found = differences(normalise(crds.load(name)), normalise(theirs))
    assert not found, f"{name} differs from external-snapshotter v8.6.0:\n" + "\n".join(found)


def test_same_set_of_crds_as_upstream() -> None:
    """upstream's kustomization installs exactly the CRDs we ship (a new one would show here)."""
    kustomization = yaml.safe_load((upstream_dir() / "kustomization.yaml").read_text())
    theirs = set()
    for resource in kustomization["resources"]:
        doc = yaml.safe_load((upstream_dir() / resource).read_text())
        theirs.add(doc["metadata"]["name"])
    assert theirs == set(crds.SNAPSHOT_CRD_NAMES)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["spec"]["versions"][0].update(served=False), "/spec/versions[0]/served"),
        (
            lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
                "properties"
            ]["source"]["x-kubernetes-validations"][2].update(message="changed"),
            "x-kubernetes-validations[2]/message",
        ),
        (lambda c: c["spec"]["names"]["shortNames"].append("x"), "/spec/names/shortNames"),
        (
            lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"].pop(1),
            "additionalPrinterColumns",
        ),
        (lambda c: c["metadata"]["annotations"].clear(), "api-approved.kubernetes.io"),
    ],
)
def test_comparison_catches_api_changes(mutate: Any, expected: str) -> None:
    """The normalisation hides descriptions only: a real API change is reported."""
    ours = crds.load(f"volumesnapshots.{crds.SNAPSHOT_GROUP}")
    changed = copy.deepcopy(ours)
    mutate(changed)
    found = differences(normalise(changed), normalise(ours))
    assert any(expected in line for line in found), found


def test_descriptions_are_ignored() -> None:
    ours = crds.load(f"volumesnapshots.{crds.SNAPSHOT_GROUP}")
    changed = copy.deepcopy(ours)
    schema = changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["description"] = "something else"
    schema["properties"]["spec"]["properties"]["source"]["description"] = "other words"
    assert differences(normalise(changed), normalise(ours)) == []
    # ...but a property that happens to be called "description" is API, not documentation.
    schema["properties"]["description"] = {"type": "string"}
    assert differences(normalise(changed), normalise(ours)) == [
        "/spec/versions[0]/schema/openAPIV3Schema/properties/description: only in ours "
        "({'type': 'string'})"
    ]


def test_committed_yaml_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-crds.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
