"""Finalizer/annotation JSON patches with ``test`` guards, and status merge patches."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from csi_sidecars.attacher import patches
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.patch import apply_merge_patch, escape_pointer
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, VOLUME_ATTACHMENTS, ApiError
from tests.unit.attacher.sim import FINALIZER, make_pv, make_va

OTHER = "kubernetes.io/pv-protection"


def _with_finalizers(obj: dict[str, Any], value: list[str] | None) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    if value is None:
        out["metadata"].pop("finalizers", None)
    else:
        out["metadata"]["finalizers"] = list(value)
    return out


@pytest.mark.parametrize(
    ("cached", "expected_ops"),
    [
        (
            None,
            [
                {"op": "test", "path": "/metadata/finalizers", "value": None},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ],
        ),
        (
            [],
            [
                {"op": "test", "path": "/metadata/finalizers", "value": []},
                {"op": "replace", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ],
        ),
        (
            [OTHER],
            [
                {"op": "test", "path": "/metadata/finalizers", "value": [OTHER]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ],
        ),
    ],
)
def test_pv_add_finalizer_ops(cached: list[str] | None, expected_ops: list[dict[str, Any]]):
    pv = _with_finalizers(make_pv(), cached)
    patch = patches.pv_add_finalizer(pv, FINALIZER)
    assert patch is not None
    assert (patch.resource, patch.name, patch.type, patch.subresource, patch.missing_ok) == (
        PERSISTENT_VOLUMES,
        "pv1",
        "json",
        None,
        False,
    )
    assert patch.body == expected_ops
    applied = apply_json_patch(pv, patch.body)
    assert applied["metadata"]["finalizers"] == [*(cached or []), FINALIZER]


@pytest.mark.parametrize(
    ("cached", "actual"),
    [
        (None, ["other/finalizer"]),
        ([], ["other/finalizer"]),
        ([OTHER], []),
        ([OTHER], [OTHER, "other/finalizer"]),
    ],
)
def test_add_finalizer_from_stale_cache_fails_instead_of_clobbering(
    cached: list[str] | None, actual: list[str]
):
    patch = patches.pv_add_finalizer(_with_finalizers(make_pv(), cached), FINALIZER)
    assert patch is not None
    with pytest.raises(ApiError):
        apply_json_patch(_with_finalizers(make_pv(), actual), patch.body)


def test_add_finalizer_is_none_when_present():
    assert patches.pv_add_finalizer(make_pv(finalizers=[FINALIZER]), FINALIZER) is None


def test_remove_finalizer_by_index_with_test():
    pv = make_pv(finalizers=[OTHER, FINALIZER, "x/y"])
    patch = patches.pv_remove_finalizer(pv, FINALIZER)
    assert patch is not None and patch.missing_ok
    assert patch.body == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    assert apply_json_patch(pv, patch.body)["metadata"]["finalizers"] == [OTHER, "x/y"]
    # Someone removed OTHER meanwhile: index 1 is now "x/y", the test fails.
    with pytest.raises(ApiError):
        apply_json_patch(make_pv(finalizers=[FINALIZER, "x/y"]), patch.body)
    assert patches.pv_remove_finalizer(make_pv(finalizers=[OTHER]), FINALIZER) is None
    assert patches.pv_remove_finalizer(make_pv(), FINALIZER) is None


def test_va_finalizer_and_annotations_when_both_absent():
    va = make_va()
    wanted = {"csi.alpha.kubernetes.io/node-id": "n1", "a.example.com/b": "c"}
    patch = patches.va_save(va, FINALIZER, wanted)
    assert patch is not None and patch.resource == VOLUME_ATTACHMENTS and patch.type == "json"
    assert patch.body[2:] == [
        {"op": "test", "path": "/metadata/annotations", "value": None},
        {"op": "add", "path": "/metadata/annotations", "value": wanted},
    ]
    out = apply_json_patch(va, patch.body)
    assert out["metadata"]["finalizers"] == [FINALIZER]
    assert out["metadata"]["annotations"] == wanted


def test_va_annotations_escape_slashes_and_keep_others():
    va = make_va(
        finalizers=[FINALIZER],
        annotations={"keep": "me", "csi.alpha.kubernetes.io/node-id": "old"},
    )
    patch = patches.va_save(va, FINALIZER, {"csi.alpha.kubernetes.io/node-id": "new", "keep": "me"})
    assert patch is not None
    assert patch.body == [
        {
            "op": "add",
            "path": "/metadata/annotations/csi.alpha.kubernetes.io~1node-id",
            "value": "new",
        }
    ]
    out = apply_json_patch(va, patch.body)
    assert out["metadata"]["annotations"] == {
        "keep": "me",
        "csi.alpha.kubernetes.io/node-id": "new",
    }


def test_va_patch_is_none_when_nothing_changes():
    va = make_va(finalizers=[FINALIZER], annotations={"k": "v"})
    assert patches.va_save(va, FINALIZER, {"k": "v"}) is None
    assert patches.va_save(va, None, {}) is None


def test_escape_pointer():
    assert escape_pointer("a/b~c") == "a~1b~0c"


def test_va_remove_finalizer_ignores_not_found():
    va = make_va(finalizers=["x", FINALIZER])
    patch = patches.va_remove_finalizer(va, FINALIZER)
    assert patch is not None and patch.missing_ok
    assert apply_json_patch(va, patch.body)["metadata"]["finalizers"] == ["x"]
    assert patches.va_remove_finalizer(make_va(), FINALIZER) is None


def test_mark_attached_replaces_metadata_and_clears_error():
    va = make_va(
        status={
            "attachmentMetadata": {"old": "1", "same": "2"},
            "attachError": {"message": "boom", "time": "t", "errorCode": 13},
        }
    )
    patch = patches.va_mark_attached(va, {"same": "2", "new": "3"})
    assert (patch.type, patch.subresource) == ("merge", "status")
    out = apply_merge_patch(va, patch.body)
    assert out["status"] == {"attached": True, "attachmentMetadata": {"same": "2", "new": "3"}}


@pytest.mark.parametrize("metadata", [None, {}])
def test_mark_attached_without_metadata_removes_it(metadata: dict[str, str] | None):
    va = make_va(status={"attachmentMetadata": {"old": "1"}})
    out = apply_merge_patch(va, patches.va_mark_attached(va, metadata).body)
    assert out["status"] == {"attached": True}


def test_attach_error_without_code_removes_a_stale_code():
    va = make_va(status={"attachError": {"message": "old", "time": "t0", "errorCode": 13}})
    err = {"message": "new", "time": "t1", "errorCode": None}
    out = apply_merge_patch(va, patches.va_attach_error(va, err).body)
    assert out["status"]["attachError"] == {"message": "new", "time": "t1"}


def test_detach_patches():
    va = make_va(
        attached=True,
        status={"attachmentMetadata": {"a": "b"}, "detachError": {"message": "x", "time": "t"}},
    )
    mark = patches.va_mark_detached(va)
    assert mark.missing_ok and mark.subresource == "status"
    assert apply_merge_patch(va, mark.body)["status"] == {"attached": False}
    err = patches.va_detach_error(va, {"message": "m", "time": "t2", "errorCode": 9})
    out = apply_merge_patch(va, err.body)
    assert out["status"]["detachError"] == {"message": "m", "time": "t2", "errorCode": 9}
    assert out["status"]["attached"] is True
