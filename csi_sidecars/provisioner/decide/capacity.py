"""Capacity tracking (``--enable-capacity``): which CSIStorageCapacity objects should exist, and
the write that brings one up to date. Pure: objects and the driver's answer in, decisions out.

The work items are (topology segment, StorageClass) pairs, as in Go's ``pkg/capacity``:

* segments (:func:`node_segments`): for every CSINode that lists the driver, its
  ``topologyKeys`` with the values of the Node's labels, sorted; a node missing a label is
  skipped until it has it; a driver without keys gives the empty segment (it matches every
  node). In node deployment the one segment is the driver's own ``accessible_topology``.
* classes (:func:`tracked_class`): StorageClasses of the driver; ``Immediate`` ones only with
  ``--capacity-for-immediate-binding``.

For an item the driver's ``GetCapacity`` (:func:`capacity_request`: the StorageClass
parameters without the ``csi.storage.k8s.io/`` keys, which are the sidecars' and never reach
CreateVolume either, and the segment as ``accessible_topology``) decides
(:func:`write_plan`) whether to create the object (``generateName: csisc-``, labels
``csi.storage.k8s.io/drivername`` and ``csi.storage.k8s.io/managed-by``, ``storageClassName``,
``nodeTopology``, ``capacity``, ``maximumVolumeSize``, the owner reference), update it (Update,
with its resourceVersion) or leave it alone (same values, owner in place: no write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import JsonDict, labels_of, meta, name, spec, str_map
from csi_sidecars.kube.quantity import QuantityError, format_binary_si, quantity_to_bytes
from csi_sidecars.kube.resources import CSI_STORAGE_CAPACITIES
from csi_sidecars.provisioner.decide.strings import CSI_PARAMETER_PREFIX

DRIVER_NAME_LABEL = "csi.storage.k8s.io/drivername"
MANAGED_BY_LABEL = "csi.storage.k8s.io/managed-by"
MANAGED_BY = "external-provisioner"
GENERATE_NAME = "csisc-"
#: DNS-1035 label length, the limit of the node deployment's managed-by value.
LABEL_MAX = 63

#: One topology segment: sorted (key, value) pairs.
Segment = tuple[tuple[str, str], ...]


@dataclass(frozen=True, order=True)
class Item:
    """One CSIStorageCapacity object to maintain: a segment and a StorageClass."""

    storage_class: str
    segment: Segment

    @property
    def key(self) -> str:
        """The work-queue key (one entry per item however many events arrive)."""
        return json.dumps([self.storage_class, [list(e) for e in self.segment]])

    @classmethod
    def from_key(cls, key: str) -> Item:
        """The item of a :attr:`key`.

        Raises:
            ValueError: not an item key.
        """
        data = json.loads(key)
        if not isinstance(data, list) or len(data) != 2 or not isinstance(data[0], str):
            raise ValueError(f"not a capacity item key: {key!r}")
        return cls(data[0], tuple((str(k), str(v)) for k, v in data[1]))

    def __str__(self) -> str:
        seg = "+ ".join(f"{k}: {v}" for k, v in self.segment)
        return f"{{segment: {seg or '(all nodes)'}, storageClass: {self.storage_class}}}"


def managed_by_id(node: str = "") -> str:
    """The ``managed-by`` label value: ``external-provisioner``, or in node deployment
    ``external-provisioner-<node>`` shortened to 63 characters with an FNV-1a hash as Go."""
    if not node:
        return MANAGED_BY
    return name_with_max_length(MANAGED_BY, node, LABEL_MAX)


def _fnv32a(text: str) -> str:
    h = 0x811C9DC5
    for byte in text.encode():
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def name_with_max_length(base: str, suffix: str, max_length: int) -> str:
    """Go's ``getNameWithMaxLength``: ``base-suffix``, or a hashed form within ``max_length``."""
    full = f"{base}-{suffix}" if base else suffix
    if len(full) <= max_length:
        return full
    base_length = max_length - 10 - len(suffix)
    if base_length <= 0:
        short = _fnv32a(full)
        prefix = base[: min(len(base), max(0, max_length - 9))]
        if prefix:
            short = f"{prefix}-{_fnv32a(full)}"
        return short[: min(max_length, len(short))]
    return f"{base[:base_length]}-{_fnv32a(base)}-{suffix}"


def _csinode_keys(csinode: Mapping[str, Any], driver: str) -> list[str] | None:
    """The driver's topology keys on a CSINode; None when the driver is not on it."""
    for entry in spec(csinode).get("drivers") or []:
        if isinstance(entry, dict) and entry.get("name") == driver:
            return [str(k) for k in entry.get("topologyKeys") or []]
    return None


