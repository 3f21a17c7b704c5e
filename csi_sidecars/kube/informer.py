"""List-then-watch informer: a slim cache of one resource kept current, with event handlers.

The loop (one task per informer):

1. LIST in pages (``limit``/``continue``); replace the store, diffing against what it held so
   handlers see adds, updates and deletes for whatever changed while we were not watching.
2. WATCH from the list's resourceVersion with bookmarks, a server-side ``timeoutSeconds`` of 5-10
   minutes (randomised, as client-go does) and a client-side read timeout just above it.
3. When the stream ends, watch again from the last resourceVersion seen (events or bookmarks).
4. On 410 Gone (the version was compacted away), go back to 1 at once.
5. On any other failure, back off (0.8 s doubling to 30 s, jittered) and retry; the loop never
   dies of an exception.

A resync task calls ``on_update(obj, obj)`` for every cached object every ``resync_period``
seconds, so level-triggered controllers re-check everything periodically.
Handlers are plain functions (typically "enqueue the key"); they receive fresh slim dicts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from csi_sidecars.kube.clock import REAL_CLOCK, Clock
from csi_sidecars.kube.port import ADDED, BOOKMARK, DELETED, KubePort
from csi_sidecars.kube.resources import ApiError, JsonDict, Resource, object_key
from csi_sidecars.kube.store import Indexer, Projection, Store
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("informer")

AddHandler = Callable[[JsonDict], None]
UpdateHandler = Callable[[JsonDict, JsonDict], None]
DeleteHandler = Callable[[JsonDict], None]

BACKOFF_START = 0.8
BACKOFF_MAX = 30.0
MIN_WATCH_TIMEOUT = 300


@dataclass(slots=True)
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class Informer:
    """Keeps :attr:`store` in step with the API server and calls handlers on changes."""

    def __init__(
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
        page_size: int = 500,
        min_watch_timeout: int = MIN_WATCH_TIMEOUT,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        """Create an informer; call :meth:`run` in a task to start it.

        Args:
            port: the Kubernetes port.
            resource: what to watch.
            fields: field paths to keep in the cache (None keeps whole objects).
            namespace: restrict to one namespace.
            label_selector: restrict by labels.
            field_selector: restrict by fields.
            indexers: secondary indexes of the store.
            resync_period: seconds between resyncs; 0 disables.
            page_size: LIST page size.
            min_watch_timeout: the server-side watch timeout is 1-2 times this (seconds).
            clock: time source.
        """
        self.port = port
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.min_watch_timeout = min_watch_timeout
        self.store = Store(Projection(fields), indexers)
        self._clock = clock
        self._handlers: list[_Handlers] = []
        self._delete_observers: list[DeleteHandler] = []
        self._synced = asyncio.Event()
        self.resource_version: str | None = None
        self.lists = 0
        self.watches = 0

    def add_handlers(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; add them before :meth:`run` to see the initial list."""
        self._handlers.append(_Handlers(on_add, on_update, on_delete))

    def observe_deletes(self, callback: DeleteHandler) -> None:
        """Call ``callback(obj)`` for every deleted object, before the handlers.

        For bookkeeping that forgets a gone object (it gets the handlers' own copy, so it must
        not change it); unlike :meth:`add_handlers` it costs the handlers no extra copies.
        """
        self._delete_observers.append(callback)

    def _deleted(self, obj: JsonDict) -> None:
        for callback in self._delete_observers:
            try:
                callback(obj)
            except Exception:
                log.exception("Informer delete observer failed", resource=self.resource.plural)

    def has_synced(self) -> bool:
        """Whether the first LIST has been stored and handled."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`has_synced`; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    # -- dispatch ------------------------------------------------------------------------

    def _dispatch(self, kind: str, old: JsonDict | None, new: JsonDict) -> None:
        fan_out(self, self._handlers, kind, old, new, self.store.projection.copy)

    def _apply(self, etype: str, obj: JsonDict) -> None:
        if etype == DELETED:
            old = self.store.remove(object_key(obj))
            gone = old if old is not None else self.store.projection.slim(obj)
            self._deleted(gone)
            self._dispatch(DELETED, None, gone)
            return
        old, new = self.store.upsert(obj)
        self._dispatch(ADDED if old is None else "MODIFIED", old, new)

    # -- list and watch ------------------------------------------------------------------

    async def _list(self) -> str:
        # Objects are applied as they are decoded, while the answer arrives, so neither a whole
        # answer nor a whole decoded page is ever held (an initial list of 10,000 objects would
        # otherwise add many times the slim store to the peak; see PageSplitter). A paged list
        # is one consistent snapshot, so applying it object by object is safe; objects missing
        # from the snapshot are removed once the last page is in.
        #
        # The first list of all asks for resourceVersion "0", as client-go's reflector does: the
        # API server answers from its watch cache, in one answer whatever the limit (a list of
        # 50,000 objects costs it far less than 100 pages from etcd). Every later list (after
        # 410 Gone or a failure) asks for the latest state, page by page.
        token: str | None = None
        rv = ""
        seen: set[str] = set()
        first = self.lists == 0
        store = self.store

        def listed(obj: JsonDict) -> None:
            key = object_key(obj)
            seen.add(key)
            if key not in store:
                self._apply(ADDED, obj)
            elif store.resource_version(key) != (obj.get("metadata") or {}).get("resourceVersion"):
                self._apply("MODIFIED", obj)

        while True:
            page = await self.port.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_token=token,
                resource_version="0" if first and token is None else None,
                decoder=store.projection.decoder,
                each=listed,
            )
            meta = page.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            token = meta.get("continue") or None
            if not token:
                break
        self.lists += 1
        for key in store.list_keys():
            if key not in seen:
                gone = store.remove(key)
                if gone is not None:
                    self._deleted(gone)
                    self._dispatch(DELETED, None, gone)
        return rv

    async def _watch(self, rv: str) -> str:
        timeout = int(self.min_watch_timeout * (1.0 + random.random()))
        self.watches += 1
        async for event in self.port.watch(
            self.resource,
            self.namespace,
            resource_version=rv,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
            decoder=self.store.projection.decoder,
        ):
            new_rv = (event.object.get("metadata") or {}).get("resourceVersion")
            if event.type != BOOKMARK:
                self._apply(event.type, event.object)
            if new_rv:
                rv = str(new_rv)
                self.resource_version = rv
        return rv

    async def run(self) -> None:
        """List and watch until cancelled."""
        async with asyncio.TaskGroup() as tg:
            if self.resync_period > 0:
                tg.create_task(self._resync_loop())
            await self._run()

    async def _run(self) -> None:
        rv: str | None = None
        delay = BACKOFF_START
        while True:
            try:
                if rv is None:
                    rv = await self._list()
                    self.resource_version = rv
                    if not self._synced.is_set():
                        self._synced.set()
                        log.info(
                            "Informer synced",
                            resource=self.resource.plural,
                            objects=len(self.store),
                        )
                rv = await self._watch(rv)
                delay = BACKOFF_START
                continue
            except ApiError as exc:
                if exc.gone:
                    log.info("Watch expired, re-listing", resource=self.resource.plural, rv=rv)
                    rv = None
                    continue
                log.warning("List/watch failed", resource=self.resource.plural, error=str(exc))
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("List/watch failed", resource=self.resource.plural, error=repr(exc))
            except Exception as exc:  # aiohttp errors and anything unexpected: never die
                log.warning("List/watch failed", resource=self.resource.plural, error=repr(exc))
            await self._clock.sleep(delay * (1.0 + random.random()))
            delay = min(BACKOFF_MAX, delay * 2)

    async def _resync_loop(self) -> None:
        await self._synced.wait()
        while True:
            await self._clock.sleep(self.resync_period)
            self.resync()

    def resync(self) -> None:
        """Call ``on_update(obj, obj)`` for every cached object."""
        for obj in self.store.list():
            for h in self._handlers:
                if h.on_update:
                    try:
                        h.on_update(obj, obj)
                    except Exception:
                        log.exception("Informer handler failed", resource=self.resource.plural)


def fan_out(
    informer: Informer,
    handlers: Sequence[_Handlers],
    kind: str,
    old: JsonDict | None,
    new: JsonDict,
    copy: Callable[[JsonDict], JsonDict],
) -> None:
    """Hand one event to ``handlers``; every handler after the first gets its own ``copy``.

    A failing handler is logged and does not stop the others.
    """
    for i, h in enumerate(handlers):
        cur = new if i == 0 else copy(new)
        prev = old if i == 0 or old is None else copy(old)
        try:
            if kind == ADDED and h.on_add:
                h.on_add(cur)
            elif kind == DELETED and h.on_delete:
                h.on_delete(cur)
            elif kind not in (ADDED, DELETED) and h.on_update and prev is not None:
                h.on_update(prev, cur)
        except Exception:
            log.exception("Informer handler failed", resource=informer.resource.plural)
