"""Patch builders and a conflict-retry helper, all pure except :func:`retry_on_conflict`.

* :func:`merge_patch` computes an RFC 7386 merge patch from an old and a new object, the way the
  Go sidecars build ``createMergePatch(old, new)`` before ``Patch(MergePatchType)``.
* :func:`apply_merge_patch` applies one (used by the fake and by tests).
* :func:`add_finalizer_patch` / :func:`remove_finalizer_patch` build JSON patches whose first
  operation is a ``test`` of the current finalizer list, so a concurrent edit fails with a
  conflict instead of being overwritten.
* :func:`retry_on_conflict` re-runs a read-modify-write step on 409, with back-off.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

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


def add_finalizer_patch(obj: JsonDict, finalizer: str) -> list[JsonDict] | None:
    """A conflict-safe JSON patch adding ``finalizer``; None when it is already there."""
    meta = obj.get("metadata") or {}
    current = list(meta.get("finalizers") or [])
    if finalizer in current:
        return None
    if not current:
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ]
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
    ]


def remove_finalizer_patch(obj: JsonDict, finalizer: str) -> list[JsonDict] | None:
    """A conflict-safe JSON patch removing ``finalizer``; None when it is not there."""
    current = list((obj.get("metadata") or {}).get("finalizers") or [])
    if finalizer not in current:
        return None
    return [
        {"op": "test", "path": "/metadata/finalizers", "value": current},
        {
            "op": "replace",
            "path": "/metadata/finalizers",
            "value": [f for f in current if f != finalizer],
        },
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
