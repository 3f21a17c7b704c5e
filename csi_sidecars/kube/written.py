"""Read-your-writes: the objects our own writes returned, until the informer has caught up.

A key is often synced again right after a write (the write's own watch event queues it), before
that event reached the cache; deciding from the stale copy would, say, publish a volume twice.
Like client-go's mutation cache, :class:`WrittenCache` compares resourceVersions as numbers (the
API server's are etcd revisions); anything that is not a number falls back to the cache's copy.
Entries are dropped as soon as the cache shows the same version or a newer one, or the object is
gone, so a finished key leaves nothing behind. Every controller role uses this one mechanism.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.kube.objects import finalizers, is_deleting, resource_version
from csi_sidecars.kube.resources import JsonDict


def revision(obj: Mapping[str, Any] | None) -> int | None:
    """``metadata.resourceVersion`` as a number, or None."""
    try:
        return int(resource_version(obj))
    except ValueError:
        return None


class WrittenCache:
    """The newest object each of our writes returned, by key (``name`` or ``namespace/name``)."""

    def __init__(self) -> None:
        self._objects: dict[str, JsonDict] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def remember(self, key: str, obj: JsonDict | None) -> None:
        """Keep the object a write of ``key`` returned (if it is newer than what we hold)."""
        new = revision(obj)
        if obj is None or new is None:
            return
        old = revision(self._objects.get(key))
        if old is None or new >= old:
            self._objects[key] = obj

    def _newer(self, key: str, cached: Mapping[str, Any] | None) -> JsonDict | None:
        """Our copy of ``key`` if it is newer than ``cached``; else forget it and None."""
        written = self._objects.get(key)
        if written is None:
            return None
        old, new = revision(cached), revision(written)
        if cached is None or old is None or new is None or old >= new:
            self._objects.pop(key, None)
            return None
        return written

    def newest(self, key: str, cached: JsonDict | None) -> JsonDict | None:
        """``cached``, unless our last write of ``key`` is newer than it (then that object)."""
        return self._newer(key, cached) or cached

    def get(self, key: str) -> JsonDict | None:
        """The object our last write of ``key`` returned, if still held (no cache comparison).

        For objects we created that the cache may not list yet: :meth:`newest` takes a cache
        miss for a deletion, this does not.
        """
        return self._objects.get(key)

    def stale(self, key: str, cached: Mapping[str, Any] | None) -> bool:
        """Whether ``cached`` is older than our last write of ``key`` (wait for the watch)."""
        return self._newer(key, cached) is not None

    def deleted(self, key: str) -> bool:
        """Whether our last write of ``key`` left it deleting with no finalizer (so gone)."""
        obj = self._objects.get(key)
        return obj is not None and is_deleting(obj) and not finalizers(obj)

    def observe(self, key: str, obj: Mapping[str, Any]) -> None:
        """The informer saw ``obj``: forget our copy once the cache is as new."""
        written = self._objects.get(key)
        if written is not None:
            old, new = revision(obj), revision(written)
            if old is None or new is None or old >= new:
                self._objects.pop(key, None)

    def forget(self, key: str) -> None:
        """Drop ``key`` (the object was deleted, or the sync is finished with it)."""
        self._objects.pop(key, None)
