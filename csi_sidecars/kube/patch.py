"""Patch builders and a conflict-retry helper, all pure except :func:`retry_on_conflict`.

* :func:`merge_patch` computes an RFC 7386 merge patch from an old and a new object, the way the
  Go sidecars build ``createMergePatch(old, new)`` before ``Patch(MergePatchType)``.
* :func:`apply_merge_patch` applies one (used by the fake and by tests).
* :func:`add_finalizer_patch` / :func:`remove_finalizer_patch` / :func:`set_annotations_patch`
  (and :func:`add_finalizers_patch` / :func:`remove_finalizers_patch` for several at once)
  build JSON patches guarded by ``test`` operations, so an edit computed from a stale copy fails
  (422 or 409) instead of overwriting another writer's change. Every role uses these.
* :func:`retry_on_conflict` re-runs a read-modify-write step on 409, with back-off.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from csi_sidecars.kube.objects import annotations_of, finalizers, has_field
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import ApiError, JsonDict, Resource

T = TypeVar("T")


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (``{}`` when equal).

    Lists are replaced whole; removed keys become ``None``.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out: JsonDict = {}
    for key, value in new.items():
        if key not in old:
            out[key] = copy.deepcopy(value)
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                out[key] = merge_patch(old[key], value)
            else:
                out[key] = copy.deepcopy(value)
    for key in old:
        if key not in new:
            out[key] = None
    return out


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; returns a new value and leaves ``target`` untouched."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: JsonDict = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def escape_pointer(token: str) -> str:
    """Escape one JSON-pointer reference token (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def add_finalizer_patch(obj: Mapping[str, Any], finalizer: str) -> list[JsonDict] | None:
    """A conflict-safe JSON patch adding ``finalizer``; None when it is already there.

    The list as the caller saw it is guarded by a ``test``: absent -> ``test`` null and ``add``
    ``[f]``; empty -> ``test []`` and ``replace``; otherwise ``test`` the whole list and append.
    A decision made from a stale copy fails (422/409) instead of undoing another writer.
    """
    path = "/metadata/finalizers"
    if not has_field(obj, "finalizers"):
        return [
            {"op": "test", "path": path, "value": None},
            {"op": "add", "path": path, "value": [finalizer]},
        ]
    current = finalizers(obj)
    if finalizer in current:
        return None
    if not current:
        return [
            {"op": "test", "path": path, "value": []},
            {"op": "replace", "path": path, "value": [finalizer]},
        ]
    return [
        {"op": "test", "path": path, "value": current},
        {"op": "add", "path": path + "/-", "value": finalizer},
    ]


def remove_finalizer_patch(obj: Mapping[str, Any], finalizer: str) -> list[JsonDict] | None:
    """A JSON patch removing the first ``finalizer`` by its index; None when it is not there.

    Only that entry is guarded (``test`` it is ``finalizer``), so other controllers adding or
    removing their own finalizers meanwhile do not make the removal fail, unless they shift it.
    """
    current = finalizers(obj)
    if finalizer not in current:
        return None
    path = f"/metadata/finalizers/{current.index(finalizer)}"
    return [{"op": "test", "path": path, "value": finalizer}, {"op": "remove", "path": path}]


def add_finalizers_patch(obj: Mapping[str, Any], wanted: Sequence[str]) -> list[JsonDict] | None:
    """Like :func:`add_finalizer_patch` for several finalizers in one patch (in ``wanted`` order).

    None when all are there already; the list as the caller saw it is guarded by a ``test``.
    """
    path = "/metadata/finalizers"
    current = finalizers(obj)
    missing = [f for f in dict.fromkeys(wanted) if f not in current]
    if not missing:
        return None
    if not has_field(obj, "finalizers"):
        return [
            {"op": "test", "path": path, "value": None},
            {"op": "add", "path": path, "value": missing},
        ]
    if not current:
        return [
            {"op": "test", "path": path, "value": []},
            {"op": "replace", "path": path, "value": missing},
        ]
    return [
        {"op": "test", "path": path, "value": current},
        *({"op": "add", "path": path + "/-", "value": f} for f in missing),
    ]


def remove_finalizers_patch(
    obj: Mapping[str, Any], unwanted: Sequence[str]
) -> list[JsonDict] | None:
    """A JSON patch removing every entry of ``unwanted``; None when none is there.

    Each removed entry is guarded by its own ``test`` (index and value, highest index first, so
    earlier removals do not shift later ones): other finalizers may come and go meanwhile unless
    they move ours.
    """
    current = finalizers(obj)
    indexes = [i for i, f in enumerate(current) if f in set(unwanted)]
    if not indexes:
        return None
    ops: list[JsonDict] = []
    for i in reversed(indexes):
        path = f"/metadata/finalizers/{i}"
        ops.append({"op": "test", "path": path, "value": current[i]})
        ops.append({"op": "remove", "path": path})
    return ops


def set_annotations_patch(
    obj: Mapping[str, Any], wanted: Mapping[str, str]
) -> list[JsonDict] | None:
    """A JSON patch setting ``wanted`` annotations (only changed keys); None when none change."""
    current = annotations_of(obj)
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changed:
        return None
    if not has_field(obj, "annotations"):
        return [
            {"op": "test", "path": "/metadata/annotations", "value": None},
            {"op": "add", "path": "/metadata/annotations", "value": dict(changed)},
        ]
    return [
        {"op": "add", "path": "/metadata/annotations/" + escape_pointer(k), "value": v}
        for k, v in changed.items()
    ]


async def retry_on_conflict(
    step: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    base_delay: float = 0.01,
    max_delay: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``step`` (a read-modify-write) again on a conflict (:func:`is_conflict`).

    At most ``attempts`` runs.

    Mirrors client-go's ``retry.RetryOnConflict`` with ``DefaultRetry`` (5 steps, 10 ms, x1, jitter
    0.1) but doubles the delay each attempt.

    Raises:
        ApiError: the last conflict when all attempts conflict, or any other API error at once.
    """
    delay = base_delay
    for attempt in range(attempts):
        try:
            return await step()
        except ApiError as exc:
            if not is_conflict(exc) or attempt == attempts - 1:
                raise
        await sleep(delay * (1 + 0.1 * random.random()))
        delay = min(max_delay, delay * 2)
    raise AssertionError("unreachable")


JSON_PATCH_REJECTED = "the server rejected our request due to an error in our request"


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` means "someone else changed the object; re-read and retry".

    That is a 409 Conflict, or a JSON patch the API server could not apply: it answers a failed
    ``test`` operation (or a path that no longer exists) with 422 and the generic message
    :data:`JSON_PATCH_REJECTED`. For the patches built here both mean the object changed.
    """
    if not isinstance(exc, ApiError):
        return False
    if exc.conflict:
        return True
    return exc.invalid and exc.message == JSON_PATCH_REJECTED


async def apply(
    port: KubePort,
    resource: Resource,
    body: JsonDict,
    field_manager: str,
    *,
    force: bool = True,
    subresource: str | None = None,
) -> JsonDict:
    """Server-side apply ``body`` (a full intent with apiVersion, kind and metadata.name)."""
    meta = body["metadata"]
    return await port.patch(
        resource,
        meta["name"],
        body,
        meta.get("namespace"),
        patch_type="apply",
        subresource=subresource,
        field_manager=field_manager,
        force=force,
    )


async def patch_status(
    port: KubePort,
    resource: Resource,
    name: str,
    status: JsonDict,
    namespace: str | None = None,
) -> JsonDict:
    """Merge-patch the ``status`` subresource."""
    return await port.patch(
        resource, name, {"status": status}, namespace, patch_type="merge", subresource="status"
    )
