"""values.schema.json: bad values are rejected with the key's path; it matches values.yaml."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.unit.chart.conftest import CHART, Helm

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # a typo'd key
        ({"controller": {"replica": 3}}, "at '/controller': additional properties 'replica'"),
        ({"kubeletdir": "/x"}, "additional properties 'kubeletdir' not allowed"),
        # a string where a number belongs
        (
            {"controller": {"replicas": "two"}},
            "at '/controller/replicas': got string, want integer",
        ),
        # an unknown role
        (
            {"controller": {"healthMonitor": {"enabled": True}}},
            "at '/controller': additional properties 'healthMonitor' not allowed",
        ),
        (
            {"node": {"provisioner": {"enabled": True}}},
            "at '/node': additional properties 'provisioner' not allowed",
        ),
        # a typo inside a role
        (
            {"controller": {"provisioner": {"extraArg": ["--v=5"]}}},
            "at '/controller/provisioner': additional properties 'extraArg'",
        ),
        ({"controller": {"attacher": {"enabled": "yes"}}}, "at '/controller/attacher/enabled'"),
        # a duration without a unit (Go would reject it at start-up)
        (
            {"controller": {"provisioner": {"timeout": "60"}}},
            "at '/controller/provisioner/timeout'",
        ),
        # an extra arg that is no flag
        ({"controller": {"provisioner": {"extraArgs": ["timeout=5m"]}}}, "extraArgs/0"),
        ({"csiDriver": {"mode": "helm"}}, "at '/csiDriver/mode'"),
        ({"csiDriver": {"fsGroupPolicy": "file"}}, "at '/csiDriver/fsGroupPolicy'"),
        ({"image": {"digest": "abc"}}, "at '/image/digest'"),
        (
            {"storageClasses": [{"parameters": {}}]},
            "at '/storageClasses/0': missing property 'name'",
        ),
        ({"kubeletDir": "var/lib/kubelet"}, "at '/kubeletDir'"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    error = helm.error(values)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_the_defaults_pass_the_schema(helm: Helm) -> None:
    helm.template({})


def _schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    node = _resolve(node)
    paths: set[str] = set()
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        paths |= _schema_paths(child, f"{path}.")
    return paths


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _value_paths(node: Any, schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Paths of values.yaml down to where the schema stops describing keys (free-form maps)."""
    paths: set[str] = set()
    schema = _resolve(schema)
    if not isinstance(node, dict) or "properties" not in schema:
        return paths
    for key, value in node.items():
        path = f"{prefix}{key}"
        paths.add(path)
        child = schema["properties"].get(key)
        if child is not None:
            paths |= _value_paths(value, child, f"{path}.")
    return paths


def test_schema_and_values_describe_the_same_keys() -> None:
    """Every key of values.yaml is in the schema and the schema knows no key values.yaml lacks."""
    in_values = _value_paths(VALUES, SCHEMA)
    in_schema = _schema_paths(SCHEMA)
    assert sorted(in_values - in_schema) == []
    assert sorted(p for p in in_schema - in_values if "." in p and not _in_list(p)) == []


def _in_list(path: str) -> bool:
    """List items and Kubernetes resource requirements: their keys are not all in values.yaml."""
    head = path.split(".", maxsplit=1)[0]
    return head in ("storageClasses", "imagePullSecrets") or any(
        f".{part}." in f".{path}" for part in ("tokenRequests", "resources")
    )


def test_every_object_of_the_schema_is_strict() -> None:
    """additionalProperties: false wherever the schema lists properties."""
    loose: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            # env entries are Kubernetes EnvVars: only their name is checked.
            strict = node.get("additionalProperties") is False or where.endswith("env.items")
            if "properties" in node and not strict:
                loose.append(where)
            for key, child in node.items():
                walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{where}[{i}]")

    walk(SCHEMA, "$")
    assert loose == []
