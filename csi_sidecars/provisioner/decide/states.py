"""Provisioning states and error classification (sig-storage-lib ``ProvisioningState`` semantics).

A failed provisioning attempt ends in one of four states, and the state alone decides what the
controller does next:

* ``Finished``: no CreateVolume can be running; if the PVC disappears, forget it.
* ``InBackground``: a CreateVolume may still be running on the driver (timeout, Unavailable,
  Aborted, non-gRPC failure); keep calling CreateVolume with the identical request even after the
  PVC is deleted, until a final answer arrives.
* ``NoChange``: a transient lookup failed before any CSI call; keep whatever the previous state was.
* ``Reschedule``: the selected node cannot host the volume; drop the PVC's
  ``volume.kubernetes.io/selected-node`` so the scheduler picks again.

:class:`ProvisionError` carries a message (Go's error text, which becomes the
``ProvisioningFailed`` event) and the state. :func:`handle_failure` turns an error into what the
executor must do: the actions (event, the PVC Update that drops the selected node), slow retry,
stop.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.kube.objects import Event, JsonDict, annotations_of
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import events, strings
from csi_sidecars.provisioner.decide.claims import update_claim


class ProvisioningState(enum.Enum):
    """The outcome class of one provisioning attempt (values are sig-lib's strings)."""

    FINISHED = "Finished"
    IN_BACKGROUND = "Background"
    NO_CHANGE = "NoChange"
    RESCHEDULE = "Reschedule"


class ProvisionError(Exception):
    """A provisioning attempt failed; ``str(err)`` is the Go error text used in events.

    Attributes:
        state: what the failure means for in-flight tracking and retries.
        code: the gRPC status code when the error came from the driver, else None.
    """

    def __init__(
        self,
        message: str,
        state: ProvisioningState = ProvisioningState.FINISHED,
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        self.state = state
        self.code = code


class Ignored(enum.Enum):
    """Why a claim is not ours to provision, when the reason asks for an event."""

    OTHER = "other"
    EXTERNAL_POPULATOR = "external populator"  # a data source of another kind


class IgnoredError(ProvisionError):
    """The PVC is not ours to provision (or delete); stop (no ProvisioningFailed event).

    Attributes:
        reason: the text for the log.
        why: the typed reason; :data:`Ignored.EXTERNAL_POPULATOR` gets Go's
            ``Provisioning`` event saying an external populator will provision the volume.
    """

    def __init__(self, reason: str, why: Ignored = Ignored.OTHER) -> None:
        super().__init__(f"ignored because {reason}", ProvisioningState.FINISHED)
        self.reason = reason
        self.why = why


_IN_BACKGROUND_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
    }
)


def classify_create_error(
    code: grpc.StatusCode | None, *, supports_topology: bool, selected_node: str
) -> ProvisioningState:
    """The state of a failed CreateVolume call (Go ``checkError``).

    Args:
        code: the gRPC status code, or None when the failure was not a gRPC status (the call may
            or may not have reached the driver).
        supports_topology: driver has VOLUME_ACCESSIBILITY_CONSTRAINTS and the Topology gate is on.
        selected_node: the PVC's selected node ("" for immediate binding).

    Returns:
        ``InBackground`` for non-gRPC errors and Canceled/DeadlineExceeded/Unavailable/Aborted;
        ``Reschedule`` for ResourceExhausted when topology is supported and a node is selected;
        ``Finished`` for everything else (including ResourceExhausted without a node).
    """
    if code is None or code in _IN_BACKGROUND_CODES:
        return ProvisioningState.IN_BACKGROUND
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if supports_topology and selected_node:
            return ProvisioningState.RESCHEDULE
        return ProvisioningState.FINISHED
    return ProvisioningState.FINISHED


def is_infeasible(code: grpc.StatusCode | None) -> bool:
    """Whether a driver error means "this request can never work" (InvalidArgument).

    Such PVCs are retried only after ``--retry-interval-max`` (or sooner when the StorageClass
    UID changes), with the infeasible variant of the ``ProvisioningFailed`` event.
    """
    return bool(code == grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True)
