"""add_finalizers_patch / remove_finalizers_patch against the JSON-patch applier of the fake."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.patch import add_finalizers_patch, remove_finalizers_patch
from csi_sidecars.kube.resources import ApiError


def obj(fins: list[str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x"}
    if fins is not None:
        meta["finalizers"] = fins
    return {"metadata": meta}


@pytest.mark.parametrize("start", [None, [], ["other"]])
def test_add_several(start: list[str] | None) -> None:
    o = obj(start)
    patch = add_finalizers_patch(o, ["a", "b", "a"])
    assert patch is not None
    got = apply_json_patch(o, patch)
    assert got["metadata"]["finalizers"] == [*(start or []), "a", "b"]
    assert add_finalizers_patch(got, ["a", "b"]) is None


def test_add_several_fails_on_a_stale_copy() -> None:
    seen = obj(["other"])
    patch = add_finalizers_patch(seen, ["a"])
    assert patch is not None
    with pytest.raises(ApiError) as err:
        apply_json_patch(obj(["other", "third"]), patch)
    assert err.value.status == 422


def test_remove_several_keeps_others_and_order() -> None:
    o = obj(["a", "keep", "b", "c"])
    patch = remove_finalizers_patch(o, ["a", "b"])
    assert patch is not None
    assert apply_json_patch(o, patch)["metadata"]["finalizers"] == ["keep", "c"]
    assert remove_finalizers_patch(obj(["keep"]), ["a"]) is None


def test_remove_several_fails_when_ours_moved() -> None:
    patch = remove_finalizers_patch(obj(["a", "b"]), ["b"])
    assert patch is not None
    with pytest.raises(ApiError):
        apply_json_patch(obj(["b"]), patch)  # "b" moved to index 0 meanwhile
