"""Which PVCs the provisioner handles, and the PVC Update plan."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.provisioner.decide.claims import (
    ClaimAction,
    claim_class,
    selected_node,
    should_provision,
    storage_provisioner,
    update_claim,
)
from tests.unit.provisioner.objs import DRIVER, pvc, sc

GA = "volume.kubernetes.io/storage-provisioner"
BETA = "volume.beta.kubernetes.io/storage-provisioner"
SEL = "volume.kubernetes.io/selected-node"
WFFC = sc(volumeBindingMode="WaitForFirstConsumer")

CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any], ClaimAction]] = [
    ("GA annotation", pvc(), sc(), {}, ClaimAction.PROVISION),
    ("beta annotation", pvc(annotations={BETA: DRIVER}), sc(), {}, ClaimAction.PROVISION),
    ("GA wins over beta", pvc(annotations={GA: "other", BETA: DRIVER}), sc(), {}, ClaimAction.SKIP),
    ("other provisioner", pvc(annotations={GA: "other.csi"}), sc(), {}, ClaimAction.SKIP),
    ("no annotation", pvc(annotations={}), sc(), {}, ClaimAction.SKIP),
    (
        "migrated-to only (sig-lib still needs a known provisioner annotation)",
        pvc(annotations={"pv.kubernetes.io/migrated-to": DRIVER}),
        sc(),
        {},
        ClaimAction.SKIP,
    ),
    (
        "migrated in-tree name known as additional name",
        pvc(annotations={GA: "kubernetes.io/gce-pd", "pv.kubernetes.io/migrated-to": DRIVER}),
        sc(provisioner="kubernetes.io/gce-pd"),
        {"additional_names": ["kubernetes.io/gce-pd"]},
        ClaimAction.PROVISION,
    ),
    ("already bound", pvc(volumeName="pv-1"), sc(), {}, ClaimAction.SKIP),
    ("class missing", pvc(), None, {}, ClaimAction.WAIT),
    ("WFFC without node", pvc(), WFFC, {}, ClaimAction.SKIP),
    ("WFFC empty node", pvc(annotations={GA: DRIVER, SEL: ""}), WFFC, {}, ClaimAction.SKIP),
    (
        "WFFC alpha key alone does not count",
        pvc(annotations={GA: DRIVER, "volume.alpha.kubernetes.io/selected-node": "n1"}),
        WFFC,
        {},
        ClaimAction.SKIP,
    ),
    ("WFFC with node", pvc(annotations={GA: DRIVER, SEL: "n1"}), WFFC, {}, ClaimAction.PROVISION),
    ("PV exists", pvc(), sc(), {"pv_exists": True}, ClaimAction.SKIP),
    ("class of another provisioner", pvc(), sc(provisioner="x.csi"), {}, ClaimAction.SKIP),
    # Refused later by plan_provision, after the Provisioning event (as Go).
    ("selector", pvc(selector={"matchLabels": {"a": "b"}}), sc(), {}, ClaimAction.PROVISION),
]


@pytest.mark.parametrize(("pvc_obj", "sc_obj", "kw", "action"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_should_provision(
    pvc_obj: dict[str, Any], sc_obj: dict[str, Any] | None, kw: dict[str, Any], action: ClaimAction
) -> None:
    decision = should_provision(pvc_obj, sc_obj, driver=DRIVER, **kw)
    assert decision.action == action, decision.reason
    assert decision.reason


def test_selector_claim_gets_the_provisioning_event_first() -> None:
    decision = should_provision(pvc(selector={}), sc(), driver=DRIVER)
    assert decision.event is not None
    assert (decision.event.type, decision.event.reason) == ("Normal", "Provisioning")


def test_decision_carries_class_and_node() -> None:
    decision = should_provision(pvc(annotations={GA: DRIVER, SEL: "n1"}), WFFC, driver=DRIVER)
    assert (decision.storage_class, decision.selected_node) == ("fast", "n1")


def test_missing_class_message() -> None:
    decision = should_provision(pvc(), None, driver=DRIVER)
    assert decision.reason == 'storageclass.storage.k8s.io "fast" not found'


@pytest.mark.parametrize(
    ("ann", "spec_class", "expected"),
    [
        ({}, "fast", "fast"),
        ({"volume.beta.kubernetes.io/storage-class": "old"}, "fast", "old"),
        ({}, None, ""),
    ],
)
def test_claim_class(ann: dict[str, str], spec_class: str | None, expected: str) -> None:
    assert claim_class(pvc(annotations=ann, storage_class=spec_class)) == expected


@pytest.mark.parametrize(
    ("ann", "expected"),
    [
        ({SEL: "a"}, "a"),
        ({"volume.alpha.kubernetes.io/selected-node": "b"}, "b"),
        ({SEL: "", "volume.alpha.kubernetes.io/selected-node": "b"}, ""),
        ({}, ""),
    ],
)
def test_selected_node(ann: dict[str, str], expected: str) -> None:
    assert selected_node(pvc(annotations=ann)) == expected


def test_storage_provisioner() -> None:
    assert storage_provisioner(pvc(annotations={BETA: "b"})) == "b"
    assert storage_provisioner(pvc(annotations={GA: "a", BETA: "b"})) == "a"


def _labelled(claim: Any) -> dict[str, Any]:
    return {**claim, "metadata": {**claim["metadata"], "labels": {"x": "y"}}}


def test_update_claim_puts_the_change_and_rereads_after_a_conflict() -> None:
    claim = pvc()
    (replace,) = update_claim(claim, _labelled)
    assert isinstance(replace, a.Replace) and replace.namespace == "default"
    assert replace.body["metadata"]["labels"] == {"x": "y"}
    assert replace.body["kind"] == "PersistentVolumeClaim"
    assert replace.then is not None and replace.then({}) == (a.Done(),)
    assert replace.on_error is not None
    (read,) = replace.on_error(ApiError(409, "Conflict", "modified"))
    assert isinstance(read, a.Read) and (read.name, read.namespace) == ("data", "default")
    fresh = pvc()
    fresh["metadata"]["resourceVersion"] = "43"
    (again,) = read.then(fresh)
    assert isinstance(again, a.Replace) and again.body["metadata"]["resourceVersion"] == "43"
    assert read.then(None) == (a.Retry('persistentvolumeclaims "data" not found'),)
    assert replace.on_error(ApiError(500, "InternalError", "etcd")) == (a.Retry("etcd"),)


def test_update_claim_edges() -> None:
    assert update_claim(pvc(), lambda _: None) == (a.Done(),)
    (gone,) = update_claim(pvc(), _labelled, missing_ok=True)
    assert isinstance(gone, a.Replace) and gone.on_error is not None
    assert gone.on_error(ApiError(404, "NotFound", "gone")) == (a.Done("claim is gone"),)
    (last,) = update_claim(pvc(), _labelled, attempts=1)
    assert isinstance(last, a.Replace) and last.on_error is not None
    assert last.on_error(ApiError(409, "Conflict", "modified")) == (a.Retry("modified"),)


def test_provision_decision_carries_the_attempt_event() -> None:
    decision = should_provision(pvc(), sc(), driver=DRIVER)
    assert decision.action == ClaimAction.PROVISION
    assert decision.event is not None and decision.event.reason == "Provisioning"
    assert should_provision(pvc(), None, driver=DRIVER).event is None
