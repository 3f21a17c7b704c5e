"""Cloning protection: the clone source's finalizer, added before a clone, released after."""

from __future__ import annotations

import copy
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import sources as src
from tests.unit.provisioner.objs import pvc

CLONE = "provisioner.storage.kubernetes.io/cloning-protection"


def source(*, deleting: bool = True, finalizers: list[str] | None = None) -> dict[str, Any]:
    obj = pvc(name="src")
    obj["metadata"]["finalizers"] = [CLONE] if finalizers is None else finalizers
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return obj


def clone(phase: str | None) -> dict[str, Any]:
    obj = pvc(name="copy", dataSource={"kind": "PersistentVolumeClaim", "name": "src"})
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def test_with_and_without_clone_protection_leave_the_input_alone() -> None:
    plain = source(finalizers=["a"])
    before = copy.deepcopy(plain)
    added = src.with_clone_protection(plain)
    assert added is not None and added["metadata"]["finalizers"] == ["a", CLONE]
    assert src.with_clone_protection(added) is None
    removed = src.without_clone_protection(added)
    assert removed is not None and removed["metadata"]["finalizers"] == ["a"]
    assert src.without_clone_protection(plain) is None
    assert plain == before


def test_release_waits_for_pending_clones() -> None:
    for phase in (None, "", "Pending"):
        (outcome,) = src.release_clone_source(source(), [clone(phase)])
        assert isinstance(outcome, src.CloneInUse) and isinstance(outcome, a.Retry)
    (replace,) = src.release_clone_source(source(finalizers=["a", CLONE]), [clone("Bound")])
    assert isinstance(replace, a.Replace) and replace.resource == PERSISTENT_VOLUME_CLAIMS
    assert replace.body["metadata"]["finalizers"] == ["a"]
    assert replace.then is not None and replace.then({}) == (
        a.Done("removed the cloning protection finalizer"),
    )


def test_release_has_nothing_to_do() -> None:
    assert src.release_clone_source(None, []) == (a.Done(),)
    assert src.release_clone_source(source(deleting=False), []) == (a.Done(),)
    assert src.release_clone_source(source(finalizers=["a"]), []) == (a.Done(),)
