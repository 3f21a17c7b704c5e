"""An in-memory :class:`~csi_sidecars.kube.port.KubePort` for component tests of roles.

It behaves like the API server where roles depend on it: a global, increasing resourceVersion;
optimistic concurrency on replace (and on patches that carry a resourceVersion); finalizers
block deletion (``deletionTimestamp`` is set instead, and the object goes once the last finalizer
is removed); merge and JSON patches, with a failed ``test`` answered 422; the ``status``
subresource (main-endpoint writes keep the old status, status writes change only status, and the
metadata of a PersistentVolumeClaim, as its status strategy allows);
paged lists; watches from a resourceVersion that replay history, with 410 Gone after
:meth:`FakeKube.compact`. Every call is recorded in :attr:`FakeKube.actions`, and
:meth:`FakeKube.inject` makes the next matching calls fail.
Strategic merge and server-side apply are approximated by a JSON merge patch.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.labels import field_query_matches, query_matches
from csi_sidecars.kube.patch import apply_merge_patch
from csi_sidecars.kube.port import (
    ADDED,
    BOOKMARK,
    DELETED,
    MODIFIED,
    Decoder,
    PatchType,
    WatchEvent,
)
from csi_sidecars.kube.resources import ApiError, JsonDict, Resource

#: The size of the pieces a list answer is fed to a splitter in (odd: marks straddle pieces).
FAKE_PIECE = 251

_RKey = tuple[str, str]  # (group, plural)

#: Resources whose status strategy keeps metadata changes (annotations, labels) made through the
#: ``status`` subresource, as the API server's PersistentVolumeClaim status strategy does (it
#: resets only the spec); for every other resource a status write changes only ``status``.
STATUS_WRITES_METADATA: frozenset[_RKey] = frozenset({("", "persistentvolumeclaims")})


@dataclass(slots=True)
class Action:
    """One recorded call."""

    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None = None
    body: Any = None


@dataclass(slots=True)
class _Injection:
    verb: str
    resource: str | None
    name: str | None
    error: ApiError
    times: int


@dataclass(slots=True)
class _Watcher:
    rkey: _RKey
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKube:
    """The in-memory fake of the Kubernetes port."""

    def __init__(self) -> None:
        self._objects: dict[_RKey, dict[tuple[str, str], JsonDict]] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._history: list[tuple[int, _RKey, str, JsonDict]] = []
        self._compacted = 0
        self._watchers: list[_Watcher] = []
        self._injections: list[_Injection] = []
        self.actions: list[Action] = []

    # ---- test helpers -----------------------------------------------------------------------

    def inject(
        self,
        verb: str,
        error: ApiError,
        *,
        resource: Resource | None = None,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``verb`` (get/list/watch/create/replace/patch/delete)
        on ``resource`` (any when None) and ``name`` fail with ``error``."""
        plural = resource.plural if resource else None
        self._injections.append(_Injection(verb, plural, name, error, times))

    def actions_of(self, verb: str, resource: Resource | None = None) -> list[Action]:
        """Recorded actions of one verb (and resource)."""
        return [
            a
            for a in self.actions
            if a.verb == verb and (resource is None or a.resource == resource.plural)
        ]

    def objects(self, resource: Resource) -> list[JsonDict]:
        """Copies of every stored object of ``resource``."""
        store = self._objects.get((resource.group, resource.plural), {})
        return [copy.deepcopy(o) for _, o in sorted(store.items())]

    def peek(self, resource: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        """A copy of one stored object, or None; not recorded as an action."""
        obj = self._store(resource).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def compact(self) -> None:
        """Forget history: watches from any older resourceVersion now get 410 Gone."""
        self._compacted = self._last_rv
        self._history.clear()

    def close_watches(self) -> None:
        """End every open watch stream, as a server-side timeout or restart does."""
        for w in self._watchers:
            w.queue.put_nowait(None)

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every open watch."""
        for w in self._watchers:
            w.queue.put_nowait(
                WatchEvent(BOOKMARK, {"metadata": {"resourceVersion": str(self._last_rv)}})
            )

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out."""
        return str(self._last_rv)

    # ---- internals ------------------------------------------------------------------------

    def _check(self, verb: str, resource: Resource, name: str | None) -> None:
        for inj in self._injections:
            if (
                inj.verb == verb
                and inj.times > 0
                and inj.resource in (None, resource.plural)
                and inj.name in (None, name)
            ):
                inj.times -= 1
                if inj.times == 0:
                    self._injections.remove(inj)
                raise inj.error

    def _store(self, resource: Resource) -> dict[tuple[str, str], JsonDict]:
        return self._objects.setdefault((resource.group, resource.plural), {})

    def _ns(self, resource: Resource, namespace: str | None, body: JsonDict | None = None) -> str:
        if not resource.namespaced:
            return ""
        ns = namespace or ((body or {}).get("metadata") or {}).get("namespace")
        if not ns:
            raise ApiError(400, "BadRequest", f"a namespace is required for {resource.plural}")
        return str(ns)

    def _bump(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _emit(self, resource: Resource, etype: str, obj: JsonDict) -> None:
        rkey = (resource.group, resource.plural)
        snapshot = copy.deepcopy(obj)
        self._history.append((self._last_rv, rkey, etype, snapshot))
        for w in self._watchers:
            if w.rkey == rkey and self._matches(w, snapshot):
                w.queue.put_nowait(WatchEvent(etype, copy.deepcopy(snapshot)))

    @staticmethod
    def _matches(w: _Watcher, obj: JsonDict) -> bool:
        meta = obj.get("metadata") or {}
        if w.namespace and meta.get("namespace") != w.namespace:
            return False
        return query_matches(w.label_selector, meta.get("labels") or {}) and field_query_matches(
            w.field_selector, obj
        )

    def _get(self, resource: Resource, name: str, ns: str) -> JsonDict:
        obj = self._store(resource).get((ns, name))
        if obj is None:
            what = f"{resource.plural}{'.' + resource.group if resource.group else ''}"
            raise ApiError(404, "NotFound", f'{what} "{name}" not found')
        return obj

    def _write(
        self, resource: Resource, old: JsonDict, new: JsonDict, subresource: str | None
    ) -> JsonDict:
        """Store ``new`` in place of ``old``, with the API server's invariants."""
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            if (resource.group, resource.plural) in STATUS_WRITES_METADATA:
                for key in ("annotations", "labels"):
                    value = (new.get("metadata") or {}).get(key)
                    if value:
                        merged["metadata"][key] = value
                    else:
                        merged["metadata"].pop(key, None)
            new = merged
        else:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
            old_meta, new_meta = old["metadata"], new.setdefault("metadata", {})
            for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
                if key in old_meta:
                    new_meta[key] = old_meta[key]
            strip = ("metadata", "status")
            if {k: v for k, v in old.items() if k not in strip} != {
                k: v for k, v in new.items() if k not in strip
            }:
                new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
            if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
                new_meta["resourceVersion"] = self._bump()
                ns, name = new_meta.get("namespace", ""), new_meta["name"]
                del self._store(resource)[(ns, name)]
                self._emit(resource, DELETED, new)
                return copy.deepcopy(new)
        if new == old:
            return copy.deepcopy(old)
        new["metadata"]["resourceVersion"] = self._bump()
        meta = new["metadata"]
        self._store(resource)[(meta.get("namespace", ""), meta["name"])] = new
        self._emit(resource, MODIFIED, new)
        return copy.deepcopy(new)

    # ---- the port -------------------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """Read one object."""
        self.actions.append(Action("get", resource.plural, namespace, name, subresource))
        self._check("get", resource, name)
        return copy.deepcopy(self._get(resource, name, self._ns(resource, namespace)))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        decoder: Decoder | None = None,
        each: Callable[[Any], None] | None = None,
    ) -> JsonDict:
        """One page of a list; the continue token is an offset.

        With ``decoder`` the page goes through JSON and the decoder, as from the API server;
        with ``each`` too, through the decoder's splitter in small pieces, as the real client
        reads a long answer.
        """
        self.actions.append(Action("list", resource.plural, namespace, None))
        self._check("list", resource, None)
        items = [
            o
            for (ns, _), o in sorted(self._store(resource).items())
            if (not namespace or ns == namespace)
            and query_matches(label_selector, o["metadata"].get("labels") or {})
            and field_query_matches(field_selector, o)
        ]
        start = int(continue_token or 0)
        end = start + limit if limit else len(items)
        meta: JsonDict = {"resourceVersion": str(self._last_rv)}
        if end < len(items):
            meta["continue"] = str(end)
        page: JsonDict
        if decoder is not None:
            body = json.dumps(
                {"kind": f"{resource.kind}List", "metadata": meta, "items": items[start:end]},
                separators=(",", ":"),
            ).encode()
            if each is not None:
                splitter = decoder.splitter()
                for at in range(0, len(body), FAKE_PIECE):
                    for obj in splitter.feed(body[at : at + FAKE_PIECE]):
                        each(obj)
                page = splitter.finish()
            else:
                page = decoder.page(body)
        else:
            page = {"items": copy.deepcopy(items[start:end]), "metadata": meta}
        if each is not None:
            for obj in page["items"]:
                each(obj)
            page["items"] = []
        return page

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        decoder: Decoder | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Replay history after ``resource_version`` (or ADDED for all when not given), then
        stream live events until :meth:`close_watches` (through JSON and ``decoder`` when
        given, as from the API server)."""
        self.actions.append(Action("watch", resource.plural, namespace, None))
        self._check("watch", resource, None)
        w = _Watcher((resource.group, resource.plural), namespace, label_selector, field_selector)
        if resource_version in (None, "", "0"):
            for obj in self._store(resource).values():
                if self._matches(w, obj):
                    w.queue.put_nowait(WatchEvent(ADDED, copy.deepcopy(obj)))
        else:
            since = int(resource_version or 0)
            if since < self._compacted:
                raise ApiError(410, "Expired", f"too old resource version: {since}")
            for rv, rkey, etype, obj in self._history:
                if rv > since and rkey == w.rkey and self._matches(w, obj):
                    w.queue.put_nowait(WatchEvent(etype, copy.deepcopy(obj)))
        self._watchers.append(w)
        try:
            while True:
                event = await w.queue.get()
                if event is None:
                    return
                if event.type == BOOKMARK and not allow_bookmarks:
                    continue
                if decoder is not None:
                    line = json.dumps({"type": event.type, "object": event.object}).encode()
                    decoded = decoder.event(line)
                    event = WatchEvent(str(decoded["type"]), decoded["object"])
                yield event
        finally:
            self._watchers.remove(w)

    async def create(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> JsonDict:
        """Create an object (409 AlreadyExists when the name is taken)."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        self.actions.append(Action("create", resource.plural, namespace, name, subresource, body))
        self._check("create", resource, name)
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        ns = self._ns(resource, namespace, obj)
        if (ns, name) in self._store(resource):
            what = f"{resource.plural}{'.' + resource.group if resource.group else ''}"
            raise ApiError(409, "AlreadyExists", f'{what} "{name}" already exists')
        if ns:
            meta["namespace"] = ns
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        obj.setdefault("apiVersion", resource.api_version)
        if resource.kind:
            obj.setdefault("kind", resource.kind)
        meta["resourceVersion"] = self._bump()
        self._store(resource)[(ns, name)] = obj
        self._emit(resource, ADDED, obj)
        return copy.deepcopy(obj)

    async def replace(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """PUT with optimistic concurrency on ``metadata.resourceVersion``."""
        name = body["metadata"]["name"]
        self.actions.append(Action("replace", resource.plural, namespace, name, subresource, body))
        self._check("replace", resource, name)
        old = self._get(resource, name, self._ns(resource, namespace, body))
        rv = body["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.plural} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        return self._write(resource, old, copy.deepcopy(body), subresource)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> JsonDict:
        """Merge or JSON patch (strategic and apply are treated as merge; apply may create)."""
        self.actions.append(Action("patch", resource.plural, namespace, name, subresource, patch))
        self._check("patch", resource, name)
        ns = self._ns(resource, namespace)
        if patch_type == "apply" and (ns, name) not in self._store(resource):
            self.actions.pop()
            return await self.create(resource, patch, namespace, field_manager=field_manager)
        old = self._get(resource, name, ns)
        if patch_type == "json":
            new = apply_json_patch(old, patch)
        else:
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "merge patch must be an object")
            rv = (patch.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'the object "{name}" has been modified')
            new = apply_merge_patch(old, patch)
        return self._write(resource, old, new, subresource)

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
    ) -> JsonDict | None:
        """Delete; with finalizers only ``deletionTimestamp`` is set."""
        self.actions.append(Action("delete", resource.plural, namespace, name))
        self._check("delete", resource, name)
        ns = self._ns(resource, namespace)
        obj = self._get(resource, name, ns)
        meta = obj["metadata"]
        if (uid and uid != meta.get("uid")) or (
            resource_version and resource_version != meta.get("resourceVersion")
        ):
            raise ApiError(409, "Conflict", f'precondition failed for {resource.plural} "{name}"')
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(obj)
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["resourceVersion"] = self._bump()
            self._store(resource)[(ns, name)] = new
            self._emit(resource, MODIFIED, new)
            return copy.deepcopy(new)
        del self._store(resource)[(ns, name)]
        meta["resourceVersion"] = self._bump()
        self._emit(resource, DELETED, obj)
        return copy.deepcopy(obj)
