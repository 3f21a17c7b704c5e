"""Label selector and node selector term evaluation (kube/selectors)."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.kube.selectors import format_selector, node_matches


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "k", "operator": "Near", "values": ["x"]}]},
        {"matchExpressions": [{"key": "k", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"operator": "Exists"}]},
        {"matchLabels": ["not", "a", "map"]},
    ],
)
def test_malformed_selectors_print_as_error(selector: Any) -> None:
    assert format_selector(selector) == "<error>"


def test_format_selector_like_go() -> None:
    sel = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["y", "x"]},
            {"key": "d", "operator": "NotIn", "values": ["z"]},
            {"key": "e", "operator": "Exists"},
            {"key": "f", "operator": "DoesNotExist"},
        ],
    }
    assert format_selector(sel) == "a=1,b=2,c in (x,y),d notin (z),e,!f"
    assert format_selector({}) == "<none>"
    assert format_selector(None) == "<none>"


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def test_node_terms_are_ored_and_requirements_anded() -> None:
    terms = [
        {
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "disk", "operator": "Exists"},
            ]
        },
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]},
    ]
    assert node_matches(terms, node("n1", zone="a", disk="ssd"))
    assert not node_matches(terms, node("n2", zone="a"))
    assert node_matches(terms, node("n3"))
    assert not node_matches([{}], node("n1", zone="a"))  # an empty term matches nothing
    assert not node_matches(None, node("n1"))


def test_node_gt_lt() -> None:
    gt = [{"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]}]
    lt = [{"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]}]
    assert node_matches(gt, node("n", cpus="8")) and not node_matches(gt, node("n", cpus="4"))
    assert node_matches(lt, node("n", cpus="2")) and not node_matches(lt, node("n", cpus="x"))
