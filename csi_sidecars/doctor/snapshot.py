"""The read-only picture of a cluster that every checker works on.

:class:`ClusterSnapshot` holds the objects doctor read (plain API dicts, by kind), the time they
were read, and which kinds could not be read and why (CRDs not installed, no permission). The
checkers are pure functions of a snapshot: a test builds one from dicts with
:meth:`ClusterSnapshot.build` and no cluster at all; :mod:`.gather` fills one from the API.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.kube.objects import JsonDict, meta, name, namespace

STORAGE_CLASS = "StorageClass"
CSI_DRIVER = "CSIDriver"
CSI_NODE = "CSINode"
NODE = "Node"
PVC = "PersistentVolumeClaim"
PV = "PersistentVolume"
VOLUME_ATTACHMENT = "VolumeAttachment"
POD = "Pod"
EVENT = "Event"
LEASE = "Lease"
CAPACITY = "CSIStorageCapacity"
VOLUME_SNAPSHOT = "VolumeSnapshot"
SNAPSHOT_CONTENT = "VolumeSnapshotContent"
SNAPSHOT_CLASS = "VolumeSnapshotClass"

KINDS = (
    STORAGE_CLASS,
    CSI_DRIVER,
    CSI_NODE,
    NODE,
    PVC,
    PV,
    VOLUME_ATTACHMENT,
    POD,
    EVENT,
    LEASE,
    CAPACITY,
    VOLUME_SNAPSHOT,
    SNAPSHOT_CONTENT,
    SNAPSHOT_CLASS,
)
SNAPSHOT_KINDS = (VOLUME_SNAPSHOT, SNAPSHOT_CONTENT, SNAPSHOT_CLASS)


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is an object, else an empty one (malformed fields read as absent)."""
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an API timestamp (RFC 3339, micro or plain), or None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def created_at(obj: Mapping[str, Any]) -> float | None:
    """``metadata.creationTimestamp`` in epoch seconds."""
    return parse_time(meta(obj).get("creationTimestamp"))


def deleted_at(obj: Mapping[str, Any]) -> float | None:
    """``metadata.deletionTimestamp`` in epoch seconds (None: not being deleted)."""
    return parse_time(meta(obj).get("deletionTimestamp"))


def event_time(event: Mapping[str, Any]) -> float:
    """When an event last happened (0 when it carries no time at all)."""
    series = mapping(event.get("series"))
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        meta(event).get("creationTimestamp"),
    ):
        stamp = parse_time(value)
        if stamp is not None:
            return stamp
    return 0.0


def event_component(event: Mapping[str, Any]) -> str:
    """Who recorded an event (``source.component`` or ``reportingComponent``)."""
    source = mapping(event.get("source"))
    return str(
        source.get("component")
        or event.get("reportingComponent")
        or event.get("reportingController")
        or ""
    )


def event_count(event: Mapping[str, Any]) -> int:
    """How often an event happened (``count``, or its series count)."""
    series = mapping(event.get("series"))
    try:
        return max(1, int(series.get("count") or event.get("count") or 1))
    except (TypeError, ValueError):
        return 1


def age_text(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


@dataclass(frozen=True)
class ClusterSnapshot:
    """What doctor read from the cluster, at one moment.

    Attributes:
        now: when it was read (epoch seconds, this machine's clock).
        objects: the objects of each kind (API dicts).
        unavailable: kinds that could not be read, with why ("not installed", "forbidden: ...").
    """

    now: float
    objects: Mapping[str, tuple[JsonDict, ...]] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        now: float,
        unavailable: Mapping[str, str] | None = None,
        **items: Iterable[JsonDict],
    ) -> ClusterSnapshot:
        """A snapshot from keyword lists: ``pvcs=[...]``, ``storage_classes=[...]``, ...

        Keywords: storage_classes, csi_drivers, csi_nodes, nodes, pvcs, pvs,
        volume_attachments, pods, events, leases, capacities, snapshots, snapshot_contents,
        snapshot_classes.

        Raises:
            TypeError: an unknown keyword.
        """
        objects: dict[str, tuple[JsonDict, ...]] = {}
        for key, values in items.items():
            kind = _KEYWORDS.get(key)
            if kind is None:
                raise TypeError(f"unknown snapshot keyword {key!r}")
            objects[kind] = tuple(values)
        return cls(now=now, objects=objects, unavailable=dict(unavailable or {}))

    def items(self, kind: str) -> tuple[JsonDict, ...]:
        """Every object of ``kind`` read (empty when none or unreadable)."""
        return self.objects.get(kind, ())

    def readable(self, kind: str) -> bool:
        """Whether ``kind`` was read (an empty list is readable)."""
        return kind not in self.unavailable

    @functools.cached_property
    def _index(self) -> dict[tuple[str, str, str], JsonDict]:
        return {
            (kind, namespace(obj), name(obj)): obj
            for kind, objs in self.objects.items()
            for obj in objs
        }

    def get(self, kind: str, obj_name: str, obj_namespace: str = "") -> JsonDict | None:
        """One object by kind, name and namespace ("" for cluster-scoped kinds)."""
        return self._index.get((kind, obj_namespace, obj_name))

    def age(self, obj: Mapping[str, Any]) -> float | None:
        """Seconds since the object was created (None when it carries no timestamp)."""
        stamp = created_at(obj)
        return None if stamp is None else self.now - stamp

    def since(self, stamp: float | None) -> float | None:
        """Seconds since ``stamp``."""
        return None if stamp is None else self.now - stamp


_KEYWORDS = {
    "storage_classes": STORAGE_CLASS,
    "csi_drivers": CSI_DRIVER,
    "csi_nodes": CSI_NODE,
    "nodes": NODE,
    "pvcs": PVC,
    "pvs": PV,
    "volume_attachments": VOLUME_ATTACHMENT,
    "pods": POD,
    "events": EVENT,
    "leases": LEASE,
    "capacities": CAPACITY,
    "snapshots": VOLUME_SNAPSHOT,
    "snapshot_contents": SNAPSHOT_CONTENT,
    "snapshot_classes": SNAPSHOT_CLASS,
}
