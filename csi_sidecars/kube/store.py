"""The informer cache: slim, packed objects with indexes.

A role declares the field paths it reads (``["metadata.name", "spec.csi.driver", ...]``) and the
store keeps only those. Objects are stored packed: one tuple of the declared leaf values in a
fixed order, with container leaves (annotations, finalizers, a claim's spec) encoded as msgpack
bytes and equal ones shared, and strings from low-cardinality paths (driver names, phases,
namespaces) shared through small bounded pools. Every read unpacks a fresh nested dict, so a
caller can never corrupt the cache by mutating what it got. That keeps a cached
PersistentVolume around 1 KiB instead of the ~10 KiB a decoded watch event costs (see
``bench/kube_store_memory.py``). msgspec encodes and decodes a container in C, several times
faster than walking it in Python: an informer packs every watch event and every read unpacks.
A container msgpack cannot hold (an integer beyond 64 bits) is frozen into tuples instead.

``metadata.name``, ``metadata.namespace`` and ``metadata.resourceVersion`` are always kept.
"""

from __future__ import annotations

import builtins
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from csi_sidecars.kube.decode import SlimDecoder
from csi_sidecars.kube.resources import JsonDict, object_key

ALWAYS_KEPT = ("metadata.name", "metadata.namespace", "metadata.resourceVersion")
POOL_LIMIT = 64

Indexer = Callable[[JsonDict], Iterable[str]]


class _Missing:
    __slots__ = ()


_MISSING = _Missing()


class _FrozenDict(tuple):  # type: ignore[type-arg]
    """A frozen JSON object: :data:`_DICT` first, then keys and values interleaved.

    The leading marker keeps a frozen object from ever comparing equal to a frozen list of the
    same items, so equal frozen containers can be shared (see :meth:`Projection._shared`).
    """

    __slots__ = ()


class _DictMark:
    __slots__ = ()


_DICT = _DictMark()
#: Container leaves to and from msgpack (bytes never occur in decoded JSON, so a bytes leaf is
#: always one of these).
_blob = msgspec.msgpack.Encoder().encode
_unblob = msgspec.msgpack.Decoder().decode
#: Distinct frozen containers (annotations, finalizers, specs, ...) a projection shares; when
#: full, the ones no cached object uses any more are dropped.
SHARE_LIMIT = 1024


def _unused(shared: dict[Any, Any]) -> list[Any]:
    """The containers only ``shared`` itself still refers to."""
    return [k for k in shared if sys.getrefcount(k) <= _POOL_ONLY]


def _pool_only_refs() -> int:
    probe = tuple([str(i) for i in range(2)])
    shared = {probe: probe}
    del probe
    (key,) = shared
    refs = sys.getrefcount(key) - 1  # less the name ``key``
    del key
    return refs + 1  # the comprehension's own name in _unused


_POOL_ONLY = _pool_only_refs()


#: Leaves that are never frozen (JSON scalars).
_PLAIN = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float, bool, type(None)})


def _thaw(value: Any) -> Any:
    """A fresh JSON value from a frozen one."""
    t = type(value)
    if t is bytes:
        return _unblob(value)
    if t is _FrozenDict:
        it = iter(value)
        next(it)  # the marker
        return {k: v if type(v) in _PLAIN else _thaw(v) for k, v in zip(it, it, strict=False)}
    if t is tuple:
        return [v if type(v) in _PLAIN else _thaw(v) for v in value]
    return value


#: How :meth:`Projection.pack` walks an object: (key, index of the leaf or -1, sub-program).
_Program = list[tuple[str, int, "_Program"]]


def _compile(paths: Sequence[tuple[str, ...]]) -> _Program:
    root: _Program = []
    for index, path in enumerate(paths):
        program = root
        for depth, part in enumerate(path):
            leaf = depth == len(path) - 1
            found = next((step for step in program if step[0] == part), None)
            if found is None:
                found = (part, index if leaf else -1, [])
                program.append(found)
            program = found[2]
    return root


def _unpacker(program: _Program) -> Callable[[tuple[Any, ...]], JsonDict]:
    """A function that unpacks for ``program``, its walk written out as straight-line code.

    Reads are the hot path of every informer and controller; a generic loop over the paths
    costs several times the generated code. Dict keys come from the declared field paths and
    enter the code only through ``repr``; an object keeps only the parents of present leaves.
    """
    lines = ["def unpack(p):", " out = {}"]
    names = iter(f"d{i}" for i in itertools.count())

    def emit(prog: _Program, node: str, indent: str) -> None:
        for key, index, sub in prog:
            if index >= 0:
                lines.append(f"{indent}v = p[{index}]")
                lines.append(f"{indent}if v is not MISSING:")
                lines.append(f"{indent} {node}[{key!r}] = v if type(v) in PLAIN else thaw(v)")
            else:
                child = next(names)
                lines.append(f"{indent}{child} = {node}[{key!r}] = {{}}")
                emit(sub, child, indent)
                lines.append(f"{indent}if not {child}:")
                lines.append(f"{indent} del {node}[{key!r}]")

    emit(program, "out", " ")
    lines.append(" return out")
    scope: dict[str, Any] = {"MISSING": _MISSING, "PLAIN": _PLAIN, "thaw": _thaw}
    exec("\n".join(lines), scope)  # the code above: repr()d keys and indexes only
    fn: Callable[[tuple[Any, ...]], JsonDict] = scope["unpack"]
    return fn


