"""What the decisions know: the informer caches of every kind, with our own writes on top.

:class:`View` answers the questions the pure decisions ask (``snapshot(ns, name)``,
``snapshots_of_claim(ns, pvc)``, ``volume_by_handle(driver, handle)``, ...) from the slim
informer stores, through :class:`~csi_sidecars.kube.written.WrittenCache` so an object we just
wrote is seen as we wrote it even before its watch event arrived. Each answer is a fresh dict:
a decision can never change the cache (the Go controller mutates its cached content when the
being-deleted annotation patch fails, and so loses the annotation on the retry: #1446).

The indexes make every lookup proportional to the answer, not to the cluster: snapshots by
source claim (Go lists every VolumeSnapshot of the namespace for every sync, quadratic at 30,000
snapshots), group members by owner, PVs by ``driver^handle``, restoring claims by data source,
group contents by handle. The field lists say what the caches keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.kube import objects as o
from csi_sidecars.kube.labels import selector_matches
from csi_sidecars.kube.resources import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    JsonDict,
    Resource,
    object_key,
)
from csi_sidecars.kube.snapshots import (
    SNAPSHOT_GROUP,
    VOLUME_GROUP_SNAPSHOT_CLASSES,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from csi_sidecars.kube.store import Indexer, Projection, Store
from csi_sidecars.kube.written import WrittenCache
from csi_sidecars.snapshotcontroller import objects as so

BY_CLAIM = "by-claim"
BY_GROUP = "by-group"
BY_HANDLE = "by-handle"
BY_DATA_SOURCE = "by-data-source"
BY_GROUP_HANDLE = "by-group-handle"

_META = ["metadata.uid", "metadata.deletionTimestamp", "metadata.finalizers"]

#: Fields kept per resource (plural -> field paths).
FIELDS: dict[str, list[str]] = {
    VOLUME_SNAPSHOTS.plural: [*_META, "metadata.ownerReferences", "spec", "status"],
    VOLUME_SNAPSHOT_CONTENTS.plural: [*_META, "metadata.annotations", "spec", "status"],
    VOLUME_SNAPSHOT_CLASSES.plural: [
        "metadata.annotations",
        "driver",
        "deletionPolicy",
        "parameters",
    ],
    PERSISTENT_VOLUME_CLAIMS.plural: [
        *_META,
        "metadata.labels",
        "spec.volumeName",
        "spec.dataSource",
        "status.phase",
    ],
    PERSISTENT_VOLUMES.plural: [
        "metadata.uid",
        "spec.csi.driver",
        "spec.csi.volumeHandle",
        "spec.claimRef",
        "spec.volumeMode",
        "spec.nodeAffinity",
    ],
    NODES.plural: ["metadata.labels"],
    VOLUME_GROUP_SNAPSHOTS.plural: [*_META, "spec", "status"],
    VOLUME_GROUP_SNAPSHOT_CONTENTS.plural: [*_META, "metadata.annotations", "spec", "status"],
    VOLUME_GROUP_SNAPSHOT_CLASSES.plural: [
        "metadata.annotations",
        "driver",
        "deletionPolicy",
        "parameters",
    ],
}


def _by_claim(vs: JsonDict) -> Iterable[str]:
    claim = so.source_claim(vs)
    return [f"{o.namespace(vs)}/{claim}"] if claim else []


def _by_group(vs: JsonDict) -> Iterable[str]:
    parent = so.group_parent(vs)
    return [f"{o.namespace(vs)}^{parent}"] if parent else []


def _by_handle(pv: JsonDict) -> Iterable[str]:
    csi = o.dig(pv, "spec", "csi")
    if not isinstance(csi, dict):
        return []
    return [f"{csi.get('driver') or ''}^{csi.get('volumeHandle') or ''}"]


def _by_data_source(pvc: JsonDict) -> Iterable[str]:
    ds = o.dig(pvc, "spec", "dataSource")
    if (
        isinstance(ds, dict)
        and ds.get("kind") == "VolumeSnapshot"
        and ds.get("apiGroup") == SNAPSHOT_GROUP
        and ds.get("name")
    ):
        return [f"{o.namespace(pvc)}/{ds['name']}"]
    return []


def _by_group_handle(content: JsonDict) -> Iterable[str]:
    handle = so.group_handle(content)
    return [handle] if handle else []


#: Indexes per resource (plural -> index name -> function).
INDEXERS: dict[str, dict[str, Indexer]] = {
    VOLUME_SNAPSHOTS.plural: {BY_CLAIM: _by_claim, BY_GROUP: _by_group},
    PERSISTENT_VOLUMES.plural: {BY_HANDLE: _by_handle},
    PERSISTENT_VOLUME_CLAIMS.plural: {BY_DATA_SOURCE: _by_data_source},
    VOLUME_GROUP_SNAPSHOT_CONTENTS.plural: {BY_GROUP_HANDLE: _by_group_handle},
}


class View:
    """Read-only answers from the stores (plural -> :class:`Store`) and our written objects.

    A kind whose store is absent (group snapshots disabled, nodes without distributed
    snapshotting) answers "nothing there".
    """

    def __init__(
        self, stores: Mapping[str, Store], written: Mapping[str, WrittenCache] | None = None
    ) -> None:
        """Create a view over ``stores``; ``written`` is the Performer's ``written``."""
        self._stores = stores
        self._written = written if written is not None else {}

    def has(self, resource: Resource) -> bool:
        """Whether the kind is watched at all."""
        return resource.plural in self._stores

    def _fresh(self, resource: Resource, key: str, cached: JsonDict | None) -> JsonDict | None:
        written = self._written.get(resource.plural)
        return cached if written is None else written.newest(key, cached)

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        """One object (None when unknown)."""
        store = self._stores.get(resource.plural)
        if store is None or not name:
            return None
        k = f"{namespace}/{name}" if namespace else name
        return self._fresh(resource, k, store.get(k))

    def _list(self, resource: Resource, objs: Iterable[JsonDict]) -> list[JsonDict]:
        out = []
        for obj in objs:
            fresh = self._fresh(resource, object_key(obj), obj)
            if fresh is not None:
                out.append(fresh)
        return out

    def all(self, resource: Resource) -> list[JsonDict]:
        """Every object of a kind."""
        store = self._stores.get(resource.plural)
        return [] if store is None else self._list(resource, store.list())

    def by_index(self, resource: Resource, index: str, value: str) -> list[JsonDict]:
        """Objects whose ``index`` values include ``value``."""
        store = self._stores.get(resource.plural)
        return [] if store is None else self._list(resource, store.by_index(index, value))

    # -- the questions decisions ask ---------------------------------------------------------

    def snapshot(self, namespace: str, name: str) -> JsonDict | None:
        """A VolumeSnapshot."""
        return self.get(VOLUME_SNAPSHOTS, name, namespace)

    def content(self, name: str) -> JsonDict | None:
        """A VolumeSnapshotContent."""
        return self.get(VOLUME_SNAPSHOT_CONTENTS, name)

    def snapshot_class(self, name: str) -> JsonDict | None:
        """A VolumeSnapshotClass."""
        return self.get(VOLUME_SNAPSHOT_CLASSES, name)

    def claim(self, namespace: str, name: str) -> JsonDict | None:
        """A PersistentVolumeClaim (slim)."""
        return self.get(PERSISTENT_VOLUME_CLAIMS, name, namespace)

    def volume(self, name: str) -> JsonDict | None:
        """A PersistentVolume (slim)."""
        return self.get(PERSISTENT_VOLUMES, name)

    def volumes_by_handle(self, driver: str, handle: str) -> list[JsonDict]:
        """PVs of ``driver`` with ``spec.csi.volumeHandle == handle``."""
        return self.by_index(PERSISTENT_VOLUMES, BY_HANDLE, f"{driver}^{handle}")

    def snapshots_of_claim(self, namespace: str, claim: str) -> list[JsonDict]:
        """VolumeSnapshots whose source is the claim ``namespace/claim``."""
        return self.by_index(VOLUME_SNAPSHOTS, BY_CLAIM, f"{namespace}/{claim}")

    def claims_restoring(self, namespace: str, snapshot: str) -> list[JsonDict]:
        """PVCs whose ``spec.dataSource`` is the VolumeSnapshot ``namespace/snapshot``."""
        return self.by_index(PERSISTENT_VOLUME_CLAIMS, BY_DATA_SOURCE, f"{namespace}/{snapshot}")

    def claims_matching(self, namespace: str, selector: Mapping[str, Any] | None) -> list[JsonDict]:
        """PVCs of ``namespace`` the label selector (``matchLabels`` and ``matchExpressions``)
        selects, sorted by name.

        Raises:
            csi_sidecars.kube.labels.SelectorError: the selector is malformed.
        """
        store = self._stores.get(PERSISTENT_VOLUME_CLAIMS.plural)
        if store is None:
            return []
        picked = [
            c
            for c in store.list()
            if o.namespace(c) == namespace and selector_matches(selector, o.labels_of(c))
        ]
        return sorted(self._list(PERSISTENT_VOLUME_CLAIMS, picked), key=o.name)

    def group_snapshot(self, namespace: str, name: str) -> JsonDict | None:
        """A VolumeGroupSnapshot."""
        return self.get(VOLUME_GROUP_SNAPSHOTS, name, namespace)

    def group_content(self, name: str) -> JsonDict | None:
        """A VolumeGroupSnapshotContent."""
        return self.get(VOLUME_GROUP_SNAPSHOT_CONTENTS, name)

    def group_class(self, name: str) -> JsonDict | None:
        """A VolumeGroupSnapshotClass."""
        return self.get(VOLUME_GROUP_SNAPSHOT_CLASSES, name)

    def group_members(self, namespace: str, group: str) -> list[JsonDict]:
        """VolumeSnapshots owned by the VolumeGroupSnapshot ``namespace/group``, by name."""
        found = self.by_index(VOLUME_SNAPSHOTS, BY_GROUP, f"{namespace}^{group}")
        return sorted(found, key=o.name)

    def group_contents_by_handle(self, handle: str) -> list[JsonDict]:
        """Group contents whose ``status.volumeGroupSnapshotHandle`` is ``handle``."""
        return self.by_index(VOLUME_GROUP_SNAPSHOT_CONTENTS, BY_GROUP_HANDLE, handle)

    def nodes(self) -> list[JsonDict]:
        """Every Node (slim), sorted by name."""
        return sorted(self.all(NODES), key=o.name)


def new_store(resource: Resource) -> Store:
    """A store with the projection and indexes the controller uses for ``resource``."""
    return Store(Projection(FIELDS.get(resource.plural)), INDEXERS.get(resource.plural))
