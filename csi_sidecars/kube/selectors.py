"""Label selectors and node selector terms, evaluated against cached objects.

Roles that pick objects by a ``LabelSelector`` (a VolumeGroupSnapshot's ``spec.source.selector``)
or nodes by a PV's ``spec.nodeAffinity.required`` evaluate them here, from their informer caches,
instead of asking the API server. The semantics are apimachinery's:

* :func:`matches` - ``matchLabels`` and every ``matchExpressions`` requirement (``In``,
  ``NotIn``, ``Exists``, ``DoesNotExist``) must hold; an empty selector matches everything; a
  malformed requirement raises :class:`SelectorError` (Go's ``LabelSelectorAsSelector`` error);
* :func:`format_selector` - ``metav1.FormatLabelSelector``: requirements sorted by key
  (``app=db,tier in (a,b),!legacy``), ``<none>`` for an empty selector;
* :func:`node_matches` - ``MatchNodeSelectorTerms``: the terms are ORed, the requirements of a
  term (``matchExpressions`` on labels with ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``,
  ``Gt``, ``Lt``; ``matchFields`` on ``metadata.name``) ANDed; a term without requirements
  matches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SelectorError(ValueError):
    """A selector the API would reject (unknown operator, values where none belong, ...)."""


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _requirements(selector: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    out: list[tuple[str, str, list[str]]] = []
    labels = selector.get("matchLabels") or {}
    if not isinstance(labels, dict):
        raise SelectorError("matchLabels must be a map of strings")
    for key, value in labels.items():
        out.append((str(key), "=", [str(value)]))
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise SelectorError("matchExpressions must be a list")
    for expr in exprs:
        if not isinstance(expr, dict) or not expr.get("key"):
            raise SelectorError("a matchExpressions entry needs a key")
        key, op = str(expr["key"]), str(expr.get("operator", ""))
        values = _str_list(expr.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                raise SelectorError(f"values for {op} must not be empty ({key})")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise SelectorError(f"values for {op} must be empty ({key})")
        else:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        out.append((key, op, values))
    return out


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy the ``LabelSelector`` ``selector`` (None matches nothing).

    Raises:
        SelectorError: the selector is malformed.
    """
    if selector is None:
        return False
    for key, op, values in _requirements(selector):
        present = key in labels
        if op in ("=", "In") and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """The selector as Go's ``metav1.FormatLabelSelector`` prints it (``<error>`` if malformed)."""
    if selector is None:
        return "<none>"
    try:
        reqs = _requirements(selector)
    except SelectorError:
        return "<error>"
    parts: list[tuple[str, str]] = []
    for key, op, values in reqs:
        if op == "=":
            text = f"{key}={values[0]}"
        elif op == "In":
            text = f"{key} in ({','.join(sorted(values))})"
        elif op == "NotIn":
            text = f"{key} notin ({','.join(sorted(values))})"
        elif op == "Exists":
            text = key
        else:
            text = f"!{key}"
        parts.append((key, text))
    out = ",".join(text for _, text in sorted(parts, key=lambda p: p[0]))
    return out or "<none>"


def _node_requirement(expr: Mapping[str, Any], value: str | None) -> bool:
    op = str(expr.get("operator", ""))
    values = _str_list(expr.get("values"))
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_matches(terms: Sequence[Any] | None, node: Mapping[str, Any]) -> bool:
    """Whether ``node`` satisfies any of the ``NodeSelectorTerm`` list ``terms``."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = str(meta.get("name") or "")
    for term in terms or []:
        if not isinstance(term, dict):
            continue
        exprs = [e for e in term.get("matchExpressions") or [] if isinstance(e, dict)]
        fields = [e for e in term.get("matchFields") or [] if isinstance(e, dict)]
        if not exprs and not fields:
            continue
        if all(_node_requirement(e, labels.get(str(e.get("key", "")))) for e in exprs) and all(
            _node_requirement(e, name if e.get("key") == "metadata.name" else None) for e in fields
        ):
            return True
    return False
