"""The modification decision: a new ``spec.volumeAttributesClassName`` via ControllerModifyVolume.

:func:`decide_modification` is pure and follows external-resizer's modify controller: a new
class is recorded as ``modifyVolumeStatus`` ``InProgress`` (target, condition ``ModifyingVolume``)
before the call; success moves the PV's and the claim's current class to the target and clears
the status; a missing class gives ``Pending``; ``InvalidArgument`` gives ``Infeasible`` (retried
slowly, and the user may roll back to the current class or to none); every other error keeps
``InProgress`` with a ``ModifyVolumeError`` condition.

Serialised (external-resizer #514): while the outcome of the current target is unknown (its
last answer was not final, or it is ``InProgress`` and this process has not had an answer for
it yet, e.g. after a restart or a leader change), a different class in the spec waits: the
current target is retried until it succeeds or fails finally. ``Unimplemented`` is terminal for
those parameters (#95).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, name, namespace, normal, resource_version, warning
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES
from csi_sidecars.resizer import claims as c
from csi_sidecars.resizer import names as n
from csi_sidecars.resizer.errors import DriverError, classify
from csi_sidecars.resizer.expand import key_of
from csi_sidecars.resizer.memory import Recall
from csi_sidecars.resizer.request import modify_parameters, modify_request, modify_secret_ref
from csi_sidecars.resizer.secrets import with_secrets

PVC = PERSISTENT_VOLUME_CLAIMS
ClassLookup = Callable[[str], JsonDict | None]


@dataclass(frozen=True, slots=True)
class ModifySettings:
    """What the modification decision needs to know about this resizer."""

    driver: str
    extra_metadata: bool = False


def infeasible_target(pvc: Mapping[str, Any]) -> bool:
    """``Infeasible`` for the class the spec still asks for (the slow-retry case)."""
    st = c.modify_status(pvc)
    spec = c.spec_vac(pvc)
    return (
        st is not None
        and st.get("status") == n.MODIFY_INFEASIBLE
        and bool(spec)
        and st.get("targetVolumeAttributesClassName", "") == spec
    )


def uncertain(recall: Recall) -> bool:
    """For an ``InProgress`` claim: may the driver still be working on the current target?"""
    if not recall.modify_answered:
        return True
    return recall.modify_error is not None and not recall.modify_error.final


def decide_modification(
    pvc: JsonDict | None,
    pv: JsonDict | None,
    classes: ClassLookup,
    settings: ModifySettings,
    recall: Recall,
    now: str,
) -> a.Plan:
    """The plan for one claim (see the module docstring).

    Args:
        pvc: the claim as we know it (None: deleted).
        pv: its PersistentVolume (None: not in the cache).
        classes: VolumeAttributesClass by name, from the cache.
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
        return a.retry(f'Get PV "{volume}" of pvc "{key_of(pvc)}" in PVInformer cache failed')
    if c.csi_driver(pv) != settings.driver:
        return a.done("PV provisioned by a different driver")
    if not c.is_bound(pvc):
        return a.done("No need to modify PV: claim not bound")
    if recall.modify_slow > 0:
        return (
            a.RetryAfter(
                recall.modify_slow,
                f"skipping volume modification for pvc {key_of(pvc)}, because modification "
                "previously failed with infeasible error",
            ),
        )
    st = c.modify_status(pvc)
    spec, current = c.spec_vac(pvc), c.current_vac(pvc)
    if st is None and spec == current:
        return a.done("volume already has its class")
    in_progress = st is not None and st.get("status") == n.MODIFY_IN_PROGRESS
    flow = _Modify(pvc, pv, classes, settings, recall, now)
    if not spec and not in_progress:
        return flow.rolled_back()
    if (in_progress and uncertain(recall)) or not spec:
        target = str((st or {}).get("targetVolumeAttributesClassName") or "")
        vac = classes(target)
        if vac is None:
            return flow.missing(target)
        return flow.call(pvc, vac, target)
    return flow.start(spec)


