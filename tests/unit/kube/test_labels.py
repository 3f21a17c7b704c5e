"""Label lists and label selectors, as flags and the API spell them."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.labels import (
    SelectorError,
    parse_pairs,
    parse_query,
    query_matches,
    selector_matches,
    selector_query,
    validate_selector,
)


def test_parse_pairs_both_spellings() -> None:
    assert parse_pairs("a:1, b:2,,") == {"a": "1", "b": "2"}
    assert parse_pairs("a=1,b=x:y", "=") == {"a": "1", "b": "x:y"}
    with pytest.raises(ValueError, match="expected key:value"):
        parse_pairs("a")
    with pytest.raises(ValueError, match="expected key=value"):
        parse_pairs("=v", "=")


SEL = {
    "matchLabels": {"app": "db"},
    "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["gold", "silver"]},
        {"key": "legacy", "operator": "DoesNotExist"},
        {"key": "zone", "operator": "NotIn", "values": ["z9"]},
        {"key": "backup", "operator": "Exists"},
    ],
}


@pytest.mark.parametrize(
    ("labels", "want"),
    [
        ({"app": "db", "tier": "gold", "backup": "y"}, True),
        ({"app": "db", "tier": "gold", "backup": "y", "zone": "z1"}, True),
        ({"app": "db", "tier": "gold", "backup": "y", "zone": "z9"}, False),
        ({"app": "db", "tier": "bronze", "backup": "y"}, False),
        ({"app": "db", "tier": "gold"}, False),
        ({"app": "db", "tier": "gold", "backup": "y", "legacy": ""}, False),
        ({"app": "web", "tier": "gold", "backup": "y"}, False),
    ],
)
def test_selector_matches(labels: dict[str, str], want: bool) -> None:
    assert selector_matches(SEL, labels) is want


def test_empty_selector_matches_everything_and_query() -> None:
    assert selector_matches(None, {"a": "b"}) and selector_matches({}, {})
    assert selector_query(SEL) == "app=db,tier in (gold,silver),!legacy,zone notin (z9),backup"
    assert selector_query({}) == ""


@pytest.mark.parametrize(
    "expr",
    [
        {"key": "a", "operator": "Equals", "values": ["x"]},
        {"key": "a", "operator": "In", "values": []},
        {"key": "a", "operator": "Exists", "values": ["x"]},
        {"operator": "Exists"},
    ],
)
def test_bad_selectors(expr: dict[str, object]) -> None:
    with pytest.raises(SelectorError):
        validate_selector({"matchExpressions": [expr]})


@pytest.mark.parametrize(
    ("query", "labels", "want"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b,c", {"a": "b"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("!a", {"a": ""}, False),
        ("t in (x, y),z notin (q)", {"t": "y", "z": "r"}, True),
        ("t in (x,y)", {"t": "w"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_query_strings(query: str, labels: dict[str, str], want: bool) -> None:
    assert query_matches(query, labels) is want


def test_query_round_trips_selector_query() -> None:
    assert selector_query(parse_query(selector_query(SEL))) == selector_query(SEL)
    with pytest.raises(SelectorError):
        parse_query("a in x")
