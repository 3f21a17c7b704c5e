"""The plan of a conflict-safe Update (PUT) of one object, for the kinds the Go RBAC lets the
provisioner update but not patch: PersistentVolumeClaims and VolumeSnapshots.

The first PUT sends ``change(obj)`` (the caller's copy, whose resourceVersion guards it); on a
conflict the object is read again and ``change`` applied to the fresh copy, up to ``attempts``
PUTs. :func:`~.claims.update_claim` is this plan for claims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.kube.objects import JsonDict, name, namespace
from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.resources import ApiError, Resource
from csi_sidecars.provisioner.decide.strings import api_message

#: Updates tried (each after re-reading the object) before a conflict is given up.
UPDATE_ATTEMPTS = 5

Change = Callable[[Mapping[str, Any]], JsonDict | None]
"""The new object for an Update, or None when nothing needs to change (pure)."""


def update_object(
    resource: Resource,
    obj: Mapping[str, Any],
    change: Change,
    *,
    missing_ok: bool = False,
    forbidden: a.Outcome | None = None,
    done: a.Outcome | None = None,
    attempts: int = UPDATE_ATTEMPTS,
    noun: str = "object",
) -> Plan:
    """The plan of one conflict-safe Update of ``obj``.

    Args:
        resource: the object's kind (its ``kind`` and ``api_version`` fill a body without them).
        obj: the object as the caller saw it.
        change: the new object, or None (nothing to change: :class:`Done`).
        missing_ok: an object that is gone counts as done (else :class:`Retry`).
        forbidden: the outcome of a 403 answer (None: :class:`Retry`, like any other error).
        done: the outcome once the Update is written (default :class:`Done`).
        attempts: PUTs before the conflict is given up (:class:`Retry`).
        noun: what the object is called in the outcome reasons (``claim is gone``).
    """
    body = change(obj)
    if body is None:
        return (a.Done(),)
    body.setdefault("apiVersion", resource.api_version)
    body.setdefault("kind", resource.kind)
    obj_ns, obj_name = namespace(obj) or None, name(obj)
    finished = done if done is not None else a.Done()

    def again(fresh: JsonDict | None) -> Plan:
        if fresh is None:
            if missing_ok:
                return (a.Done(f"{noun} is gone"),)
            return (a.Retry(f'{resource.plural} "{obj_name}" not found'),)
        return update_object(
            resource,
            fresh,
            change,
            missing_ok=missing_ok,
            forbidden=forbidden,
            done=finished,
            attempts=attempts - 1,
            noun=noun,
        )

    def on_error(exc: ApiError) -> Plan:
        if exc.not_found and missing_ok:
            return (a.Done(f"{noun} is gone"),)
        if exc.status == 403 and forbidden is not None:
            return (forbidden,)
        if is_conflict(exc) and attempts > 1:
            return (a.Read(resource, obj_name, obj_ns, then=again),)
        return (a.Retry(api_message(exc)),)

    return (a.Replace(resource, body, obj_ns, then=lambda _: (finished,), on_error=on_error),)


__all__ = ["UPDATE_ATTEMPTS", "Change", "update_object"]
