"""Kubernetes Events for attach and detach outcomes, built by the decisions (issue #363).

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

The attacher has no pod cache, so "the pods using the volume" are an action too:
:func:`on_va_and_pods` returns the ``Emit`` on the VolumeAttachment and a ``List`` of the pods
in the claim's namespace on that node whose pure continuation emits the event on each pod that
mounts the claim (:func:`pod_uses_claim`), then ends with the outcome it was given. A failed
pod list only loses those events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.attacher.objects import pv_claim
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import Event, JsonDict, namespace, normal, spec, warning
from csi_sidecars.kube.resources import PODS, VOLUME_ATTACHMENTS

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PodSelector:
    """The pods on ``node_name`` in ``namespace`` that mount PVC ``claim_name``."""

    namespace: str
    claim_name: str
    node_name: str


def pod_selector(pv: Obj | None, node_name: str) -> PodSelector | None:
    """The pods using a PersistentVolume on a node, via the PV's ``claimRef``; None if unbound."""
    if pv is None:
        return None
    claim = pv_claim(pv)
    if claim is None or not node_name:
        return None
    return PodSelector(namespace=claim[0], claim_name=claim[1], node_name=node_name)


def pod_uses_claim(pod: Obj, selector: PodSelector) -> bool:
    """Whether ``pod`` (a raw Pod dict) runs on the selector's node and mounts its claim."""
    pod_spec = spec(pod)
    if namespace(pod) != selector.namespace or pod_spec.get("nodeName") != selector.node_name:
        return False
    for volume in pod_spec.get("volumes") or []:
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName") == selector.claim_name:
            return True
    return False


def on_va(event: Event, va: Obj) -> a.Emit:
    """Record ``event`` on the VolumeAttachment."""
    return a.Emit(event, dict(va), VOLUME_ATTACHMENTS)


def on_va_and_pods(
    event: Event, va: Obj, pods: PodSelector | None, outcome: a.Outcome
) -> tuple[a.Action, ...]:
    """``event`` on the VolumeAttachment and (``pods`` not None) on those pods; then ``outcome``."""
    emit = on_va(event, va)
    if pods is None:
        return (emit, outcome)
    selector = pods

    def found(items: list[JsonDict]) -> a.Plan:
        emits = [a.Emit(event, pod, PODS) for pod in items if pod_uses_claim(pod, selector)]
        return (*emits, outcome)

    listing = a.List(
        PODS,
        namespace=pods.namespace,
        field_selector=f"spec.nodeName={pods.node_name}",
        for_events=True,
        then=found,
        on_error=lambda _: (outcome,),
    )
    return (emit, listing)


def _volume(pv_name: str | None, handle: str) -> str:
    return f'volume "{pv_name}"' if pv_name else f'inline volume "{handle}"'


def attach_succeeded(pv_name: str | None, handle: str, node_name: str) -> Event:
    """The event for a successful ControllerPublishVolume."""
    return normal(
        names.REASON_ATTACH_SUCCEEDED,
        f'ControllerPublishVolume succeeded for {_volume(pv_name, handle)} (handle "{handle}") '
        f'on node "{node_name}"',
    )


def attach_failed(pv_name: str | None, node_name: str, error: str) -> Event:
    """The event for a failed attach."""
    what = f'volume "{pv_name}"' if pv_name else "inline volume"
    return warning(
        names.REASON_ATTACH_FAILED, f'AttachVolume failed for {what} on node "{node_name}": {error}'
    )


def detach_succeeded(pv_name: str | None, handle: str, node_name: str) -> Event:
    """The event for a successful ControllerUnpublishVolume."""
    return normal(
        names.REASON_DETACH_SUCCEEDED,
        f"ControllerUnpublishVolume succeeded for {_volume(pv_name, handle)} "
        f'(handle "{handle}") on node "{node_name}"',
    )


def detach_failed(pv_name: str | None, node_name: str, error: str) -> Event:
    """The event for a failed detach."""
    what = f'volume "{pv_name}"' if pv_name else "inline volume"
    return warning(
        names.REASON_DETACH_FAILED, f'DetachVolume failed for {what} on node "{node_name}": {error}'
    )
