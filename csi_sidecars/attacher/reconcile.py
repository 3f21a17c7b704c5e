"""ListVolumes reconciliation: find VolumeAttachments whose status disagrees with the driver.

With ``LIST_VOLUMES`` and ``LIST_VOLUMES_PUBLISHED_NODES`` the leader pages through
``ListVolumes`` every ``--reconcile-sync`` (the whole pass bounded by ``--timeout``) and collects
volume ID -> published node IDs (:func:`published_nodes`; entries without ``volume`` or
``status`` are skipped). For each VolumeAttachment of this driver, :func:`reconcile` compares
``status.attached`` with "the VA's node ID is among the volume's published nodes". A mismatch
(attached in status but not published: the volume was detached behind Kubernetes' back; or
published but not attached in status) means: mark the VA *force-sync* and add it to the VA
queue; its next sync attaches again (or, for a VA being deleted, detaches again) even though the
status already shows the desired state. The reconciler itself never writes to the API.

Node ID: the CSINode, else the VA's ``csi.alpha.kubernetes.io/node-id`` annotation. Volume
handle: the PV's (or the inline spec's), else — better than Go, which skips such VAs — our
volume-handle annotation. In-tree handle repair (GCE PD) is not done: in-tree volumes are not
supported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.objects import (
    SourceError,
    csi_source,
    csinode_node_id,
    inline_spec,
    pv_not_found,
    pv_spec,
    va_attached,
    va_attacher,
    va_node_name,
    va_pv_name,
)
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import annotations_of, name

Obj = Mapping[str, Any]


def published_nodes(
    entries: Iterable[csi_pb2.ListVolumesResponse.Entry],
    into: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """Collect ``volume_id -> published_node_ids`` from one page of ListVolumes entries.

    Pass the dict of the previous pages as ``into`` to accumulate; a later entry for the same
    volume replaces an earlier one (as in Go).
    """
    out = {} if into is None else into
    for entry in entries:
        if not entry.HasField("volume") or not entry.HasField("status"):
            continue
        out[entry.volume.volume_id] = list(entry.status.published_node_ids)
    return out


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A VolumeAttachment whose status disagrees with ListVolumes: force-sync and enqueue it."""

    va_name: str
    volume_handle: str
    node_id: str
    attached: bool
    published: bool


@dataclass(slots=True)
class ReconcileResult:
    """Mismatched VAs, and VAs that could not be checked (name, reason) for the log."""

    mismatches: list[Mismatch] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _volume_handle(va: Obj, get_pv: Callable[[str], Obj | None]) -> str:
    inline = inline_spec(va)
    if inline is not None:
        return str(csi_source(inline).get("volumeHandle") or "")
    pv_name = va_pv_name(va)
    assert pv_name is not None
    pv = get_pv(pv_name)
    if pv is not None:
        return str(csi_source(pv_spec(pv), pv_name).get("volumeHandle") or "")
    handle = annotations_of(va).get(names.VOLUME_HANDLE_ANNOTATION)
    if handle is None:
        raise SourceError(pv_not_found(pv_name))
    return handle


def reconcile(
    vas: Iterable[Obj],
    published: Mapping[str, Sequence[str]],
    *,
    cfg: AttacherConfig,
    get_pv: Callable[[str], Obj | None],
    get_csinode: Callable[[str], Obj | None],
) -> ReconcileResult:
    """Compare every VA of this driver with the driver's published nodes.

    Args:
        vas: all VolumeAttachments in the cache.
        published: volume ID -> published node IDs (from :func:`published_nodes`).
        cfg: the attacher configuration (only ``driver_name`` is used).
        get_pv: PV cache lookup by name (None when absent).
        get_csinode: CSINode cache lookup by node name (None when absent).
    """
    result = ReconcileResult()
    for va in vas:
        if va_attacher(va) != cfg.driver_name:
            continue
        va_name = name(va)
        node_name = va_node_name(va)
        node_id = csinode_node_id(get_csinode(node_name), cfg.driver_name)
        if node_id is None:
            node_id = annotations_of(va).get(names.NODE_ID_ANNOTATION)
        if node_id is None:
            result.skipped.append((va_name, f"no node ID for node {node_name}"))
            continue
        try:
            handle = _volume_handle(va, get_pv)
        except SourceError as exc:
            result.skipped.append((va_name, str(exc)))
            continue
        found = node_id in published.get(handle, ())
        attached = va_attached(va)
        if attached != found:
            result.mismatches.append(Mismatch(va_name, handle, node_id, attached, found))
    return result