class _Pool:
    """Shares equal strings while a path has few distinct values; gives up past the limit."""

    __slots__ = ("limit", "values")

    def __init__(self, limit: int = POOL_LIMIT) -> None:
        self.values: dict[str, str] | None = {}
        self.limit = limit

    def share(self, value: str) -> str:
        pool = self.values
        if pool is None:
            return value
        got = pool.get(value)
        if got is not None:
            return got
        if len(pool) >= self.limit:
            self.values = None
            return value
        pool[value] = value
        return value


class Projection:
    """Packs objects down to declared field paths and unpacks them back to nested dicts."""

    def __init__(self, fields: Sequence[str] | None = None) -> None:
        """Create a projection.

        Args:
            fields: dotted field paths to keep; None keeps whole objects (still packed).
        """
        self.fields: tuple[str, ...] | None = None
        self._paths: list[tuple[str, ...]] = []
        if fields is not None:
            wanted = list(dict.fromkeys([*ALWAYS_KEPT, *fields]))
            # A path covered by a shorter declared path is redundant.
            kept = [f for f in wanted if not any(f.startswith(o + ".") for o in wanted if o != f)]
            self.fields = tuple(kept)
            self._paths = [tuple(f.split(".")) for f in kept]
        self._program = _compile(self._paths)
        self._unpack = _unpacker(self._program)
        self._value_pools = [_Pool() for _ in self._paths]
        self._key_pool = _Pool(1024)
        self._whole_pool = _Pool()
        self._containers: dict[Any, Any] = {}
        self._rv_index = (
            self.fields.index("metadata.resourceVersion") if self.fields is not None else -1
        )
        self._decoder: SlimDecoder | None = None

    @property
    def decoder(self) -> SlimDecoder:
        """Decoders of API answers straight into this projection's fields (made on first use)."""
        if self._decoder is None:
            self._decoder = SlimDecoder(self._paths if self.fields is not None else None)
        return self._decoder

    def resource_version(self, packed: tuple[Any, ...]) -> Any:
        """``metadata.resourceVersion`` of a packed object (None when absent)."""
        if self._rv_index < 0:
            return (self.unpack(packed).get("metadata") or {}).get("resourceVersion")
        value = packed[self._rv_index]
        return None if value is _MISSING else value

    # -- freezing ------------------------------------------------------------------------

    def _freeze(self, value: Any, pool: _Pool) -> Any:
        t = type(value)
        if t is str:
            return pool.share(value)
        if t is dict or (t is not list and isinstance(value, dict)):
            share = self._key_pool.share
            freeze = self._freeze
            flat: list[Any] = [_DICT]
            for k, v in value.items():
                flat.append(share(k))
                flat.append(v if type(v) in _NUMBERS else freeze(v, pool))
            return self._shared(_FrozenDict(flat))
        if t is list or isinstance(value, list):
            return self._shared(tuple([self._freeze(v, pool) for v in value]))
        if isinstance(value, str):
            return pool.share(value)
        return value

    def _shared(self, frozen: tuple[Any, ...]) -> tuple[Any, ...]:
        """One copy of equal frozen containers (many claims have the same spec or labels).

        Only containers of strings, nulls and shared containers are shared: ``1``, ``1.0``
        and ``true`` compare equal in Python but are different JSON.
        """
        shared = self._containers
        got: tuple[Any, ...] | None = shared.get(frozen)
        if got is not None:
            return got
        for item in frozen:
            t = type(item)
            if t is str or item is None or item is _DICT:
                continue
            if (t is tuple or t is _FrozenDict) and shared.get(item) is item:
                continue
            return frozen
        if len(shared) >= SHARE_LIMIT:
            for key in _unused(shared):
                del shared[key]
        if len(shared) < SHARE_LIMIT:
            shared[frozen] = frozen
        return frozen

    def _container(self, value: Any, pool: _Pool) -> Any:
        """A container leaf packed: shared msgpack bytes, or frozen when msgpack cannot hold it."""
        try:
            blob = _blob(value)
        except (TypeError, ValueError, OverflowError):
            return self._freeze(value, pool)
        shared = self._containers
        got = shared.get(blob)
        if got is not None:
            return got
        if len(shared) >= SHARE_LIMIT:
            for key in _unused(shared):
                del shared[key]
        if len(shared) < SHARE_LIMIT:
            shared[blob] = blob
        return blob

    @staticmethod
    def _thaw(value: Any) -> Any:
        return _thaw(value)

    # -- packing -------------------------------------------------------------------------

    def pack(self, obj: JsonDict) -> tuple[Any, ...]:
        """The packed form of ``obj``."""
        if self.fields is None:
            try:
                return (_blob(obj),)
            except (TypeError, ValueError, OverflowError):
                return (self._freeze(obj, self._whole_pool),)
        out: list[Any] = [_MISSING] * len(self._paths)
        self._pack_into(obj, self._program, out)
        return tuple(out)

    def _pack_into(self, node: Any, program: _Program, out: list[Any]) -> None:
        # One lookup per distinct prefix: "metadata" once for all the metadata paths.
        if type(node) is not dict and not isinstance(node, dict):
            return
        for key, index, sub in program:
            value = node.get(key, _MISSING)
            if value is _MISSING:
                continue
            if index >= 0:
                t = type(value)
                if t is str:
                    out[index] = self._value_pools[index].share(value)
                elif t in _NUMBERS:
                    out[index] = value
                elif t is dict or t is list:
                    out[index] = self._container(value, self._value_pools[index])
                else:
                    out[index] = self._freeze(value, self._value_pools[index])
            else:
                self._pack_into(value, sub, out)

    def unpack(self, packed: tuple[Any, ...]) -> JsonDict:
        """A fresh nested dict from a packed object."""
        if self.fields is None:
            whole: JsonDict = _thaw(packed[0])
            return whole
        return self._unpack(packed)

    def slim(self, obj: JsonDict) -> JsonDict:
        """``obj`` reduced to the declared fields."""
        return self.unpack(self.pack(obj))

    def copy(self, slim: JsonDict) -> JsonDict:
        """A fresh copy of an already slim object (one :meth:`unpack` gave): ``slim(slim)``."""
        try:
            out: JsonDict = _unblob(_blob(slim))
        except (TypeError, ValueError, OverflowError):
            return self.slim(slim)
        return out


