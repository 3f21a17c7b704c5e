"""The expansion decision: from a PVC, its PV and what we remember, the complete plan.

:func:`decide_expansion` is pure. It follows external-resizer's expand-and-recover flow
(``RecoverVolumeExpansionFailure``, on by default): pick the size to expand to from the request,
the PV size, ``status.allocatedResources`` and ``status.allocatedResourceStatuses``; record it
(``ControllerResizeInProgress``, condition ``Resizing``) before calling the driver; then write
the PV capacity and either ``NodeResizePending`` + ``FileSystemResizePending`` or the finished
state. With the gate off it follows Go's older flow (conditions only).

Better than Go, each visible in the plans:

* a reply with ``capacity_bytes`` 0 or below the requested size is an error (Warning event,
  retried), never written to the PV (external-resizer #226);
* a call that timed out leaves the claim ``ControllerResizeInProgress`` and is repeated with the
  same size; success is only recorded from a reply that confirms the size (#474);
* ``Unimplemented`` is terminal for that size: recorded once, not retried (#95);
* the in-use check after a FailedPrecondition lists the pods of the claim's namespace once,
  instead of caching every pod of the cluster (#211), and also sees generic ephemeral volumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, name, namespace, normal, resource_version, warning
from csi_sidecars.kube.objects import status as status_of
from csi_sidecars.kube.quantity import format_binary_si, quantity_to_bytes
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS
from csi_sidecars.resizer import claims as c
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.errors import DriverError, classify, not_grpc
from csi_sidecars.resizer.memory import Recall
from csi_sidecars.resizer.request import (
    RequestError,
    expand_request,
    expand_secret_ref,
    volume_capability,
)
from csi_sidecars.resizer.secrets import with_secrets

PVC = PERSISTENT_VOLUME_CLAIMS
TERMINATED = ("Failed", "Succeeded")


@dataclass(frozen=True, slots=True)
class ExpandSettings:
    """What the expansion decision needs to know about this resizer.

    Attributes:
        driver: the driver name (PVs of other drivers are not ours).
        controller_expansion: the driver has controller EXPAND_VOLUME (else the node does all:
            no CSI call, node expansion required).
        single_node_multi_writer: the driver has SINGLE_NODE_MULTI_WRITER.
        annotate_fs_resize: gate ``AnnotateFsResize``.
        recover: gate ``RecoverVolumeExpansionFailure``.
        handle_in_use: ``--handle-volume-inuse-error``.
    """

    driver: str
    controller_expansion: bool = True
    single_node_multi_writer: bool = False
    annotate_fs_resize: bool = True
    recover: bool = True
    handle_in_use: bool = True


def key_of(pvc: Mapping[str, Any]) -> str:
    """``namespace/name``."""
    return f"{namespace(pvc)}/{name(pvc)}"


def needs_resize(pvc: Mapping[str, Any]) -> bool:
    """Bound, with a volume, and asking for more than its capacity."""
    if not c.is_bound(pvc) or not c.volume_name(pvc):
        return False
    req = c.size(c.request(pvc))
    return req is not None and req > c.zero_if_none(c.size(c.capacity(pvc)))


def ours(pv: Mapping[str, Any], pvc: Mapping[str, Any], driver: str) -> bool:
    """The PV is a CSI volume of ``driver`` bound to this very claim."""
    return c.csi_driver(pv) == driver and c.bound_to(pv, pvc)


def claim_in_use(pods: Sequence[Mapping[str, Any]], claim: str) -> bool:
    """Whether a pod that has not terminated uses ``claim`` (also as a generic ephemeral volume)."""
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in TERMINATED:
            continue
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            ref = vol.get("persistentVolumeClaim") or {}
            if ref.get("claimName") == claim:
                return True
            if vol.get("ephemeral") is not None and f"{name(pod)}-{vol.get('name')}" == claim:
                return True
    return False


def decide_expansion(
    pvc: JsonDict | None,
    pv: JsonDict | None,
    settings: ExpandSettings,
    recall: Recall,
    now: str,
) -> a.Plan:
    """The plan for one claim (see the module docstring).

    Args:
        pvc: the claim as we know it (None: deleted).
        pv: its PersistentVolume (None: not in the cache).
        settings: this resizer.
        recall: what we remember about the claim.
        now: the time for condition timestamps (RFC 3339).
    """
    if pvc is None:
        return a.done("PVC is deleted or does not exist")
    volume = c.volume_name(pvc)
    if not volume:
        return a.done("PV bound to PVC is not created yet")
    if pv is None:
        return a.retry(f'PV "{volume}" bound to pvc "{key_of(pvc)}" not found')
    before: list[a.Action] = []
    pv_size = c.size(c.pv_capacity(pv))
    complete = c.zero_if_none(c.size(c.capacity(pvc))) >= c.zero_if_none(pv_size)
    if settings.annotate_fs_resize and complete and c.has_annotation(pv, n.PRE_RESIZE_CAPACITY):
        before.append(
            a.Patch(
                PERSISTENT_VOLUMES,
                name(pv),
                {"metadata": {"annotations": {n.PRE_RESIZE_CAPACITY: None}}},
                on_error=lambda exc: a.retry(
                    f'failed removing annotation {n.PRE_RESIZE_CAPACITY} from pv "{name(pv)}": '
                    f"{exc}"
                ),
            )
        )
    if not needs_resize(pvc):
        return a.done("No need to resize PVC", *before)
    flow = _Flow(pvc, pv, settings, recall, now)
    return (*before, *(flow.recover() if settings.recover else flow.legacy()))


class _Flow:
    """One decision's inputs, and the plan steps built from them (every method is pure)."""

    def __init__(
        self, pvc: JsonDict, pv: JsonDict, s: ExpandSettings, recall: Recall, now: str
    ) -> None:
        self.pvc, self.pv, self.s, self.recall, self.now = pvc, pv, s, recall, now
        self.key = key_of(pvc)
        self.old_capacity = c.capacity(pvc) or "0"

    # -- choosing the size ---------------------------------------------------------------------

    def recover(self) -> a.Plan:
        pvc, pv = self.pvc, self.pv
        if not ours(pv, pvc, self.s.driver):
            return a.done("No need to resize: not our volume, or not bound to this claim")
        spec = c.request(pvc) or "0"
        spec_size = c.zero_if_none(c.size(spec))
        pv_size = c.zero_if_none(c.size(c.pv_capacity(pv)))
        alloc = c.allocated(pvc)
        state = c.resize_status(pvc)
        new = spec
        if pv_size < spec_size:
            if state == n.NODE_RESIZE_INFEASIBLE:
                new = alloc or spec
            elif state in (n.NODE_RESIZE_PENDING, n.NODE_RESIZE_IN_PROGRESS):
                new = alloc or spec
                if pv_size >= c.zero_if_none(c.size(new)):
                    return a.done("the node expansion started before must finish first")
            elif state == n.CONTROLLER_RESIZE_IN_PROGRESS:
                new = spec if self.recall.final_error else (alloc or spec)
        elif state in (n.NODE_RESIZE_PENDING, n.NODE_RESIZE_IN_PROGRESS):
            return a.done("the volume is expanded; the node expansion is pending")
        elif state == n.NODE_RESIZE_INFEASIBLE:
            new = alloc if (self.s.controller_expansion and alloc) else spec
        elif state in (n.CONTROLLER_RESIZE_IN_PROGRESS, n.CONTROLLER_RESIZE_INFEASIBLE):
            new = alloc or spec
        elif state == "" and alloc:
            new = alloc
        elif c.fs_resize_pending(pvc):
            return a.done("no resize status (API server without recovery?); node step pending")
        update_status = True
        alloc_size = c.size(alloc)
        if alloc_size is not None and alloc_size == c.size(new):
            if self.recall.expand_slow > 0:
                return (
                    a.RetryAfter(
                        self.recall.expand_slow,
                        f"skipping volume expansion for pvc {self.key}, because expansion "
                        "previously failed with infeasible error",
                    ),
                )
            update_status = False
        if self.recall.expand_unimplemented == quantity_to_bytes(new):
            return a.done(
                "the driver answered Unimplemented to ControllerExpandVolume for this size; "
                "not asking again until the request changes"
            )
        return self._mark(new, update_status)

    def legacy(self) -> a.Plan:
        pvc, pv = self.pvc, self.pv
        if not ours(pv, pvc, self.s.driver):
            return a.done("No need to resize: not our volume, or not bound to this claim")
        spec = c.request(pvc) or "0"
        pv_size = c.zero_if_none(c.size(c.pv_capacity(pv)))
        if pv_size >= c.zero_if_none(c.size(spec)) and c.fs_resize_pending(pvc):
            return a.done("No need to resize PV: the node expansion is pending")
        return self._mark(spec, True, legacy=True)

    # -- steps ---------------------------------------------------------------------------------

    def _mark(self, new: str, update_status: bool, *, legacy: bool = False) -> a.Plan:
        pvc = self.pvc
        conds = c.merge_resize_conditions(
            c.conditions(pvc), [c.condition(n.RESIZING, self.now)], keep_old=not update_status
        )
        status: JsonDict = {"conditions": conds}
        body: JsonDict = {"metadata": {"resourceVersion": resource_version(pvc)}, "status": status}
        if not legacy:
            status["allocatedResources"] = {n.STORAGE: new}
            if update_status:
                status["allocatedResourceStatuses"] = {n.STORAGE: n.CONTROLLER_RESIZE_IN_PROGRESS}
            if c.has_annotation(pvc, n.NODE_EXPANSION_NOT_REQUIRED):
                body["metadata"]["annotations"] = {n.NODE_EXPANSION_NOT_REQUIRED: None}
        return (
            a.Patch(
                PVC,
                name(pvc),
                body,
                namespace(pvc),
                subresource="status",
                then=lambda updated: self._guard(updated, new, legacy),
            ),
        )

    def _guard(self, pvc: JsonDict, new: str, legacy: bool) -> a.Plan:
        if not (self.s.handle_in_use and self.recall.in_use_error):
            return self._call(pvc, new, legacy)

        def checked(pods: list[JsonDict]) -> a.Plan:
            if claim_in_use(pods, name(pvc)):
                msg = (
                    f"Unable to expand {self.key} because CSI driver {self.s.driver} only "
                    "supports offline expansion and volume is currently in-use"
                )
                return (a.Emit(warning(n.VOLUME_RESIZE_FAILED, msg), pvc, PVC), a.Retry(msg))
            return self._call(pvc, new, legacy)

        return (a.List(PODS, namespace(pvc), then=checked),)

    def _call(self, pvc: JsonDict, new: str, legacy: bool) -> a.Plan:
        pv = self.pv
        resizing = a.Emit(
            normal(n.VOLUME_RESIZING, f"External resizer is resizing volume {name(pv)}"), pvc, PVC
        )
        if not self.s.controller_expansion:
            return (resizing, *self._expanded(pvc, new, new, True, legacy))
        want = quantity_to_bytes(new)

        def send(secrets: Mapping[str, str]) -> a.Plan:
            try:
                cap = volume_capability(pv, self.s.single_node_multi_writer)
            except RequestError as err:
                return self._failed(
                    pvc,
                    not_grpc(f"failed to get capabilities of volume {name(pv)} with {err}"),
                    legacy,
                )
            return (
                a.Call(
                    "controller",
                    "ControllerExpandVolume",
                    expand_request(pv, want, cap, secrets),
                    then=lambda reply: self._replied(pvc, new, want, reply, legacy),
                    on_error=lambda err: self._failed(pvc, classify(err), legacy),
                ),
            )

        return (
            resizing,
            *with_secrets(
                expand_secret_ref(pv), send, lambda err: self._failed(pvc, not_grpc(err), legacy)
            ),
        )

    def _replied(self, pvc: JsonDict, new: str, want: int, reply: Any, legacy: bool) -> a.Plan:
        got = int(reply.capacity_bytes)
        if got <= 0 or got < want:
            return self._failed(
                pvc,
                not_grpc(
                    f"the driver reported a capacity of {got} bytes, less than the {want} bytes "
                    "requested; the PV is left unchanged"
                ),
                legacy,
            )
        return self._expanded(
            pvc, new, format_binary_si(got), bool(reply.node_expansion_required), legacy
        )

    def _expanded(
        self, pvc: JsonDict, new: str, capacity: str, fs_required: bool, legacy: bool
    ) -> a.Plan:
        pv = self.pv
        body: JsonDict = {"spec": {"capacity": {n.STORAGE: capacity}}}
        if (
            self.s.annotate_fs_resize
            and fs_required
            and not c.has_annotation(pv, n.PRE_RESIZE_CAPACITY)
        ):
            body["metadata"] = {"annotations": {n.PRE_RESIZE_CAPACITY: self.old_capacity}}

        def pv_failed(exc: Exception) -> a.Plan:
            msg = (
                f'error updating pv "{name(pv)}" by resizer: updating capacity of PV '
                f'"{name(pv)}" to {capacity} failed: {exc}'
            )
            return (a.Emit(warning(n.VOLUME_RESIZE_FAILED, msg), pvc, PVC), a.Retry(msg))

        return (
            a.Patch(
                PERSISTENT_VOLUMES,
                name(pv),
                body,
                then=lambda _: self._finish(pvc, capacity, fs_required, legacy),
                on_error=pv_failed,
            ),
        )

    def _finish(self, pvc: JsonDict, capacity: str, fs_required: bool, legacy: bool) -> a.Plan:
        old = c.conditions(pvc)
        meta: JsonDict = {"resourceVersion": resource_version(pvc)}
        status: JsonDict
        if fs_required:
            pending = c.condition(n.FS_RESIZE_PENDING, self.now, n.FS_RESIZE_PENDING_MESSAGE)
            status = {"conditions": c.merge_resize_conditions(old, [pending], keep_old=not legacy)}
            if not legacy:
                status["allocatedResourceStatuses"] = {n.STORAGE: n.NODE_RESIZE_PENDING}
                if c.has_annotation(pvc, n.NODE_EXPANSION_NOT_REQUIRED):
                    meta["annotations"] = {n.NODE_EXPANSION_NOT_REQUIRED: None}
            event = normal(n.FS_RESIZE_REQUIRED, "Require file system resize of volume on node")
        else:
            status = {
                "capacity": {n.STORAGE: capacity},
                "conditions": c.merge_resize_conditions(old, [], keep_old=False),
            }
            if not legacy:
                states = dict(status_of(pvc).get("allocatedResourceStatuses") or {})
                states.pop(n.STORAGE, None)
                status["allocatedResourceStatuses"] = {n.STORAGE: None} if states else None
                meta["annotations"] = {n.NODE_EXPANSION_NOT_REQUIRED: "true"}
            event = normal(n.VOLUME_RESIZE_SUCCESS, "Resize volume succeeded")
        return (
            a.Patch(
                PVC,
                name(pvc),
                {"metadata": meta, "status": status},
                namespace(pvc),
                subresource="status",
                then=lambda updated: (a.Emit(event, updated, PVC), a.Done("resized")),
                on_error=lambda exc: self._write_failed(pvc, exc),
            ),
        )

    def _write_failed(self, pvc: JsonDict, exc: Any) -> a.Plan:
        if getattr(exc, "conflict", False):
            return (a.Redecide(str(exc)),)
        msg = f"can't patch status of PVC {self.key} with {exc}"
        return (a.Emit(warning(n.VOLUME_RESIZE_FAILED, msg), pvc, PVC), a.Retry(msg))

    def _failed(self, pvc: JsonDict, err: DriverError, legacy: bool) -> a.Plan:
        msg = f'resize volume "{name(self.pv)}" by resizer "{self.s.driver}" failed: {err.text}'
        event = a.Emit(warning(n.VOLUME_RESIZE_FAILED, msg), pvc, PVC)
        outcome: a.Action = a.Done(msg) if err.unimplemented else a.Retry(msg)
        if legacy or not err.final:
            return (event, outcome)
        cond = c.condition(
            n.CONTROLLER_RESIZE_ERROR, self.now, f"failed to expand pvc with {err.text}"
        )
        status: JsonDict = {
            "conditions": c.merge_resize_conditions(c.conditions(pvc), [cond], keep_old=True)
        }
        if err.infeasible:
            status["allocatedResourceStatuses"] = {n.STORAGE: n.CONTROLLER_RESIZE_INFEASIBLE}

        def unrecorded(exc: Exception) -> a.Plan:
            text = (
                f"resizing failed in controller with {err.text} but failed to update PVC "
                f"{self.key} with: {exc}"
            )
            return (a.Emit(warning(n.VOLUME_RESIZE_FAILED, text), pvc, PVC), a.Retry(text))

        return (
            a.Patch(
                PVC,
                name(pvc),
                {"status": status},
                namespace(pvc),
                subresource="status",
                then=lambda updated: (a.Emit(event.event, updated, PVC), outcome),
                on_error=unrecorded,
            ),
        )
