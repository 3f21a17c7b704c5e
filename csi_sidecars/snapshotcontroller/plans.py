"""The pieces every snapshot-controller decision is made of: its inputs and common plan parts.

:class:`Decide` is what a decision gets besides the object: the :class:`~.view.View` of the
caches, the flag-derived :class:`Settings` and the time to stamp on status errors (a value, so
decisions stay pure and tests fix it).

Conflicts are never user-facing (external-snapshotter #748: "the object has been modified" in
``status.error`` and Warning events makes backup tools fail a snapshot that was fine). Every
``on_error`` built here answers a conflict, or a JSON patch whose ``test`` failed, with
:class:`~csi_sidecars.controller.actions.Redecide`: the key is decided again from fresh caches
(and after a few rounds retried with back-off), and only other errors become events and status
errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import Event, EventType
from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.resources import ApiError, Resource
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.view import View

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Settings:
    """The flags decisions depend on.

    Attributes:
        prevent_volume_mode_conversion: fill ``spec.sourceVolumeMode`` of dynamic contents.
        distributed: ``--enable-distributed-snapshotting`` (label contents with their node).
        groups: the ``CSIVolumeGroupSnapshot`` gate is on and the group CRDs exist.
    """

    prevent_volume_mode_conversion: bool = True
    distributed: bool = False
    groups: bool = False


@dataclass(frozen=True, slots=True)
class Decide:
    """A decision's inputs besides the object."""

    view: View
    settings: Settings
    now: str

    @staticmethod
    def stamp(when: dt.datetime | None = None) -> str:
        """An RFC 3339 UTC time for ``status.error.time`` (now by default)."""
        moment = when or dt.datetime.now(dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def api_message(exc: ApiError) -> str:
    """The text Go's client shows for an API error (the Status message)."""
    return exc.message or str(exc)


def emit(obj: Obj, resource: Resource, etype: EventType, reason: str, message: str) -> a.Emit:
    """An event on ``obj``."""
    return a.Emit(Event(etype, reason, message), dict(obj), resource)


def status_error(
    obj: Obj,
    resource: Resource,
    reason: str,
    message: str,
    *,
    now: str,
    set_ready_false: bool,
    etype: EventType = o.WARNING,
) -> tuple[a.Action, ...]:
    """Go's ``update*ErrorStatusWithEvent``: the event and ``status.error`` (and, if asked,
    ``readyToUse: false``); nothing when the same message is there already.

    The status is a merge patch of the status subresource without a resourceVersion, so it
    cannot conflict; the event is recorded first (Go records it even when the write fails).
    """
    if so.error_message(obj) == message:
        return ()
    status: dict[str, Any] = {"error": {"message": message, "time": now}}
    if set_ready_false:
        status["readyToUse"] = False
    patch = a.Patch(
        resource,
        o.name(obj),
        {"status": status},
        o.namespace(obj) or None,
        subresource="status",
        missing_ok=True,
    )
    return (emit(obj, resource, etype, reason, message), patch)


def failure(
    obj: Obj,
    resource: Resource,
    reason: str,
    message: Callable[[str], str],
    *,
    now: str,
    set_ready_false: bool = True,
    record_status: bool = True,
) -> Callable[[ApiError], a.Plan]:
    """An ``on_error``: conflict -> decide again; else the event (and status error), then retry.

    Args:
        obj: the object the event (and status error) go on.
        resource: its kind.
        reason: the event reason.
        message: builds the message from the API error's text.
        now: the status error time.
        set_ready_false: also set ``readyToUse: false``.
        record_status: also write ``status.error`` (False: the event only).
    """

    def on_error(exc: ApiError) -> a.Plan:
        if is_conflict(exc):
            return (a.Redecide(api_message(exc)),)
        text = message(api_message(exc))
        if not record_status:
            return (emit(obj, resource, o.WARNING, reason, text), a.Retry(text))
        parts = status_error(obj, resource, reason, text, now=now, set_ready_false=set_ready_false)
        return (*parts, a.Retry(text))

    return on_error


def fail(
    obj: Obj,
    resource: Resource,
    reason: str,
    message: str,
    *,
    now: str,
    set_ready_false: bool = True,
    retry: bool = True,
) -> a.Plan:
    """The event and status error for a failure found while deciding, then retry (or done)."""
    parts = status_error(obj, resource, reason, message, now=now, set_ready_false=set_ready_false)
    return (*parts, a.Retry(message) if retry else a.Done(message))
