"""Decoding list pages and watch events straight into slim dicts (msgspec), skipping the rest.

An informer keeps a few fields of each object (:class:`~csi_sidecars.kube.store.Projection`),
yet ``json.loads`` builds every field of every object first: managedFields, status conditions,
the whole spec. :class:`SlimDecoder` turns the projection's field paths into a msgspec type
(nested ``TypedDict`` s whose leaves are ``Any``), so the parser skips undeclared fields
without building them: about 3x less CPU per object than ``json.loads`` (see
``bench/kube_store_memory.py``), and a list page of 500 objects never exists in full in memory.

What comes out is what ``json.loads`` followed by the projection would give: plain dicts and
lists with only the declared paths (plus whatever the projection always keeps). A page or event
whose shape the type does not fit (an object where a path expects one, e.g. ``"spec": 5``) is
decoded with ``json.loads`` instead (on a page, that object alone), so a malformed object
reaches the store exactly as before.
Watch ``ERROR`` events (a ``Status``, not an object of the resource) are decoded whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

import msgspec

from csi_sidecars.kube.resources import JsonDict

_LEAF = object()
#: List answers larger than this have their items decoded one at a time (see SlimDecoder.page).
LAZY_BYTES = 4 * 2**20


def _typed_dict(name: str, fields: dict[str, Any]) -> Any:
    make: Any = TypedDict  # built at run time from the declared paths
    return make(name, fields, total=False)


def _tree(paths: Sequence[Sequence[str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if child is _LEAF:
                break
            node = child
        else:
            node[path[-1]] = _LEAF
    return root


def _typed(name: str, node: dict[str, Any]) -> Any:
    fields: dict[str, Any] = {}
    for i, (key, child) in enumerate(sorted(node.items())):
        fields[key] = Any if child is _LEAF else _typed(f"{name}_{i}", child) | None
    return _typed_dict(name, fields)


class _Event(TypedDict, total=False):
    type: str
    object: msgspec.Raw


class SlimDecoder:
    """Decoders for one projection: list pages, watch lines and single objects.

    Args:
        paths: the projection's field paths, each split at dots; None decodes whole objects.
    """

    def __init__(self, paths: Sequence[Sequence[str]] | None) -> None:
        obj: Any = Any if paths is None else _typed("Slim", _tree(paths))
        items: Any = list[obj] | None
        page = _typed_dict("SlimPage", {"metadata": dict[str, Any] | None, "items": items})
        self._object = msgspec.json.Decoder(obj)
        self._page = msgspec.json.Decoder(page)
        self._event = msgspec.json.Decoder(_Event)
        raw_items: Any = list[msgspec.Raw] | None
        self._raw_page = msgspec.json.Decoder(
            _typed_dict("RawPage", {"metadata": dict[str, Any] | None, "items": raw_items})
        )

    def object(self, raw: bytes | msgspec.Raw) -> Any:
        """One object (``json.loads`` when its shape does not fit)."""
        try:
            return self._object.decode(raw)
        except msgspec.ValidationError:
            return json.loads(bytes(raw))

    def page(self, raw: bytes) -> JsonDict:
        """A list answer: ``metadata`` as sent and ``items`` slim.

        ``items`` is a list; for an answer over :data:`LAZY_BYTES` (an initial list served
        whole from the API server's cache: tens of thousands of objects) it is a one-pass
        iterator that decodes each object when it is reached, so the whole list never exists
        decoded at once.

        Raises:
            ValueError: the answer is not JSON.
        """
        if len(raw) > LAZY_BYTES:
            try:
                lazy: JsonDict = self._raw_page.decode(raw)
            except msgspec.ValidationError:
                whole: JsonDict = json.loads(raw)
                return whole
            lazy["items"] = map(self.object, lazy.get("items") or ())
            return lazy
        try:
            out: JsonDict = self._page.decode(raw)
        except msgspec.ValidationError:
            # One odd object: decode the others slim all the same, it alone whole.
            try:
                out = self._raw_page.decode(raw)
            except msgspec.ValidationError:
                whole = json.loads(raw)
                return whole
            out["items"] = [self.object(item) for item in out.get("items") or ()]
        return out

    def event(self, line: bytes) -> JsonDict:
        """One watch line as ``{"type": ..., "object": ...}`` with the object slim.

        Raises:
            ValueError: the line is not JSON.
        """
        try:
            event = self._event.decode(line)
        except msgspec.ValidationError:
            out: JsonDict = json.loads(line)
            return out
        raw = event.get("object")
        if raw is None:
            return {"type": event.get("type"), "object": None}
        if event.get("type") == "ERROR":
            return {"type": "ERROR", "object": json.loads(bytes(raw))}
        return {"type": event.get("type"), "object": self.object(raw)}