class FailureHandling:
    """What to do after a failed provisioning attempt.

    Attributes:
        state: the state after handling (``Reschedule`` never survives: it becomes Finished).
        event: the event to emit on the PVC, or None (most ignored errors emit nothing).
        remove_selected_node: update the PVC to drop ``volume.kubernetes.io/selected-node``; if
            that update fails, retry as ``Finished``.
        actions: the complete actions: ``event`` on the claim, then (with
            ``remove_selected_node``) the PVC Update.
        slow_retry: delay the next attempt by ``--retry-interval-max`` (infeasible error).
        stop: do not requeue (ignored error, or rescheduled to another node).
        in_progress: a CreateVolume may still be running: keep working on the PVC even if it
            is deleted (``InBackground``).
    """

    state: ProvisioningState
    event: Event | None
    remove_selected_node: bool = False
    slow_retry: bool = False
    stop: bool = False
    in_progress: bool = False
    actions: Plan = ()


def handle_failure(err: ProvisionError, pvc: Mapping[str, Any]) -> FailureHandling:
    """Decide the follow-up of a failed attempt, as sig-lib's ``provisionClaimOperation`` does.

    Args:
        err: the failure, with its state and gRPC code.
        pvc: the claim being provisioned (only its annotations are read).
    """
    if isinstance(err, IgnoredError):
        populator = err.why == Ignored.EXTERNAL_POPULATOR
        event = events.external_populator() if populator else None
        return _with_actions(
            FailureHandling(state=ProvisioningState.FINISHED, event=event, stop=True), pvc
        )
    if is_infeasible(err.code):
        return _with_actions(
            FailureHandling(
                state=ProvisioningState.FINISHED,
                event=events.provisioning_failed_infeasible(str(err)),
                slow_retry=True,
            ),
            pvc,
        )
    event = events.provisioning_failed(str(err))
    if err.state == ProvisioningState.RESCHEDULE:
        if strings.ANN_SELECTED_NODE in annotations_of(pvc):
            return _with_actions(
                FailureHandling(
                    state=ProvisioningState.FINISHED,
                    event=event,
                    remove_selected_node=True,
                    stop=True,
                ),
                pvc,
            )
        return _with_actions(FailureHandling(state=ProvisioningState.FINISHED, event=event), pvc)
    return _with_actions(
        FailureHandling(
            state=err.state,
            event=event,
            in_progress=err.state == ProvisioningState.IN_BACKGROUND,
        ),
        pvc,
    )


def _with_actions(handling: FailureHandling, pvc: Mapping[str, Any]) -> FailureHandling:
    actions: list[a.Action] = []
    if handling.event is not None:
        actions.append(a.Emit(handling.event, dict(pvc), PERSISTENT_VOLUME_CLAIMS))
    if handling.remove_selected_node:
        actions.extend(update_claim(pvc, without_selected_node))
    return dataclasses.replace(handling, actions=tuple(actions))


def without_selected_node(pvc: Mapping[str, Any]) -> JsonDict | None:
    """A copy of ``pvc`` without ``volume.kubernetes.io/selected-node`` (for a PVC Update), or
    None when it has none.

    Only the GA key is removed, as in Go; the alpha key is left alone.
    """
    meta = dict(pvc.get("metadata") or {})
    ann = dict(meta.get("annotations") or {})
    if strings.ANN_SELECTED_NODE not in ann:
        return None
    ann.pop(strings.ANN_SELECTED_NODE)
    meta["annotations"] = ann
    return {**pvc, "metadata": meta}


def delete_volume_succeeded(code: grpc.StatusCode | None) -> bool:
    """Whether a DeleteVolume outcome counts as success.

    ``OK`` and ``NotFound`` do: the CSI spec requires OK for a volume that is already gone, and
    some drivers answer NotFound anyway (Go treats that as a failure and retries forever; we
    do not). ``None`` means a non-gRPC failure.
    """
    return code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)