class _Modify:
    def __init__(
        self,
        pvc: JsonDict,
        pv: JsonDict,
        classes: ClassLookup,
        s: ModifySettings,
        recall: Recall,
        now: str,
    ) -> None:
        self.pvc, self.pv, self.classes, self.s, self.recall, self.now = (
            pvc,
            pv,
            classes,
            s,
            recall,
            now,
        )

    def missing(self, vac_name: str) -> a.Plan:
        event = warning(n.VOLUME_MODIFY_FAILED, f'VAC "{vac_name}" does not exist.')
        return (
            a.Emit(event, self.pvc, PVC),
            a.Retry(f"get VAC with vac name {vac_name} in VACInformer cache failed: not found"),
        )

    def rolled_back(self) -> a.Plan:
        pvc = self.pvc
        if not c.has_condition(pvc, n.MODIFYING_VOLUME):
            return a.done("rolled back; nothing to clear")
        return (
            a.Emit(normal(n.VOLUME_MODIFY_CANCELLED, "Cancelled modify."), pvc, PVC),
            a.Patch(
                PVC,
                name(pvc),
                {"status": {"conditions": c.without(c.conditions(pvc), n.MODIFYING_VOLUME)}},
                namespace(pvc),
                subresource="status",
            ),
        )

    def start(self, spec: str) -> a.Plan:
        pvc = self.pvc
        vac = self.classes(spec)
        if vac is None:
            pending = {
                "metadata": {"resourceVersion": resource_version(pvc)},
                "status": {"modifyVolumeStatus": {"status": n.MODIFY_PENDING}},
            }
            return (
                *self.missing(spec)[:1],
                a.Patch(PVC, name(pvc), pending, namespace(pvc), subresource="status"),
                a.Done(f"VAC {spec} does not exist; Pending"),
            )
        modifying = {
            "type": n.MODIFYING_VOLUME,
            "status": "True",
            "lastProbeTime": self.now,
            "message": f'Modifying volume to "{spec}" is in progress.',
        }
        body = {
            "metadata": {"resourceVersion": resource_version(pvc)},
            "status": {
                "modifyVolumeStatus": {
                    "status": n.MODIFY_IN_PROGRESS,
                    "targetVolumeAttributesClassName": spec,
                },
                "conditions": c.merge_modify_conditions(c.conditions(pvc), [modifying]),
            },
        }
        text = f"external resizer is modifying volume {name(pvc)} with vac {name(vac)}"

        def marked(updated: JsonDict) -> a.Plan:
            return (
                a.Emit(normal(n.VOLUME_MODIFY, text), updated, PVC),
                *self.call(updated, vac, spec),
            )

        return (a.Patch(PVC, name(pvc), body, namespace(pvc), subresource="status", then=marked),)

    def call(self, pvc: JsonDict, vac: JsonDict, target: str) -> a.Plan:
        params = modify_parameters(vac, pvc, self.pv, self.s.extra_metadata)
        if self.recall.modify_unimplemented == tuple(sorted(params.items())):
            return a.done(
                "the driver answered Unimplemented to ControllerModifyVolume for these "
                "parameters; not asking again until the class changes"
            )

        def send(secrets: Mapping[str, str]) -> a.Plan:
            return (
                a.Call(
                    "controller",
                    "ControllerModifyVolume",
                    modify_request(self.pv, params, secrets),
                    then=lambda _: self.completed(pvc, vac, target),
                    on_error=lambda err: self.failed(pvc, vac, classify(err)),
                ),
            )

        def no_secret(message: str) -> a.Plan:
            return (
                a.Emit(warning(n.VOLUME_MODIFY_FAILED, message), pvc, PVC),
                a.Retry(message),
            )

        return with_secrets(modify_secret_ref(self.pv), send, no_secret)

    def completed(self, pvc: JsonDict, vac: JsonDict, target: str) -> a.Plan:
        pv = self.pv
        claim_body = {
            "status": {
                "modifyVolumeStatus": None,
                "currentVolumeAttributesClassName": target,
                "conditions": c.without(
                    c.conditions(pvc), n.MODIFY_VOLUME_ERROR, n.MODIFYING_VOLUME
                ),
            }
        }
        text = f"external resizer modified volume {name(pvc)} with vac {name(vac)} successfully"

        def pv_done(_: JsonDict) -> a.Plan:
            return (
                a.Patch(
                    PVC,
                    name(pvc),
                    claim_body,
                    namespace(pvc),
                    subresource="status",
                    then=lambda updated: (
                        a.Emit(normal(n.VOLUME_MODIFY_SUCCESS, text), updated, PVC),
                        a.Done("modified"),
                    ),
                ),
            )

        return (
            a.Patch(
                PERSISTENT_VOLUMES,
                name(pv),
                {"spec": {"volumeAttributesClassName": target}},
                then=pv_done,
            ),
        )

    def failed(self, pvc: JsonDict, vac: JsonDict, err: DriverError) -> a.Plan:
        if err.code is None:
            return a.retry(f"cannot get error status from modify volume err: {err.text}")
        target = str((c.modify_status(pvc) or {}).get("targetVolumeAttributesClassName") or "")
        state = n.MODIFY_IN_PROGRESS
        if err.final:
            message = f'Modifying volume to "{target}" failed. Waiting for retry.'
            text = err.text
            if err.code is grpc.StatusCode.INVALID_ARGUMENT:
                state = n.MODIFY_INFEASIBLE
        else:
            message = f'Modifying volume to "{target}" is still in progress.'
            text = f"{err.text}. Still modifying to VAC {name(vac)}"
        new = [
            {
                "type": n.MODIFYING_VOLUME,
                "status": "True",
                "lastProbeTime": self.now,
                "message": message,
            },
            {
                "type": n.MODIFY_VOLUME_ERROR,
                "status": "True",
                "lastProbeTime": self.now,
                "reason": err.code_name,
                "message": err.details,
            },
        ]
        body = {
            "metadata": {"resourceVersion": resource_version(pvc)},
            "status": {
                "modifyVolumeStatus": {"status": state},
                "conditions": c.merge_modify_conditions(c.conditions(pvc), new),
            },
        }
        outcome: a.Action = a.Done(text) if err.unimplemented else a.Retry(text)
        return (
            a.Patch(
                PVC,
                name(pvc),
                body,
                namespace(pvc),
                subresource="status",
                then=lambda updated: (
                    a.Emit(warning(n.VOLUME_MODIFY_FAILED, text), updated, PVC),
                    outcome,
                ),
            ),
        )
