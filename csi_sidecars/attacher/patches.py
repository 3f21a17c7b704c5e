"""The API writes the attacher makes, as data: JSON patches for metadata, merge patches for status.

Finalizer and annotation edits are RFC 6902 JSON patches guarded by ``test`` operations, so an
edit computed from a stale cache fails with 409 Conflict instead of silently undoing another
controller's change (the Go attacher sends a merge patch that replaces the whole finalizer list
of a VolumeAttachment). On a conflict the executor re-reads the object and decides again.

* add a finalizer: list absent -> ``test`` it is null, ``add`` ``[f]``; list empty -> ``test []``,
  ``replace`` with ``[f]`` (both as Go does); non-empty -> ``test`` the whole current list, then
  ``add /metadata/finalizers/-`` (Go appends without a test).
* remove a finalizer: ``test /metadata/finalizers/<i>`` is ``f``, then ``remove`` it (Go).
* annotations: map absent -> ``test`` it is null, ``add`` the map; else ``add`` per key (``add`` on
  an existing member replaces only that member).

Status writes go to the ``status`` subresource as merge patches (as in Go), which carry no
precondition; they touch only the attacher-owned status fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from csi_sidecars.attacher import names
from csi_sidecars.attacher.objects import (
    JsonDict,
    annotations_of,
    finalizers,
    name_of,
    va_status,
)

Kind = Literal["VolumeAttachment", "PersistentVolume"]
PatchType = Literal["merge", "json"]

VOLUME_ATTACHMENT: Kind = "VolumeAttachment"
PERSISTENT_VOLUME: Kind = "PersistentVolume"


@dataclass(frozen=True, slots=True)
class Patch:
    """One PATCH request.

    Attributes:
        kind: ``VolumeAttachment`` (storage.k8s.io/v1) or ``PersistentVolume`` (v1).
        name: object name (both kinds are cluster-scoped).
        type: ``merge`` (application/merge-patch+json) or ``json`` (application/json-patch+json).
        body: the JSON-serialisable patch document.
        subresource: ``status`` for status writes, else None.
        ignore_not_found: a 404 answer counts as success.
    """

    kind: Kind
    name: str
    type: PatchType
    body: Any
    subresource: str | None = None
    ignore_not_found: bool = False


def escape_pointer(token: str) -> str:
    """Escape one JSON-pointer reference token (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def add_finalizer_ops(current: list[str] | None, finalizer: str) -> list[JsonDict]:
    """JSON-patch operations adding ``finalizer`` to a list that is now ``current``."""
    path = "/metadata/finalizers"
    if current is None:
        return [
            {"op": "test", "path": path, "value": None},
            {"op": "add", "path": path, "value": [finalizer]},
        ]
    if not current:
        return [
            {"op": "test", "path": path, "value": []},
            {"op": "replace", "path": path, "value": [finalizer]},
        ]
    return [
        {"op": "test", "path": path, "value": list(current)},
        {"op": "add", "path": path + "/-", "value": finalizer},
    ]


def remove_finalizer_ops(current: list[str] | None, finalizer: str) -> list[JsonDict] | None:
    """JSON-patch operations removing the first ``finalizer``; None when it is not there."""
    if not current or finalizer not in current:
        return None
    path = f"/metadata/finalizers/{current.index(finalizer)}"
    return [{"op": "test", "path": path, "value": finalizer}, {"op": "remove", "path": path}]


def set_annotations_ops(
    current: Mapping[str, str] | None, wanted: Mapping[str, str]
) -> list[JsonDict]:
    """JSON-patch operations setting ``wanted`` annotations; only changed keys are written."""
    changed = {k: v for k, v in wanted.items() if (current or {}).get(k) != v}
    if not changed:
        return []
    if current is None:
        return [
            {"op": "test", "path": "/metadata/annotations", "value": None},
            {"op": "add", "path": "/metadata/annotations", "value": dict(changed)},
        ]
    return [
        {"op": "add", "path": "/metadata/annotations/" + escape_pointer(k), "value": v}
        for k, v in changed.items()
    ]


def pv_add_finalizer(pv: Mapping[str, Any], finalizer: str) -> Patch | None:
    """Add the attacher finalizer to a PersistentVolume; None when it is already there."""
    current = finalizers(pv)
    if finalizer in (current or []):
        return None
    return Patch(PERSISTENT_VOLUME, name_of(pv), "json", add_finalizer_ops(current, finalizer))


def pv_remove_finalizer(pv: Mapping[str, Any], finalizer: str) -> Patch | None:
    """Remove the attacher finalizer from a PersistentVolume; None when it is not there."""
    ops = remove_finalizer_ops(finalizers(pv), finalizer)
    if ops is None:
        return None
    return Patch(PERSISTENT_VOLUME, name_of(pv), "json", ops, ignore_not_found=True)


def va_add_finalizer_and_annotations(
    va: Mapping[str, Any], finalizer: str | None, wanted: Mapping[str, str]
) -> Patch | None:
    """Add ``finalizer`` (unless None or present) and set ``wanted`` annotations in one patch.

    Returns:
        The patch, or None when nothing would change.
    """
    ops: list[JsonDict] = []
    current = finalizers(va)
    if finalizer is not None and finalizer not in (current or []):
        ops += add_finalizer_ops(current, finalizer)
    ops += set_annotations_ops(annotations_of(va), wanted)
    if not ops:
        return None
    return Patch(VOLUME_ATTACHMENT, name_of(va), "json", ops)


def va_remove_finalizer(va: Mapping[str, Any], finalizer: str) -> Patch | None:
    """Remove the attacher finalizer from a VolumeAttachment; None when it is not there."""
    ops = remove_finalizer_ops(finalizers(va), finalizer)
    if ops is None:
        return None
    return Patch(VOLUME_ATTACHMENT, name_of(va), "json", ops, ignore_not_found=True)


def _replace_map(old: Any, new: Mapping[str, str] | None) -> Any:
    """A merge-patch value that turns map ``old`` into exactly ``new`` (None = remove)."""
    if not new:
        return None
    out: dict[str, Any] = {k: None for k in (old if isinstance(old, dict) else {}) if k not in new}
    out.update(new)
    return out


def va_mark_attached(va: Mapping[str, Any], metadata: Mapping[str, str] | None) -> Patch:
    """Status: ``attached: true``, ``attachmentMetadata`` = publish context, no attachError."""
    old = va_status(va).get(names.STATUS_ATTACHMENT_METADATA)
    status = {
        names.STATUS_ATTACHED: True,
        names.STATUS_ATTACHMENT_METADATA: _replace_map(old, metadata),
        names.STATUS_ATTACH_ERROR: None,
    }
    return Patch(VOLUME_ATTACHMENT, name_of(va), "merge", {"status": status}, "status")


def va_attach_error(va: Mapping[str, Any], error: JsonDict) -> Patch:
    """Status: ``attachError`` = ``error`` (a VolumeError from :func:`errors.volume_error`)."""
    body = {"status": {names.STATUS_ATTACH_ERROR: dict(error)}}
    return Patch(VOLUME_ATTACHMENT, name_of(va), "merge", body, "status")


def va_mark_detached(va: Mapping[str, Any]) -> Patch:
    """Status: ``attached: false``, no detachError, no attachmentMetadata (404 is fine)."""
    status = {
        names.STATUS_ATTACHED: False,
        names.STATUS_DETACH_ERROR: None,
        names.STATUS_ATTACHMENT_METADATA: None,
    }
    return Patch(
        VOLUME_ATTACHMENT, name_of(va), "merge", {"status": status}, "status", ignore_not_found=True
    )


def va_detach_error(va: Mapping[str, Any], error: JsonDict) -> Patch:
    """Status: ``detachError`` = ``error``."""
    body = {"status": {names.STATUS_DETACH_ERROR: dict(error)}}
    return Patch(VOLUME_ATTACHMENT, name_of(va), "merge", body, "status")
