"""Labels: the one parser of ``key<sep>value`` lists, and label selectors as the API defines them.

Flags carry label lists in two spellings (``--leader-election-labels=k:v,k2:v2`` of csi-lib-utils,
``--labels=k=v`` of the cluster-driver-registrar); :func:`parse_pairs` reads both.
:func:`selector_matches` evaluates a ``metav1.LabelSelector`` (``matchLabels`` and
``matchExpressions`` with ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``) against an object's
labels, and :func:`selector_query` renders one as the ``labelSelector`` query string, so list
calls and cached lookups select the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def parse_pairs(text: str, sep: str = ":", *, what: str = "label") -> dict[str, str]:
    """Parse ``k1<sep>v1,k2<sep>v2`` (blank items skipped, spaces trimmed).

    Raises:
        ValueError: an item without ``sep`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ValueError(f"invalid {what} {item!r}, expected key{sep}value")
        out[key.strip()] = value.strip()
    return out


class SelectorError(ValueError):
    """A label selector the API server would reject."""


def _expressions(selector: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    out: list[tuple[str, str, list[str]]] = []
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            raise SelectorError(f"matchExpressions entry {expr!r} is not an object")
        key, op = str(expr.get("key") or ""), str(expr.get("operator") or "")
        values = [str(v) for v in expr.get("values") or []]
        if not key:
            raise SelectorError("matchExpressions entry without a key")
        if op not in OPERATORS:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
        if op in ("In", "NotIn") and not values:
            raise SelectorError(f"values must be non-empty for operator {op} (key {key})")
        if op in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"values must be empty for operator {op} (key {key})")
        out.append((key, op, values))
    return out


def validate_selector(selector: Mapping[str, Any] | None) -> None:
    """Raise :class:`SelectorError` for a malformed selector (None or ``{}`` is valid)."""
    _expressions(selector or {})


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector``. An empty selector matches everything.

    Raises:
        SelectorError: a malformed selector.
    """
    sel = selector or {}
    for key, value in (sel.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for key, op, values in _expressions(sel):
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def selector_query(selector: Mapping[str, Any] | None) -> str:
    """The ``labelSelector`` query string of ``selector`` (``""`` selects everything).

    Raises:
        SelectorError: a malformed selector.
    """
    sel = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for key, op, values in _expressions(sel):
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


def _split_terms(text: str) -> list[str]:
    """Split a selector string at commas outside ``(...)``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def parse_query(text: str | None) -> dict[str, Any]:
    """The selector a ``labelSelector`` query string means (the inverse of :func:`selector_query`).

    Accepts ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, ``k`` and ``!k``.

    Raises:
        SelectorError: a term it cannot read.
    """
    labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    for term in _split_terms(text or ""):
        words = term.split(None, 1)
        if len(words) == 2 and words[1].split(None, 1)[0] in ("in", "notin"):
            op, _, rest = words[1].partition(" ")
            rest = rest.strip()
            if not (rest.startswith("(") and rest.endswith(")")):
                raise SelectorError(f"invalid label selector term {term!r}")
            values = [v.strip() for v in rest[1:-1].split(",") if v.strip()]
            exprs.append(
                {"key": words[0], "operator": "In" if op == "in" else "NotIn", "values": values}
            )
        elif "!=" in term:
            key, _, value = term.partition("!=")
            exprs.append({"key": key.strip(), "operator": "NotIn", "values": [value.strip()]})
        elif "=" in term:
            key, _, value = term.replace("==", "=", 1).partition("=")
            labels[key.strip()] = value.strip()
        elif term.startswith("!"):
            exprs.append({"key": term[1:].strip(), "operator": "DoesNotExist"})
        elif " " not in term:
            exprs.append({"key": term, "operator": "Exists"})
        else:
            raise SelectorError(f"invalid label selector term {term!r}")
    out: dict[str, Any] = {}
    if labels:
        out["matchLabels"] = labels
    if exprs:
        out["matchExpressions"] = exprs
    return out


def query_matches(text: str | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy the ``labelSelector`` query string ``text``.

    Raises:
        SelectorError: a malformed selector.
    """
    return selector_matches(parse_query(text), labels)


def field_query_matches(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` satisfies a ``fieldSelector`` query (``spec.nodeName=x,a.b!=y``)."""
    if not selector:
        return True
    for term in selector.split(","):
        neg = "!=" in term
        path, _, want = term.replace("!=", "=").replace("==", "=").partition("=")
        node: Any = obj
        for part in path.strip().split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if (str(node or "") == want.strip()) == neg:
            return False
    return True
