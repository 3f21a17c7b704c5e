"""Small readers for raw Kubernetes objects (dicts as the API server returns them) and Go-style
formatting of values inside error messages.

The provisioner never builds kubernetes_asyncio models; it reads the JSON the kube layer hands
over. These helpers read a field without raising on absent parents, so a malformed object yields
"absent" and a clear decision instead of a ``KeyError``. The ``go_*`` helpers print values the way
Go's ``%q`` / ``%v`` do, so error messages and events read like the Go sidecar's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

JsonDict = dict[str, Any]


def meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``obj.metadata`` (empty when absent or not an object)."""
    value = (obj or {}).get("metadata")
    return value if isinstance(value, dict) else {}


def spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``obj.spec`` (empty when absent or not an object)."""
    value = (obj or {}).get("spec")
    return value if isinstance(value, dict) else {}


def status(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``obj.status`` (empty when absent or not an object)."""
    value = (obj or {}).get("status")
    return value if isinstance(value, dict) else {}


def annotations_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    """``metadata.annotations`` (empty when absent)."""
    value = meta(obj).get("annotations")
    return value if isinstance(value, dict) else {}


def labels_of(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    """``metadata.labels`` (empty when absent)."""
    value = meta(obj).get("labels")
    return value if isinstance(value, dict) else {}


def finalizers(obj: Mapping[str, Any] | None) -> list[str]:
    """``metadata.finalizers`` (empty when absent)."""
    value = meta(obj).get("finalizers")
    return [f for f in value if isinstance(f, str)] if isinstance(value, list) else []


def name(obj: Mapping[str, Any] | None) -> str:
    """``metadata.name`` (empty when absent)."""
    return str(meta(obj).get("name") or "")


def namespace(obj: Mapping[str, Any] | None) -> str:
    """``metadata.namespace`` (empty when absent)."""
    return str(meta(obj).get("namespace") or "")


def uid(obj: Mapping[str, Any] | None) -> str:
    """``metadata.uid`` (empty when absent)."""
    return str(meta(obj).get("uid") or "")


def is_deleting(obj: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata.deletionTimestamp`` is set."""
    return bool(meta(obj).get("deletionTimestamp"))


def str_list(value: Any) -> list[str]:
    """``value`` as a list of strings (non-strings dropped; anything else -> empty)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def str_map(value: Any) -> dict[str, str]:
    """``value`` as a str->str dict (non-string values dropped; anything else -> empty)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (a double-quoted string with escapes)."""
    return json.dumps(text, ensure_ascii=False)


def go_list(items: Iterable[Any]) -> str:
    """A list as Go's ``%v`` prints a slice of strings: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def go_quoted_list(items: Iterable[str]) -> str:
    """A list as Go's ``%q`` prints a slice of strings: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_map(mapping: Mapping[str, str] | None) -> str:
    """A map as Go's ``%v`` prints it: ``map[a:1 b:2]`` with sorted keys."""
    items = sorted((mapping or {}).items())
    return "map[" + " ".join(f"{k}:{v}" for k, v in items) + "]"
