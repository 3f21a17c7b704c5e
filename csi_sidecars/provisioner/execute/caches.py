"""The provisioner's informer caches: which objects, which fields, which indexes.

Caches hold slim objects (see :mod:`csi_sidecars.kube.store`). A PVC keeps its whole
``metadata`` (but ``managedFields``) and ``spec``, because the provisioner writes PVCs with Update
(the Go RBAC grants ``update``, not ``patch``): the PUT body is the cached object, so nothing the
user set may be missing from it. PVs keep only what deletion and the "PV exists" check read.
CSINodes, Nodes and VolumeAttachments are cached only when the driver needs them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from csi_sidecars.controller import ControllerContext
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.objects import namespace, spec, va_pv_index
from csi_sidecars.kube.resources import (
    CSI_NODES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    VOLUME_ATTACHMENTS,
    JsonDict,
)
from csi_sidecars.kube.store import Store
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.snapshots import snapshot_source_key

#: sig-storage-lib resyncs its PVC and PV handlers every 15 minutes.
RESYNC_PERIOD = 15 * 60.0

PVC_FIELDS = (
    "metadata.uid",
    "metadata.generateName",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.deletionGracePeriodSeconds",
    "metadata.labels",
    "metadata.annotations",
    "metadata.finalizers",
    "metadata.ownerReferences",
    "spec",
    "status.phase",
)
PV_FIELDS = (
    "metadata.uid",
    "metadata.deletionTimestamp",
    "metadata.annotations",
    "metadata.finalizers",
    "spec.csi.driver",
    "spec.csi.volumeHandle",
    "spec.claimRef.uid",
    "spec.claimRef.name",
    "spec.claimRef.namespace",
    "spec.persistentVolumeReclaimPolicy",
    "spec.storageClassName",
    "spec.nodeAffinity",
    "status.phase",
)
CSINODE_FIELDS = ("spec.drivers",)
NODE_FIELDS = ("metadata.labels",)
VA_FIELDS = ("spec.source.persistentVolumeName", "spec.nodeName")

CLONE_SOURCE_INDEX = "clone-source"
SNAPSHOT_SOURCE_INDEX = "snapshot-source"
PV_INDEX = "pv"


def clone_source_key(pvc: Mapping[str, Any]) -> str | None:
    """``namespace/name`` of the PVC this claim clones (``dataSource`` kind PVC), or None."""
    src = spec(pvc).get("dataSource")
    if not isinstance(src, dict) or src.get("kind") != strings.KIND_PVC or src.get("apiGroup"):
        return None
    source_name = src.get("name")
    return f"{namespace(pvc)}/{source_name}" if source_name else None


def _by_clone_source(pvc: JsonDict) -> list[str]:
    key = clone_source_key(pvc)
    return [key] if key else []


def _by_snapshot_source(pvc: JsonDict) -> list[str]:
    key = snapshot_source_key(pvc)
    return [key] if key else []


class StoreMapping(Mapping[str, JsonDict]):
    """A read-only ``name -> object`` view of a cluster-scoped store (no copy of the store)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, key: str) -> JsonDict:
        obj = self._store.get(key)
        if obj is None:
            raise KeyError(key)
        return obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.list_keys())

    def __len__(self) -> int:
        return len(self._store)


class Caches:
    """The informers of one provisioner, declared on the controller runner's context.

    Args:
        ctx: the runner's context (informers start and sync before the workers).
        topology: cache CSINodes and Nodes (driver supports topology).
        attachments: cache VolumeAttachments (driver has PUBLISH_UNPUBLISH_VOLUME).
        resync_period: resync of the PVC and PV informers (0 disables).
        static_topology: node deployment: this node's CSINode and Node (by name), never
            watched (Go's fake objects from NodeGetInfo).
    """

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        topology: bool,
        attachments: bool,
        resync_period: float = RESYNC_PERIOD,
        static_topology: tuple[dict[str, JsonDict], dict[str, JsonDict]] | None = None,
    ) -> None:
        self.claims = ctx.informer(
            PERSISTENT_VOLUME_CLAIMS,
            fields=PVC_FIELDS,
            resync=resync_period,
            indexers={
                CLONE_SOURCE_INDEX: _by_clone_source,
                SNAPSHOT_SOURCE_INDEX: _by_snapshot_source,
            },
        )
        self.volumes = ctx.informer(PERSISTENT_VOLUMES, fields=PV_FIELDS, resync=resync_period)
        self.classes = ctx.informer(STORAGE_CLASSES)
        watch = topology and static_topology is None
        self.csinodes = ctx.informer(CSI_NODES, fields=CSINODE_FIELDS) if watch else None
        self.nodes = ctx.informer(NODES, fields=NODE_FIELDS) if watch else None
        self.attachments = (
            ctx.informer(VOLUME_ATTACHMENTS, fields=VA_FIELDS, indexers={PV_INDEX: va_pv_index})
            if attachments
            else None
        )
        self.csinode_map: Mapping[str, JsonDict] = (
            StoreMapping(self.csinodes.store) if self.csinodes else {}
        )
        self.node_map: Mapping[str, JsonDict] = StoreMapping(self.nodes.store) if self.nodes else {}
        if static_topology is not None:
            self.csinode_map, self.node_map = static_topology

    @property
    def informers(self) -> list[Informer]:
        """Every informer that exists."""
        out = [self.claims, self.volumes, self.classes]
        out.extend(i for i in (self.csinodes, self.nodes, self.attachments) if i is not None)
        return out

    def has_synced(self) -> bool:
        """Whether every informer listed once."""
        return all(i.has_synced() for i in self.informers)

    def claim(self, key: str) -> JsonDict | None:
        """The cached PVC ``namespace/name``."""
        return self.claims.store.get(key)

    def volume(self, name: str) -> JsonDict | None:
        """The cached PV ``name``."""
        return self.volumes.store.get(name)

    def storage_class(self, name: str) -> JsonDict | None:
        """The cached StorageClass ``name`` (None for "")."""
        return self.classes.store.get(name) if name else None

    def clones_of(self, source_key: str) -> list[JsonDict]:
        """PVCs whose ``dataSource`` is the PVC ``source_key``."""
        return self.claims.store.by_index(CLONE_SOURCE_INDEX, source_key)

    def restoring_from(self, snapshot_key: str) -> list[JsonDict]:
        """PVCs whose data source is the VolumeSnapshot ``snapshot_key`` (``namespace/name``)."""
        return self.claims.store.by_index(SNAPSHOT_SOURCE_INDEX, snapshot_key)

    def attachments_of(self, pv_name: str) -> list[JsonDict]:
        """VolumeAttachments of the PV ``pv_name`` (empty when not cached)."""
        if self.attachments is None:
            return []
        return self.attachments.store.by_index(PV_INDEX, pv_name)
