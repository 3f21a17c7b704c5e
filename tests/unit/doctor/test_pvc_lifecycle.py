"""The claim checker for classes and pre-created volumes, bound and lost claims, and claims
being deleted."""

from __future__ import annotations

import pytest

from csi_sidecars.doctor.pvc import check_pvc
from csi_sidecars.doctor.report import Severity
from tests.unit.doctor import objs
from tests.unit.doctor.objs import NS, Case, check_case, healthy_base, snapshot


def claim_with(**kw: object) -> dict[str, object]:
    return objs.pvc(**kw)  # type: ignore[arg-type]


CASES = [
    Case(
        "storage class missing",
        lambda: snapshot(**healthy_base(pvcs=[claim_with(sc="gold")])),
        "StorageClassNotFound",
        says=['"gold"', "does not exist", "fast"],
    ),
    Case(
        "no class and no default class",
        lambda: snapshot(**healthy_base(pvcs=[claim_with(sc=None)])),
        "NoDefaultStorageClass",
        says=["no default StorageClass", "is-default-class"],
        evidence=["no StorageClass is marked default"],
    ),
    Case(
        "no class but a default: kcm assigns it, provisioning goes on",
        lambda: snapshot(
            **healthy_base(
                storage_classes=[objs.storage_class(default=True)],
                pvcs=[claim_with(sc=None, age=5)],
            )
        ),
        "WaitingForProvisioner",
        Severity.WARNING,
        evidence=['default class "fast"'],
    ),
    Case(
        "empty class and no matching static volume",
        lambda: snapshot(
            **healthy_base(
                pvcs=[claim_with(sc="")],
                pvs=[
                    objs.pv("small", claim=None, phase="Available", sc="", size="1Mi"),
                ],
            )
        ),
        "NoMatchingVolume",
        says=["no class"],
        evidence=["small does not fit: too small"],
    ),
    Case(
        "named volume missing",
        lambda: snapshot(**healthy_base(pvcs=[claim_with(volumeName="pv-x")])),
        "VolumeNotFound",
        says=["pv-x"],
    ),
    Case(
        "named volume reserved for another claim",
        lambda: snapshot(
            **healthy_base(
                pvcs=[claim_with(volumeName="pv-x")],
                pvs=[objs.pv("pv-x", claim=(NS, "other"), phase="Available")],
            )
        ),
        "VolumeMismatch",
        says=["reserved for claim app/other"],
    ),
    Case(
        "bound and healthy",
        lambda: snapshot(
            **healthy_base(
                pvcs=[
                    {
                        **claim_with(phase="Bound", volumeName="pvc-1"),
                        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
                    }
                ],
                pvs=[objs.pv()],
            )
        ),
        "Bound",
        Severity.OK,
    ),
    Case(
        "bound to a volume that is gone",
        lambda: snapshot(
            **healthy_base(pvcs=[claim_with(phase="Bound", volumeName="pvc-1")], pvs=[])
        ),
        "VolumeMissing",
    ),
    Case(
        "lost",
        lambda: snapshot(**healthy_base(pvcs=[claim_with(phase="Lost", volumeName="pvc-1")])),
        "ClaimLost",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_claim_diagnosis(case: Case) -> None:
    check_case(check_pvc(case.build(), NS, "data"), case)


def test_terminating_claim_in_use_by_a_pod() -> None:
    claim = objs.deleting(
        claim_with(phase="Bound", volumeName="pvc-1"), finalizers=["kubernetes.io/pvc-protection"]
    )
    snap = snapshot(
        **healthy_base(
            pvcs=[claim], pvs=[objs.pv()], pods=[objs.pod("web", ["data"], node_name="node-1")]
        )
    )
    found = check_pvc(snap, NS, "data")
    assert (found.code, found.severity) == ("ClaimInUse", Severity.PROBLEM)
    assert "web" in found.summary


def test_terminating_claim_no_pod_kcm_silent() -> None:
    claim = objs.deleting(
        claim_with(phase="Bound"), ago=120, finalizers=["kubernetes.io/pvc-protection"]
    )
    found = check_pvc(snapshot(**healthy_base(pvcs=[claim])), NS, "data")
    assert found.code == "FinalizerNotRemoved"
    assert "kube-controller-manager" in found.summary


def test_terminating_claim_just_deleted_is_a_warning() -> None:
    claim = objs.deleting(
        claim_with(phase="Bound"), ago=2, finalizers=["kubernetes.io/pvc-protection"]
    )
    found = check_pvc(snapshot(**healthy_base(pvcs=[claim])), NS, "data")
    assert (found.code, found.severity) == ("Deleting", Severity.WARNING)


def test_terminating_claim_with_unknown_finalizer() -> None:
    claim = objs.deleting(claim_with(phase="Bound"), finalizers=["example.com/backup"])
    found = check_pvc(snapshot(**healthy_base(pvcs=[claim])), NS, "data")
    assert found.code == "UnknownFinalizer"
    assert "example.com/backup" in found.summary


def test_two_default_classes_are_pointed_out() -> None:
    snap = snapshot(
        **healthy_base(
            storage_classes=[
                objs.storage_class("old", default=True, age=9000),
                objs.storage_class("new", default=True, age=60),
            ],
            pvcs=[claim_with(sc=None, age=5)],
        )
    )
    found = check_pvc(snap, NS, "data")
    messages = [e.message for e in found.evidence]
    assert any('default class "new"' in m for m in messages), messages
    assert any(
        "more than one default class; the newest is used (also default: old)" in m for m in messages
    )
