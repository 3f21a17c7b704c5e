"""The API writes the attacher makes, as complete :class:`~csi_sidecars.controller.actions.Patch`
actions: JSON patches for metadata, merge patches for status.

Finalizer and annotation edits are the guarded JSON patches of :mod:`csi_sidecars.kube.patch`
(add a finalizer: ``test`` the list as we saw it; remove: ``test`` the entry; annotations: only
changed keys), so an edit computed from a stale cache fails instead of silently undoing another
controller's change (the Go attacher sends a merge patch that replaces the whole finalizer list
of a VolumeAttachment). The finalizer and the annotations of a VolumeAttachment go in one patch.

Status writes go to the ``status`` subresource as merge patches (as in Go), which carry no
precondition; they touch only the attacher-owned status fields. The error handling of each
write (``on_error``) is the caller's: see :mod:`csi_sidecars.attacher.plans`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, name, status
from csi_sidecars.kube.patch import (
    add_finalizer_patch,
    remove_finalizer_patch,
    set_annotations_patch,
)
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, VOLUME_ATTACHMENTS, ApiError

Obj = Mapping[str, Any]
OnError = Callable[[ApiError], a.Plan] | None


def pv_add_finalizer(pv: Obj, finalizer: str, on_error: OnError = None) -> a.Patch | None:
    """Add the attacher finalizer to a PersistentVolume; None when it is already there."""
    ops = add_finalizer_patch(pv, finalizer)
    if ops is None:
        return None
    return a.Patch(PERSISTENT_VOLUMES, name(pv), ops, type="json", on_error=on_error)


def pv_remove_finalizer(pv: Obj, finalizer: str) -> a.Patch | None:
    """Remove the attacher finalizer from a PersistentVolume (404 is fine); None if absent."""
    ops = remove_finalizer_patch(pv, finalizer)
    if ops is None:
        return None
    return a.Patch(PERSISTENT_VOLUMES, name(pv), ops, type="json", missing_ok=True)


def va_save(
    va: Obj, finalizer: str | None, wanted: Mapping[str, str], on_error: OnError = None
) -> a.Patch | None:
    """Add ``finalizer`` (unless None or present) and set ``wanted`` annotations in one patch.

    Returns:
        The patch, or None when nothing would change.
    """
    ops: list[JsonDict] = []
    if finalizer is not None:
        ops += add_finalizer_patch(va, finalizer) or []
    ops += set_annotations_patch(va, wanted) or []
    if not ops:
        return None
    return a.Patch(VOLUME_ATTACHMENTS, name(va), ops, type="json", on_error=on_error)


def va_remove_finalizer(
    va: Obj,
    finalizer: str,
    *,
    then: Callable[[JsonDict], a.Plan] | None = None,
    on_error: OnError = None,
) -> a.Patch | None:
    """Remove the attacher finalizer from a VolumeAttachment (404 is fine); None if absent."""
    ops = remove_finalizer_patch(va, finalizer)
    if ops is None:
        return None
    return a.Patch(
        VOLUME_ATTACHMENTS,
        name(va),
        ops,
        type="json",
        missing_ok=True,
        then=then,
        on_error=on_error,
    )


def _status(
    va: Obj, body: JsonDict, *, missing_ok: bool = False, on_error: OnError = None
) -> a.Patch:
    return a.Patch(
        VOLUME_ATTACHMENTS,
        name(va),
        {"status": body},
        subresource="status",
        missing_ok=missing_ok,
        on_error=on_error,
    )


def _replace_map(old: Any, new: Mapping[str, str] | None) -> Any:
    """A merge-patch value that turns map ``old`` into exactly ``new`` (None = remove)."""
    if not new:
        return None
    out: dict[str, Any] = {k: None for k in (old if isinstance(old, dict) else {}) if k not in new}
    out.update(new)
    return out


def va_mark_attached(va: Obj, metadata: Mapping[str, str] | None) -> a.Patch:
    """Status: ``attached: true``, ``attachmentMetadata`` = publish context, no attachError."""
    old = status(va).get(names.STATUS_ATTACHMENT_METADATA)
    return _status(
        va,
        {
            names.STATUS_ATTACHED: True,
            names.STATUS_ATTACHMENT_METADATA: _replace_map(old, metadata),
            names.STATUS_ATTACH_ERROR: None,
        },
    )


def va_attach_error(va: Obj, error: JsonDict) -> a.Patch:
    """Status: ``attachError`` = ``error`` (a VolumeError from :func:`errors.volume_error`)."""
    return _status(va, {names.STATUS_ATTACH_ERROR: dict(error)})


def va_mark_detached(va: Obj, on_error: OnError = None) -> a.Patch:
    """Status: ``attached: false``, no detachError, no attachmentMetadata (404 is fine)."""
    body = {
        names.STATUS_ATTACHED: False,
        names.STATUS_DETACH_ERROR: None,
        names.STATUS_ATTACHMENT_METADATA: None,
    }
    return _status(va, body, missing_ok=True, on_error=on_error)


def va_detach_error(va: Obj, error: JsonDict) -> a.Patch:
    """Status: ``detachError`` = ``error``."""
    return _status(va, {names.STATUS_DETACH_ERROR: dict(error)})
