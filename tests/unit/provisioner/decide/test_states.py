"""Error classification, failure follow-up and events."""

from __future__ import annotations

import grpc
import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import Event
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import events
from csi_sidecars.provisioner.decide.states import (
    Ignored,
    IgnoredError,
    ProvisionError,
    ProvisioningState,
    classify_create_error,
    delete_volume_succeeded,
    handle_failure,
    without_selected_node,
)
from tests.unit.provisioner.objs import pvc

S = grpc.StatusCode
BG, FIN, RES = (
    ProvisioningState.IN_BACKGROUND,
    ProvisioningState.FINISHED,
    ProvisioningState.RESCHEDULE,
)


@pytest.mark.parametrize(
    ("code", "topology", "node", "state"),
    [
        (None, True, "n1", BG),
        (S.CANCELLED, False, "", BG),
        (S.DEADLINE_EXCEEDED, False, "", BG),
        (S.UNAVAILABLE, False, "", BG),
        (S.ABORTED, False, "", BG),
        (S.RESOURCE_EXHAUSTED, True, "n1", RES),
        (S.RESOURCE_EXHAUSTED, False, "n1", FIN),
        (S.RESOURCE_EXHAUSTED, True, "", FIN),
        (S.INVALID_ARGUMENT, True, "n1", FIN),
        (S.INTERNAL, False, "", FIN),
        (S.NOT_FOUND, False, "", FIN),
        (S.ALREADY_EXISTS, False, "", FIN),
        (S.UNKNOWN, False, "", FIN),
        (S.FAILED_PRECONDITION, False, "", FIN),
        (S.UNIMPLEMENTED, False, "", FIN),
    ],
)
def test_classify_create_error(
    code: grpc.StatusCode | None, topology: bool, node: str, state: ProvisioningState
) -> None:
    assert classify_create_error(code, supports_topology=topology, selected_node=node) == state


SEL = {"volume.kubernetes.io/storage-provisioner": "d", "volume.kubernetes.io/selected-node": "n1"}


def test_ignored_error_stops_silently() -> None:
    h = handle_failure(IgnoredError("not mine"), pvc())
    assert h.stop and h.event is None and h.state == FIN
    assert h.actions == ()


def test_external_populator_gets_gos_event() -> None:
    claim = pvc()
    h = handle_failure(IgnoredError("data source", Ignored.EXTERNAL_POPULATOR), claim)
    assert h.stop and h.state == FIN
    assert h.event == events.external_populator()
    assert h.actions == (a.Emit(events.external_populator(), claim, PERSISTENT_VOLUME_CLAIMS),)


def test_invalid_argument_is_slow_retry_with_infeasible_event() -> None:
    msg = "rpc error: code = InvalidArgument desc = bad size"
    h = handle_failure(ProvisionError(msg, FIN, S.INVALID_ARGUMENT), pvc())
    assert h.slow_retry and not h.stop and h.state == FIN
    assert h.event == Event(
        "Warning",
        "ProvisioningFailed",
        "Volume provisioning failed with infeasible error. Retries will be delayed. " + msg,
    )


def test_reschedule_with_selected_node_removes_it() -> None:
    h = handle_failure(ProvisionError("full", RES, S.RESOURCE_EXHAUSTED), pvc(annotations=SEL))
    assert h.remove_selected_node and h.stop and h.state == FIN
    assert h.event == Event("Warning", "ProvisioningFailed", "full")
    emit, replace = h.actions
    assert isinstance(emit, a.Emit) and emit.event == h.event
    assert isinstance(replace, a.Replace)
    assert "volume.kubernetes.io/selected-node" not in replace.body["metadata"]["annotations"]


def test_reschedule_without_selected_node_is_finished() -> None:
    h = handle_failure(ProvisionError("gone", RES), pvc())
    assert not h.remove_selected_node and not h.stop and h.state == FIN


@pytest.mark.parametrize(
    ("state", "in_progress"), [(BG, True), (FIN, False), (ProvisioningState.NO_CHANGE, False)]
)
def test_other_failures(state: ProvisioningState, in_progress: bool) -> None:
    h = handle_failure(ProvisionError("boom", state), pvc())
    assert h.event == Event("Warning", "ProvisioningFailed", "boom")
    assert h.in_progress is in_progress and h.state == state and not h.stop


def test_without_selected_node_keeps_alpha_key_and_input() -> None:
    claim = pvc(annotations={**SEL, "volume.alpha.kubernetes.io/selected-node": "n1"})
    out = without_selected_node(claim)
    assert out is not None
    assert "volume.kubernetes.io/selected-node" not in out["metadata"]["annotations"]
    assert "volume.alpha.kubernetes.io/selected-node" in out["metadata"]["annotations"]
    assert "volume.kubernetes.io/selected-node" in claim["metadata"]["annotations"]
    assert without_selected_node(out) is None  # nothing left to remove: no Update


@pytest.mark.parametrize(
    ("code", "ok"),
    [(S.OK, True), (S.NOT_FOUND, True), (S.INTERNAL, False), (None, False),
     (S.DEADLINE_EXCEEDED, False)],
)  # fmt: skip
def test_delete_volume_succeeded(code: grpc.StatusCode | None, ok: bool) -> None:
    assert delete_volume_succeeded(code) is ok


def test_event_texts() -> None:
    assert events.provisioning("ns", "data") == Event(
        "Normal",
        "Provisioning",
        'External provisioner is provisioning volume for claim "ns/data"',
    )
    assert events.external_populator() == Event(
        "Normal", "Provisioning", "Assuming an external populator will provision the volume"
    )
    assert events.provisioning_succeeded("pvc-1") == Event(
        "Normal", "ProvisioningSucceeded", "Successfully provisioned volume pvc-1"
    )
    assert events.volume_failed_delete("x") == Event("Warning", "VolumeFailedDelete", "x")
    assert events.external_provisioning("hostpath.csi.k8s.io") == Event(
        "Normal",
        "ExternalProvisioning",
        "Waiting for a volume to be created either by the external provisioner "
        "'hostpath.csi.k8s.io' or manually by the system administrator. If volume creation is "
        "delayed, please verify that the provisioner is running and correctly registered.",
    )
