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

:class:`PageSplitter` decodes a list answer while it arrives, object by object, so an informer's
initial list (tens of thousands of objects in one answer) is never held whole.
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
#: A list answer whose ``"items":[`` is not within this many bytes is decoded whole.
HEAD_LIMIT = 2**16
#: Failed cuts in a row after which a splitter stops cutting and decodes the rest whole.
MAX_MISSES = 8
_ITEMS = b'"items":['


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

    def splitter(self) -> PageSplitter:
        """A :class:`PageSplitter` for one list answer."""
        return PageSplitter(self)

    def head(self, raw: bytes) -> JsonDict:
        """A list answer's ``metadata`` (items left raw, not decoded)."""
        out: JsonDict = self._raw_page.decode(raw)
        return out

    def object(self, raw: bytes | memoryview | msgspec.Raw) -> Any:
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


class PageSplitter:
    """One list answer, fed in pieces as they arrive, cut into objects as each one completes.

    The API server writes a list as ``{"kind":...,"apiVersion":...,"metadata":{...},"items":[
    {...},{...}]}``: the items last, no space between them, each opening with the same key
    (``{"metadata":`` for built-in kinds, ``{"apiVersion":`` for custom resources). Once the head
    is in, its ``metadata`` is decoded; the first object's opening bytes become the mark
    ``},{"<key>":`` that ends one object and starts the next. Each time a mark arrives, the bytes
    from the current object's start up to it are decoded (:meth:`SlimDecoder.object`) and
    dropped from the buffer. A mark can also occur inside an object (a nested list of objects
    with the same first key): the bytes up to it then do not decode (an object still open) and
    the cut moves on to the next mark. Decoded objects always start at a real object boundary,
    so a cut can be late, never wrong.

    Whatever does not fit (no ``"items":[`` early, items before ``metadata``, spaces, a run of
    :data:`MAX_MISSES` failed cuts) is kept and decoded at :meth:`finish` as a whole page would
    be: less frugal, same objects.
    """

    def __init__(self, decoder: SlimDecoder) -> None:
        """Split one answer, decoding its objects with ``decoder``."""
        self._decoder = decoder
        self._buf = bytearray()
        self._head: JsonDict | None = None
        self._whole = False  # stopped cutting: the rest is decoded by finish()
        self._mark: bytes | None = None
        self._search = 0  # where the next mark may start
        self._misses = 0

    def feed(self, piece: bytes) -> list[Any]:
        """Add the next piece of the answer; the objects it completed, in order."""
        self._buf += piece
        if self._whole:
            return []
        if self._head is None and not self._read_head():
            return []
        return self._cut()

    def finish(self) -> JsonDict:
        """The end of the answer: its ``metadata`` and the objects not handed out yet.

        Raises:
            ValueError: the answer is not JSON.
        """
        buf, self._buf = bytes(self._buf), bytearray()
        if self._head is None:  # never cut: the answer as one page
            return self._decoder.page(buf)
        rest = self._decoder.page(b"{" + _ITEMS + buf)
        page = dict(self._head)
        page.update((k, v) for k, v in rest.items() if k != "items" and v is not None)
        page["items"] = rest.get("items") or []
        return page

    def _read_head(self) -> bool:
        buf = self._buf
        at = buf.find(_ITEMS)
        if at < 0:
            if len(buf) > HEAD_LIMIT:
                self._whole = True
            return False
        try:
            head = self._decoder.head(bytes(buf[:at]) + b'"items":[]}')
        except ValueError:
            head = {}
        if not isinstance(head, dict) or not isinstance(head.get("metadata"), dict):
            self._whole = True  # not the API server's layout: decode it whole at the end
            return False
        head.pop("items", None)
        self._head = head
        del buf[: at + len(_ITEMS)]
        return True

    def _cut(self) -> list[Any]:
        buf = self._buf
        out: list[Any] = []
        if self._mark is None:
            # The first object's opening: '{"<key>":' (the key is at most 64 bytes here).
            if not buf.startswith(b'{"'):
                if len(buf) >= 2:  # an empty list ("]}") or not the usual layout
                    self._whole = True
                return out
            colon = buf.find(b'":', 0, 70)
            if colon < 0:
                if len(buf) >= 70:
                    self._whole = True
                return out
            self._mark = b"}," + bytes(buf[: colon + 2])
        mark = self._mark
        start = 0
        with memoryview(buf) as view:  # released before the buffer shrinks
            while True:
                at = buf.find(mark, self._search)
                if at < 0:
                    self._search = max(start, len(buf) - len(mark) + 1)
                    break
                try:
                    obj = self._decoder.object(view[start : at + 1])
                except ValueError:  # the mark was inside the object: it goes on
                    self._misses += 1
                    self._search = at + 1
                    if self._misses >= MAX_MISSES:
                        self._whole = True
                        break
                    continue
                out.append(obj)
                self._misses = 0
                start = at + 2
                self._search = start
        if start:
            del buf[:start]
            self._search -= start
        return out
