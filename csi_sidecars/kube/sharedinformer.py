"""Informers shared by several controllers of one process: one list+watch, one store, many views.

``csi-sidecars run --roles provisioner,attacher,resizer,...`` runs controllers that watch the
same resources (every one of them PersistentVolumes, two of them claims). Each would otherwise
list and watch them itself and cache them again. An :class:`InformerHub` gives every controller
a view (:class:`SharedInformer`, an :class:`~csi_sidecars.kube.informer.Informer` to the code
that uses it) over one *base* informer per resource and selector:

* the base keeps the union of the fields the views asked for (any view asking for whole
  objects makes it keep whole objects) and the union of their indexes;
* the base starts when the first view runs (its controller leads) and runs until the hub
  closes; a view that starts later gets the cached objects replayed as adds, exactly what a
  fresh informer's first list would have given its handlers, then the live events;
* a view's handlers see nothing before it runs or after it stops, and its resync period is its
  own (the base has none).

Declare every view before the first runs (the bundle waits for all its controllers' setups):
a view declared later whose fields or indexes the running base lacks gets a base of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from csi_sidecars.kube.clock import REAL_CLOCK, Clock
from csi_sidecars.kube.informer import Informer, fan_out
from csi_sidecars.kube.port import ADDED, DELETED, KubePort
from csi_sidecars.kube.resources import JsonDict, Resource
from csi_sidecars.kube.store import Indexer, Projection
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("informer")


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """A fresh copy of a JSON value (what ``Projection.slim`` gives an already slim object,
    without packing it again: packing shares containers through a pool a copy must not fill)."""
    t = type(value)
    if t is dict:
        return {k: v if type(v) in _SCALARS else _copy(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _SCALARS else _copy(v) for v in value]
    return value


class _Fanout(Informer):
    """The base informer: its handlers (one per view) each get their own copies."""

    def _dispatch(self, kind: str, old: JsonDict | None, new: JsonDict) -> None:
        fan_out(self, self._handlers, kind, old, new, _copy)


class _Key(NamedTuple):
    group: str
    version: str
    plural: str
    namespace: str | None
    label_selector: str | None
    field_selector: str | None


class _Base:
    """One list+watch and its store, and what its views asked for."""

    def __init__(self, key: _Key, informer: Informer, fields: Sequence[str] | None) -> None:
        self.key = key
        self.informer = informer
        self.fields: list[str] | None = None if fields is None else list(fields)
        self.indexers: dict[str, Indexer] = {}
        self.views = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self.task is not None or len(self.informer.store) > 0

    def accepts(self, fields: Sequence[str] | None, indexers: Mapping[str, Indexer]) -> bool:
        """Whether a view with these needs can share this base."""
        for name, fn in indexers.items():
            if self.indexers.get(name, fn) is not fn:
                return False  # the same index name computed differently
        if not self.started:
            return True
        if any(name not in self.indexers for name in indexers):
            return False
        if self.fields is None:
            return True
        return fields is not None and set(fields) <= set(self.fields)

    def add(self, fields: Sequence[str] | None, indexers: Mapping[str, Indexer]) -> None:
        """Widen the base to keep ``fields`` and ``indexers`` too (before it starts)."""
        before = None if self.fields is None else len(self.fields)
        if fields is None:
            self.fields = None
        elif self.fields is not None:
            self.fields.extend(f for f in fields if f not in self.fields)
        grown = (None if self.fields is None else len(self.fields)) != before
        new = {name: fn for name, fn in indexers.items() if name not in self.indexers}
        self.indexers.update(new)
        if (grown or new) and not self.started:
            self.informer.store.widen(Projection(self.fields), new)

    def start(self) -> Informer:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self.informer.run(), name=f"shared-informer {self.key.plural}"
            )
            log.info(
                "Starting shared informer",
                resource=self.key.plural,
                views=self.views,
                fields=len(self.fields) if self.fields is not None else "all",
            )
        return self.informer


class SharedInformer(Informer):
    """One controller's view of a shared informer; used exactly like an informer.

    :attr:`store` is the base's (it may hold fields other views asked for). The view's
    handlers run only while :meth:`run` does; :attr:`lists` and :attr:`watches` are the
    base's counts when the view synced (every view of a base shares its requests).
    """

    def __init__(
        self,
        base: _Base,
        port: KubePort,
        resource: Resource,
        resync: float,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        """Create a view of ``base`` (done by :meth:`InformerHub.informer`)."""
        super().__init__(port, resource, resync_period=resync, clock=clock)
        self._base = base
        self._active = False
        informer = base.informer
        self.store = informer.store
        informer.add_handlers(self._on_add, self._on_update, self._on_delete)
        informer.observe_deletes(self._on_deleted)

    @property
    def base(self) -> Informer:
        """The base informer: the one list+watch every view of it shares."""
        return self._base.informer

    def _dispatch(self, kind: str, old: JsonDict | None, new: JsonDict) -> None:
        fan_out(self, self._handlers, kind, old, new, _copy)

    def _on_add(self, obj: JsonDict) -> None:
        if self._active:
            self._dispatch(ADDED, None, obj)

    def _on_update(self, old: JsonDict, new: JsonDict) -> None:
        if self._active:
            self._dispatch("MODIFIED", old, new)

    def _on_delete(self, obj: JsonDict) -> None:
        if self._active:
            self._dispatch(DELETED, None, obj)

    def _on_deleted(self, obj: JsonDict) -> None:
        if self._active:
            self._deleted(obj)

    async def _run(self) -> None:
        base = self._base.start()
        try:
            await base.wait_for_sync()
            # The replay and the live events run on one loop: nothing happens in between.
            self.lists = base.lists
            self.watches = base.watches
            self._active = True
            for obj in base.store.list():
                self._dispatch(ADDED, None, obj)
            self.resource_version = base.resource_version
            self._synced.set()
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._active = False


class InformerHub:
    """Hands out :class:`SharedInformer` views; one base informer per resource and selector.

    Args:
        port: where every base lists and watches (None: through the port of the view that
            starts it).
    """

    def __init__(self, port: KubePort | None = None) -> None:
        """Create an empty hub."""
        self.port = port
        self._bases: dict[_Key, list[_Base]] = {}

    def informer(
        self,
        port: KubePort,
        resource: Resource,
        *,
        fields: Sequence[str] | None = None,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, Indexer] | None = None,
        resync_period: float = 0.0,
        **options: Any,
    ) -> SharedInformer:
        """A view of the base informer for ``resource`` and these selectors.

        Arguments are :class:`~csi_sidecars.kube.informer.Informer`'s; ``fields`` and
        ``indexers`` are merged into the base's, ``resync_period`` stays the view's, other
        options (``page_size``, ``clock``) are those of the view that created the base.
        """
        key = _Key(
            resource.group,
            resource.version,
            resource.plural,
            namespace,
            label_selector,
            field_selector,
        )
        wanted = dict(indexers or {})
        bases = self._bases.setdefault(key, [])
        base = next((b for b in bases if b.accepts(fields, wanted)), None)
        if base is None:
            if bases:
                log.info(
                    "Informer not shared: its fields or indexes differ from a running one",
                    resource=resource.plural,
                )
            informer = _Fanout(
                self.port if self.port is not None else port,
                resource,
                fields=fields,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                indexers=wanted,
                **options,
            )
            base = _Base(key, informer, fields)
            base.indexers.update(wanted)
            bases.append(base)
        else:
            base.add(fields, wanted)
        base.views += 1
        clock: Clock = options.get("clock", REAL_CLOCK)
        return SharedInformer(base, port, resource, resync_period, clock)

    def bases(self) -> list[Informer]:
        """The base informers (one list+watch each)."""
        return [b.informer for bs in self._bases.values() for b in bs]

    def fields(self, resource: Resource) -> list[list[str] | None]:
        """The fields each base of ``resource`` keeps (None: whole objects)."""
        bases = [
            b
            for (_, _, plural, *_), bs in self._bases.items()
            if plural == resource.plural
            for b in bs
        ]
        return [None if b.fields is None else list(b.fields) for b in bases]

    async def close(self) -> None:
        """Stop every base informer."""
        tasks = [b.task for bs in self._bases.values() for b in bs if b.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for bases in self._bases.values():
            for base in bases:
                base.task = None