def node_segments(
    driver: str, csinodes: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]
) -> list[Segment]:
    """The distinct topology segments of the nodes the driver runs on, sorted."""
    found: set[Segment] = set()
    for csinode in csinodes:
        keys = _csinode_keys(csinode, driver)
        node = nodes.get(name(csinode))
        if keys is None or node is None:
            continue
        labels = labels_of(node)
        if any(k not in labels for k in keys):
            continue
        found.add(tuple(sorted((k, str(labels[k])) for k in keys)))
    return sorted(found)


def fixed_segment(accessible_topology: Mapping[str, str] | None) -> Segment:
    """The one segment of a node deployment: the driver's NodeGetInfo topology."""
    return tuple(sorted((accessible_topology or {}).items()))


def tracked_class(sc: Mapping[str, Any], driver: str, immediate_binding: bool) -> bool:
    """Whether capacity is published for this StorageClass."""
    if sc.get("provisioner") != driver:
        return False
    return immediate_binding or sc.get("volumeBindingMode") != "Immediate"


def wanted_items(
    segments: Iterable[Segment],
    classes: Iterable[Mapping[str, Any]],
    driver: str,
    immediate_binding: bool,
) -> set[Item]:
    """Every (segment, class) pair that should have an object."""
    names = [name(sc) for sc in classes if tracked_class(sc, driver, immediate_binding)]
    return {Item(cls, seg) for seg in segments for cls in names}


def item_of(obj: Mapping[str, Any]) -> Item | None:
    """The item an existing CSIStorageCapacity describes (None when it has no class)."""
    storage_class = obj.get("storageClassName")
    if not isinstance(storage_class, str) or not storage_class:
        return None
    topology = obj.get("nodeTopology")
    labels = str_map(topology.get("matchLabels")) if isinstance(topology, dict) else {}
    return Item(storage_class, tuple(sorted(labels.items())))


def is_managed(obj: Mapping[str, Any], driver: str, managed_by: str) -> bool:
    """Whether a CSIStorageCapacity carries our two labels."""
    labels = labels_of(obj)
    return labels.get(DRIVER_NAME_LABEL) == driver and labels.get(MANAGED_BY_LABEL) == managed_by


def segment_of_term(term: Mapping[str, Any]) -> Segment | None:
    """A PV node-affinity term as a segment (``In`` with one value each), or None."""
    if term.get("matchFields"):
        return None
    out = []
    for expr in term.get("matchExpressions") or []:
        values = expr.get("values") or []
        if expr.get("operator") != "In" or len(values) != 1:
            return None
        out.append((str(expr.get("key")), str(values[0])))
    return tuple(sorted(out))


def affinity_segments(pv: Mapping[str, Any] | None) -> list[Segment] | None:
    """The segments of a PV's required node affinity; None when it has none."""
    required = (spec(pv).get("nodeAffinity") or {}).get("required") or {}
    terms = required.get("nodeSelectorTerms")
    if not isinstance(terms, list):
        return None
    return [s for s in (segment_of_term(t) for t in terms if isinstance(t, dict)) if s is not None]


def capacity_request(sc: Mapping[str, Any], segment: Segment | None) -> csi_pb2.GetCapacityRequest:
    """The GetCapacity request of an item (no volume capabilities, as Go)."""
    params = {
        k: v
        for k, v in str_map(sc.get("parameters")).items()
        if not k.startswith(CSI_PARAMETER_PREFIX)
    }
    req = csi_pb2.GetCapacityRequest(parameters=params)
    if segment is not None:
        req.accessible_topology.CopyFrom(csi_pb2.Topology(segments=dict(segment)))
    return req


@dataclass(frozen=True)
class Reported:
    """What GetCapacity said, checked: bytes available and the largest volume (None: unset)."""

    available: int
    maximum: int | None = None


def reported(resp: csi_pb2.GetCapacityResponse) -> Reported:
    """The checked values of a GetCapacity reply (negative numbers count as 0)."""
    maximum = resp.maximum_volume_size.value if resp.HasField("maximum_volume_size") else None
    return Reported(max(0, resp.available_capacity), None if maximum is None else max(0, maximum))


