"""A small RFC 6902 JSON patch applier (add, remove, replace, move, copy, test) for the fake."""

from __future__ import annotations

import copy
from typing import Any

from csi_sidecars.kube.resources import ApiError

# What kube-apiserver answers (422 Invalid) when a JSON patch cannot be applied.
REJECTED = "the server rejected our request due to an error in our request"


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for tok in tokens[:-1]:
        if isinstance(node, dict) and tok in node:
            node = node[tok]
        elif isinstance(node, list) and tok.isdigit() and int(tok) < len(node):
            node = node[int(tok)]
        else:
            raise ApiError(422, "Invalid", REJECTED)
    return node


def _get(doc: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise ApiError(422, "Invalid", REJECTED)


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ApiError(422, "Invalid", REJECTED)
    else:
        raise ApiError(422, "Invalid", f"cannot add at {pointer}")
    return doc


def _remove(doc: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    _get(doc, pointer)
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply ``ops`` to a copy of ``doc``.

    Raises:
        ApiError: 422 for a missing path or a failed ``test``, with the API server's generic
            message for a JSON patch it could not apply; 400/422 for a malformed patch.
    """
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "JSON patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        path = op.get("path", "")
        if kind == "test":
            try:
                current = _get(out, path)
            except ApiError:
                current = None
            if current != op.get("value"):
                raise ApiError(422, "Invalid", REJECTED)
        elif kind == "add":
            out = _add(out, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            out = _remove(out, path)
        elif kind == "replace":
            _get(out, path)
            out = _add(_remove(out, path), path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(out, op.get("from", "")))
            if kind == "move":
                out = _remove(out, op.get("from", ""))
            out = _add(out, path, value)
        else:
            raise ApiError(422, "Invalid", f"unknown JSON patch operation {kind!r}")
    return out
