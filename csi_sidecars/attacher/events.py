"""Kubernetes Events for attach and detach outcomes, as data (external-attacher issue #363).

The Go attacher records no events; errors are only in ``VolumeAttachment.status``. We record:

=========================  =======  ===========================================================
reason                     type     when / on what
=========================  =======  ===========================================================
``SuccessfulAttachVolume`` Normal   ControllerPublishVolume succeeded; on the VolumeAttachment
``FailedAttachVolume``     Warning  attach failed (CSI error or a check before it); on the
                                    VolumeAttachment and on the pods using the volume on that node
``SuccessfulDetachVolume`` Normal   ControllerUnpublishVolume succeeded; on the VolumeAttachment
``FailedDetachVolume``     Warning  detach failed; on the VolumeAttachment and the pods
=========================  =======  ===========================================================

The reasons are those of Kubernetes' attach/detach controller, so existing filters match; the
event source component (``csi-attacher``) tells them apart. Messages contain object names, the
volume handle, the node and the error text: never secret data (requests are not rendered).

"Pods using the volume" are described by a :class:`PodSelector` (namespace, claim, node), since
the attacher has no pod cache: the executor may list pods in that namespace on that node
(``fieldSelector=spec.nodeName=<node>``) and keep those for which :func:`pod_uses_claim` holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from csi_sidecars.attacher import names
from csi_sidecars.attacher.objects import pv_claim

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class PodSelector:
    """The pods on ``node_name`` in ``namespace`` that mount PVC ``claim_name``."""

    namespace: str
    claim_name: str
    node_name: str


@dataclass(frozen=True, slots=True)
class Event:
    """One event to record.

    Attributes:
        type: ``Normal`` or ``Warning``.
        reason: one of the ``REASON_*`` strings of :mod:`csi_sidecars.attacher.names`.
        message: human-readable text (no secrets).
        pods: None -> record on the VolumeAttachment; else on each pod the selector matches.
    """

    type: EventType
    reason: str
    message: str
    pods: PodSelector | None = None


def pod_selector(pv: Mapping[str, Any] | None, node_name: str) -> PodSelector | None:
    """The pods using a PersistentVolume on a node, via the PV's ``claimRef``; None if unbound."""
    if pv is None:
        return None
    claim = pv_claim(pv)
    if claim is None or not node_name:
        return None
    return PodSelector(namespace=claim[0], claim_name=claim[1], node_name=node_name)


def pod_uses_claim(pod: Mapping[str, Any], selector: PodSelector) -> bool:
    """Whether ``pod`` (a raw Pod dict) runs on the selector's node and mounts its claim."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if meta.get("namespace") != selector.namespace or spec.get("nodeName") != selector.node_name:
        return False
    for volume in spec.get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName") == selector.claim_name:
            return True
    return False


def _volume(pv_name: str | None, handle: str) -> str:
    return f'volume "{pv_name}"' if pv_name else f'inline volume "{handle}"'


def attach_succeeded(pv_name: str | None, handle: str, node_name: str) -> tuple[Event, ...]:
    """Events for a successful ControllerPublishVolume."""
    message = (
        f'ControllerPublishVolume succeeded for {_volume(pv_name, handle)} (handle "{handle}") '
        f'on node "{node_name}"'
    )
    return (Event("Normal", names.REASON_ATTACH_SUCCEEDED, message),)


def attach_failed(
    pv_name: str | None, node_name: str, error: str, pods: PodSelector | None
) -> tuple[Event, ...]:
    """Events for a failed attach (on the VolumeAttachment, and on the pods when known)."""
    what = f'volume "{pv_name}"' if pv_name else "inline volume"
    message = f'AttachVolume failed for {what} on node "{node_name}": {error}'
    events = [Event("Warning", names.REASON_ATTACH_FAILED, message)]
    if pods is not None:
        events.append(Event("Warning", names.REASON_ATTACH_FAILED, message, pods))
    return tuple(events)


def detach_succeeded(pv_name: str | None, handle: str, node_name: str) -> tuple[Event, ...]:
    """Events for a successful ControllerUnpublishVolume."""
    message = (
        f"ControllerUnpublishVolume succeeded for {_volume(pv_name, handle)} "
        f'(handle "{handle}") on node "{node_name}"'
    )
    return (Event("Normal", names.REASON_DETACH_SUCCEEDED, message),)


def detach_failed(
    pv_name: str | None, node_name: str, error: str, pods: PodSelector | None
) -> tuple[Event, ...]:
    """Events for a failed detach (on the VolumeAttachment, and on the pods when known)."""
    what = f'volume "{pv_name}"' if pv_name else "inline volume"
    message = f'DetachVolume failed for {what} on node "{node_name}": {error}'
    events = [Event("Warning", names.REASON_DETACH_FAILED, message)]
    if pods is not None:
        events.append(Event("Warning", names.REASON_DETACH_FAILED, message, pods))
    return tuple(events)
