"""Pure patch builders and the conflict-retry helper."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.patch import (
    JSON_PATCH_REJECTED,
    apply_merge_patch,
    merge_patch,
    retry_on_conflict,
)
from csi_sidecars.kube.resources import ApiError

CASES: list[tuple[Any, Any, Any]] = [
    ({"a": 1}, {"a": 1}, {}),
    ({"a": 1}, {"a": 2}, {"a": 2}),
    ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
    ({"m": {"x": 1, "y": 2}}, {"m": {"x": 1, "y": 3}}, {"m": {"y": 3}}),
    ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
    ({}, {"n": {"deep": True}}, {"n": {"deep": True}}),
]


@pytest.mark.parametrize(("old", "new", "want"), CASES)
def test_merge_patch_round_trip(old: Any, new: Any, want: Any) -> None:
    patch = merge_patch(old, new)
    assert patch == want
    assert apply_merge_patch(old, patch) == new


def test_json_patch_ops() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    out = apply_json_patch(
        doc,
        [
            {"op": "test", "path": "/c", "value": "x"},
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
        ],
    )
    assert out == {"a": {"b": [2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(ApiError) as err:
        apply_json_patch(doc, [{"op": "test", "path": "/c", "value": "nope"}])
    assert err.value.invalid and err.value.message == JSON_PATCH_REJECTED
    with pytest.raises(ApiError):
        apply_json_patch(doc, [{"op": "remove", "path": "/missing"}])


async def test_retry_on_conflict_retries_then_succeeds() -> None:
    calls = 0
    sleeps: list[float] = []

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ApiError(409, "Conflict", "modified")
        return "done"

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    assert await retry_on_conflict(step, sleep=fake_sleep) == "done"
    assert calls == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0]


async def test_retry_on_conflict_gives_up_and_passes_other_errors() -> None:
    calls = 0

    async def conflict() -> None:
        nonlocal calls
        calls += 1
        raise ApiError(409, "Conflict", "modified")

    async def nosleep(_: float) -> None:
        return None

    with pytest.raises(ApiError):
        await retry_on_conflict(conflict, attempts=4, sleep=nosleep)
    assert calls == 4

    async def not_found() -> None:
        raise ApiError(404, "NotFound", "x")

    with pytest.raises(ApiError) as err:
        await retry_on_conflict(not_found, sleep=nosleep)
    assert err.value.not_found

    test_failures = 0

    async def json_test_failed() -> str:
        nonlocal test_failures
        test_failures += 1
        if test_failures == 1:
            raise ApiError(422, "Invalid", JSON_PATCH_REJECTED)
        return "ok"

    assert await retry_on_conflict(json_test_failed, sleep=nosleep) == "ok"

    async def other_invalid() -> None:
        raise ApiError(422, "Invalid", "spec.x: Invalid value")

    with pytest.raises(ApiError):
        await retry_on_conflict(other_invalid, sleep=nosleep)