def _bytes(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return quantity_to_bytes(str(value))
    except QuantityError:
        return -1  # malformed: never equal, so the object gets rewritten


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether ``obj`` has ``owner`` as its controller (by UID)."""
    return any(
        isinstance(ref, dict)
        and ref.get("controller") is True
        and ref.get("uid") == owner.get("uid")
        for ref in meta(obj).get("ownerReferences") or []
    )


@dataclass(frozen=True, slots=True)
class Written(a.Done):
    """The object of an item was created or updated; ``name`` is its name."""

    name: str = ""


def new_object(
    item: Item,
    value: Reported,
    *,
    driver: str,
    managed_by: str,
    owner: Mapping[str, Any] | None,
) -> JsonDict:
    """A new CSIStorageCapacity for ``item``."""
    metadata: JsonDict = {
        "generateName": GENERATE_NAME,
        "labels": {DRIVER_NAME_LABEL: driver, MANAGED_BY_LABEL: managed_by},
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    body: JsonDict = {
        "apiVersion": CSI_STORAGE_CAPACITIES.api_version,
        "kind": CSI_STORAGE_CAPACITIES.kind,
        "metadata": metadata,
        "storageClassName": item.storage_class,
        "nodeTopology": {"matchLabels": dict(item.segment)},
        "capacity": format_binary_si(value.available),
    }
    if value.maximum is not None:
        body["maximumVolumeSize"] = format_binary_si(value.maximum)
    return body


def write_plan(
    item: Item,
    value: Reported,
    existing: Mapping[str, Any] | None,
    *,
    namespace: str,
    driver: str,
    managed_by: str,
    owner: Mapping[str, Any] | None,
) -> Plan:
    """Create, update or keep the object of ``item`` after GetCapacity answered ``value``.

    Returns:
        ``Create`` (then :class:`Written`), an Update (``Replace``, then :class:`Written`; a
        conflict or a vanished object is a :class:`~csi_sidecars.controller.actions.Redecide`),
        or Done when values and owner are already right.
    """
    if existing is None:
        body = new_object(item, value, driver=driver, managed_by=managed_by, owner=owner)
        return (
            a.Create(
                CSI_STORAGE_CAPACITIES,
                body,
                namespace,
                then=lambda obj: (Written(f"created {name(obj)} for {item}", name(obj)),),
            ),
        )
    same = (
        _bytes(existing.get("capacity")) == value.available
        and _bytes(existing.get("maximumVolumeSize")) == value.maximum
        and (owner is None or owned_by(existing, owner))
    )
    if same:
        return (a.Done(),)
    body = {**existing, "metadata": dict(meta(existing))}
    body["capacity"] = format_binary_si(value.available)
    if value.maximum is None:
        body.pop("maximumVolumeSize", None)
    else:
        body["maximumVolumeSize"] = format_binary_si(value.maximum)
    if owner is not None and not owned_by(existing, owner):
        refs = list(body["metadata"].get("ownerReferences") or [])
        body["metadata"]["ownerReferences"] = [*refs, dict(owner)]

    def on_error(exc: Any) -> Plan:
        if exc.not_found or exc.conflict:
            return (a.Redecide(f"CSIStorageCapacity {name(existing)} changed: {exc.message}"),)
        return (a.Retry(f"update CSIStorageCapacity for {item}: {exc.message or exc}"),)

    return (
        a.Replace(
            CSI_STORAGE_CAPACITIES,
            body,
            namespace,
            then=lambda obj: (Written(f"updated {name(obj)} for {item}", name(obj)),),
            on_error=on_error,
        ),
    )


def owner_reference(obj: Mapping[str, Any]) -> JsonDict:
    """A controller owner reference to ``obj`` (Go: the object at ``--capacity-ownerref-level``)."""
    return {
        "apiVersion": str(obj.get("apiVersion") or ""),
        "kind": str(obj.get("kind") or ""),
        "name": name(obj),
        "uid": str(meta(obj).get("uid") or ""),
        "controller": True,
    }


def controller_of(obj: Mapping[str, Any]) -> JsonDict | None:
    """The controlling owner reference of ``obj`` (None when it has none)."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return {
                "apiVersion": str(ref.get("apiVersion") or ""),
                "kind": str(ref.get("kind") or ""),
                "name": str(ref.get("name") or ""),
                "uid": str(ref.get("uid") or ""),
                "controller": True,
            }
    return None


__all__ = [
    "DRIVER_NAME_LABEL",
    "MANAGED_BY_LABEL",
    "Item",
    "Reported",
    "Segment",
    "Written",
    "affinity_segments",
    "capacity_request",
    "controller_of",
    "fixed_segment",
    "is_managed",
    "item_of",
    "managed_by_id",
    "name_with_max_length",
    "new_object",
    "node_segments",
    "owned_by",
    "owner_reference",
    "reported",
    "segment_of_term",
    "tracked_class",
    "wanted_items",
    "write_plan",
]
