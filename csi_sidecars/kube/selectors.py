"""Node selector terms, and label selectors printed as Go prints them.

Label selectors are evaluated by :func:`csi_sidecars.kube.labels.selector_matches` (the one
implementation); this module adds what the snapshot controller also needs:

* :func:`format_selector` - ``metav1.FormatLabelSelector`` for messages: every requirement
  (``matchLabels`` and ``matchExpressions``) sorted by key (``app=db,tier in (a,b),!legacy``),
  ``<none>`` for an empty selector, ``<error>`` for a malformed one;
* :func:`node_matches` - ``MatchNodeSelectorTerms``: the terms are ORed, the requirements of a
  term (``matchExpressions`` on labels with ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``,
  ``Gt``, ``Lt``; ``matchFields`` on ``metadata.name``) ANDed; a term without requirements
  matches nothing. A PV's ``spec.nodeAffinity.required`` is evaluated against cached Nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from csi_sidecars.kube.labels import SelectorError, validate_selector


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """The selector as Go's ``metav1.FormatLabelSelector`` prints it."""
    if not selector:
        return "<none>"
    try:
        validate_selector(selector)
        labels = selector.get("matchLabels") or {}
        if not isinstance(labels, dict):
            raise SelectorError("matchLabels must be a map")
    except SelectorError:
        return "<error>"
    parts = [(str(k), f"{k}={v}") for k, v in labels.items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = str(expr["key"]), str(expr["operator"])
        values = ",".join(sorted(_str_list(expr.get("values"))))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }[op]
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts, key=lambda p: p[0])) or "<none>"


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
