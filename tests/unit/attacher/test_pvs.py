"""PV finalizer removal and the informer filters."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csi_sidecars.attacher import names
from csi_sidecars.attacher.pvs import (
    decide_pv,
    pv_to_sync_on_va_delete,
    should_enqueue_pv,
    should_enqueue_va_change,
)
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from tests.unit.attacher.sim import DRIVER, FINALIZER, config, make_pv, make_va

CFG = config()


def in_tree_pv(migrated_to: str | None, **kw: Any) -> dict[str, Any]:
    pv = make_pv(**kw)
    del pv["spec"]["csi"]
    pv["spec"]["gcePersistentDisk"] = {"pdName": "disk"}
    if migrated_to is not None:
        pv["metadata"]["annotations"] = {names.MIGRATED_TO_ANNOTATION: migrated_to}
    return pv


def test_finalizer_removed_when_deleting_and_unused():
    pv = make_pv(finalizers=["kubernetes.io/pv-protection", FINALIZER], deleting=True)
    vas = [make_va("other", pv="pv2"), make_va("inline", pv=None, inline={"csi": {}})]
    patch, done = decide_pv(pv, cfg=CFG, vas=vas)
    assert isinstance(patch, a.Patch) and isinstance(done, a.Done)
    assert (patch.resource, patch.name, patch.type, patch.missing_ok) == (
        PERSISTENT_VOLUMES,
        "pv1",
        "json",
        True,
    )
    # The default error policy applies: a stale copy is decided again, 404 is fine.
    assert patch.on_error is None
    out = apply_json_patch(pv, patch.body)
    assert out["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]


@pytest.mark.parametrize(
    ("pv", "vas", "reason"),
    [
        (make_pv(finalizers=[FINALIZER]), [], "no deletion timestamp"),
        (make_pv(deleting=True, finalizers=["x"]), [], "no finalizer"),
        (
            make_pv(deleting=True, finalizers=[FINALIZER]),
            [make_va("va9", attacher="another.driver")],
            "VolumeAttachment va9 uses the PersistentVolume",
        ),
        (in_tree_pv(DRIVER, finalizers=[FINALIZER]), [], "no deletion timestamp"),
    ],
)
def test_finalizer_kept(pv: dict[str, Any], vas: list[dict[str, Any]], reason: str):
    assert decide_pv(pv, cfg=CFG, vas=vas) == (a.Done(reason),)


@pytest.mark.parametrize("migrated_to", [None, "pd.csi.storage.gke.io"])
def test_migration_rollback_removes_finalizer(migrated_to: str | None):
    pv = in_tree_pv(migrated_to, finalizers=[FINALIZER])
    assert should_enqueue_pv(pv, CFG)
    assert isinstance(decide_pv(pv, cfg=CFG, vas=[])[0], a.Patch)


def test_trivial_handler_never_touches_pvs():
    trivial = config(trivial=True)
    pv = make_pv(deleting=True, finalizers=[FINALIZER])
    assert decide_pv(pv, cfg=trivial, vas=[]) == (
        a.Done("trivial handler does not manage PersistentVolumes"),
    )
    assert not should_enqueue_pv(pv, trivial)


@pytest.mark.parametrize(
    ("pv", "expected"),
    [
        (make_pv(deleting=True, finalizers=[FINALIZER]), True),
        (make_pv(deleting=True, finalizers=["x"]), False),
        (make_pv(finalizers=[FINALIZER]), False),
        (in_tree_pv(DRIVER, finalizers=[FINALIZER]), False),
        (in_tree_pv("other", finalizers=[FINALIZER]), True),
        (in_tree_pv("other"), False),
    ],
)
def test_should_enqueue_pv(pv: dict[str, Any], expected: bool):
    assert should_enqueue_pv(pv, CFG) is expected


def test_pv_to_sync_on_va_delete():
    assert pv_to_sync_on_va_delete(make_va(pv="pv7")) == "pv7"
    assert pv_to_sync_on_va_delete(make_va(pv=None, inline={})) is None


def _update(va: dict[str, Any], **status: Any) -> dict[str, Any]:
    new = copy.deepcopy(va)
    new["metadata"]["resourceVersion"] = "11"
    new["status"].update(status)
    return new


ERR = {"message": "boom", "time": "t"}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (make_va(), make_va(), True),  # resync: same resourceVersion
        (make_va(), _update(make_va(), attached=True), True),
        (make_va(), _update(make_va(), attachError=ERR), False),
        (make_va(status={"attachError": ERR}), _update(make_va(), attachError=None), False),
        (make_va(), _update(make_va(), detachError=ERR), False),
        (make_va(), _update(make_va(), attachError=ERR, attached=True), True),
        (
            make_va(),
            {**_update(make_va(), attachError=ERR), "spec": {"attacher": "x"}},
            True,
        ),
    ],
)
def test_should_enqueue_va_change(old: dict[str, Any], new: dict[str, Any], expected: bool):
    assert should_enqueue_va_change(old, new) is expected


def test_error_only_update_with_managed_fields_and_missing_status():
    old = make_va()
    del old["status"]
    new = _update(make_va(), attachError=ERR)
    new["metadata"]["managedFields"] = [{"manager": "csi-attacher"}]
    assert should_enqueue_va_change(old, new) is False