class Store:
    """Packed objects by ``namespace/name`` key, with secondary indexes."""

    def __init__(
        self,
        projection: Projection | None = None,
        indexers: Mapping[str, Indexer] | None = None,
    ) -> None:
        """Create a store.

        Args:
            projection: which fields to keep (whole objects by default).
            indexers: index name -> function from a slim object to its index values.
        """
        self.projection = projection or Projection()
        self._items: dict[str, tuple[Any, ...]] = {}
        self._indexers = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}

    def widen(self, projection: Projection, indexers: Mapping[str, Indexer]) -> None:
        """Keep ``projection``'s fields from now on and add ``indexers``; only while empty.

        For a store several informer views share (:mod:`csi_sidecars.kube.sharedinformer`):
        each view's fields and indexes join before the first object arrives.

        Raises:
            RuntimeError: when the store already holds objects.
        """
        if self._items:
            raise RuntimeError("a store that holds objects cannot change its fields")
        self.projection = projection
        for name, fn in indexers.items():
            self._indexers[name] = fn
            self._indexes.setdefault(name, {})

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def list_keys(self) -> list[str]:
        """All keys (a snapshot)."""
        return list(self._items)

    def get(self, key: str) -> JsonDict | None:
        """A fresh copy of the slim object at ``key``."""
        packed = self._items.get(key)
        return None if packed is None else self.projection.unpack(packed)

    def resource_version(self, key: str) -> Any:
        """``metadata.resourceVersion`` of the object at ``key`` (None when absent)."""
        packed = self._items.get(key)
        return None if packed is None else self.projection.resource_version(packed)

    def get_by_name(self, name: str, namespace: str | None = None) -> JsonDict | None:
        """A fresh copy of the slim object ``namespace/name`` (or ``name``)."""
        return self.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[JsonDict]:
        """Fresh copies of every slim object."""
        unpack = self.projection.unpack
        return [unpack(p) for p in self._items.values()]

    def index_keys(self, index: str, value: str) -> builtins.list[str]:
        """Keys of the objects whose ``index`` values include ``value``."""
        return sorted(self._indexes[index].get(value, ()))

    def by_index(self, index: str, value: str) -> builtins.list[JsonDict]:
        """Slim objects whose ``index`` values include ``value``."""
        out = []
        for key in self.index_keys(index, value):
            obj = self.get(key)
            if obj is not None:
                out.append(obj)
        return out

    def _index(self, key: str, obj: JsonDict, add: bool) -> None:
        for name, fn in self._indexers.items():
            table = self._indexes[name]
            for value in fn(obj):
                if add:
                    table.setdefault(value, set()).add(key)
                else:
                    keys = table.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del table[value]

    def upsert(self, obj: JsonDict) -> tuple[JsonDict | None, JsonDict]:
        """Store ``obj`` (a full or slim object); return (old slim or None, new slim)."""
        key = object_key(obj)
        packed = self.projection.pack(obj)
        old_packed = self._items.get(key)
        old = None if old_packed is None else self.projection.unpack(old_packed)
        if old is not None:
            self._index(key, old, add=False)
        self._items[key] = packed
        new = self.projection.unpack(packed)
        self._index(key, new, add=True)
        return old, new

    def remove(self, key: str) -> JsonDict | None:
        """Drop ``key``; return the last slim object or None."""
        packed = self._items.pop(key, None)
        if packed is None:
            return None
        old = self.projection.unpack(packed)
        self._index(key, old, add=False)
        return old
