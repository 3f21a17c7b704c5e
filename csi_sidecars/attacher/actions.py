"""The actions the attacher's pure decisions return, one small frozen dataclass per kind.

An executor handles them in four groups:

* **stop**: :class:`Ignore` (queue ``forget``), :class:`WaitForCSINode` (re-add the key once the
  CSINode cache has synced).
* **step** (do it, then call the decision again with the updated objects): :class:`LoadSecrets`
  (GET the Secret, pass ``secrets=`` or ``secrets_error=``), :class:`AddPVFinalizer`
  (the patched PV replaces ``pv``), :class:`AddVAFinalizer` and :class:`AnnotateVA` (the patched
  VA replaces ``va``).
* **call**: :class:`Attach` / :class:`Detach`: send the request with ``--timeout`` and turn the
  result into writes with :func:`~csi_sidecars.attacher.decide.attach_outcome` /
  :func:`~csi_sidecars.attacher.decide.detach_outcome`.
* **write** (the end of a sync): :class:`MarkAttached`, :class:`SetAttachError`,
  :class:`RemoveVAFinalizer`, :class:`MarkDetached`, :class:`SetDetachError`,
  :class:`RemovePVFinalizer`. Apply the patch, record the events, then ``forget`` the key, or
  re-add it rate-limited when ``retry`` is true.

Requests hold secrets, so they are left out of ``repr`` (actions may be logged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from csi_sidecars.attacher.events import Event
from csi_sidecars.attacher.objects import SecretRef
from csi_sidecars.attacher.patches import Patch
from csi_sidecars.csi.messages import csi_pb2


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do (another attacher's VA, already attached/detached, PV still in use, ...)."""

    reason: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class WaitForCSINode:
    """The CSINode cache has not synced yet: retry this VA once it has, without an error."""

    node_name: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class LoadSecrets:
    """Fetch the controller-publish Secret and decide again with its data (or the error)."""

    ref: SecretRef
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AddPVFinalizer:
    """Add the attacher finalizer to the PV (first write of an attach)."""

    patch: Patch
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AddVAFinalizer:
    """Add the VA finalizer and the node-id (and detach-info) annotations before publishing."""

    patch: Patch
    node_id: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AnnotateVA:
    """Record the detach-info annotations on a VA attached before they existed (best effort)."""

    patch: Patch
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Attach:
    """Send ControllerPublishVolume."""

    request: csi_pb2.ControllerPublishVolumeRequest = field(repr=False)
    pv_name: str | None
    volume_handle: str
    node_id: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Detach:
    """Send ControllerUnpublishVolume.

    ``from_annotations`` is true when the PV is gone and the volume handle (and secret
    reference) came from our VolumeAttachment annotations.
    """

    request: csi_pb2.ControllerUnpublishVolumeRequest = field(repr=False)
    pv_name: str | None
    volume_handle: str
    node_id: str
    from_annotations: bool = False
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class MarkAttached:
    """Status: attached, with the publish context as attachment metadata."""

    patch: Patch
    events: tuple[Event, ...] = ()
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SetAttachError:
    """Status: ``attachError``; then retry with back-off.

    ``code`` is the numeric gRPC code written as ``errorCode`` (None: not a gRPC error, or the
    gate is off); ``final`` says whether the driver certainly is not still attaching.
    """

    patch: Patch
    message: str
    code: int | None = None
    final: bool = True
    events: tuple[Event, ...] = ()
    retry: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class RemoveVAFinalizer:
    """Remove the VA finalizer after a successful detach (before the status write)."""

    patch: Patch
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class MarkDetached:
    """Status: not attached, no detach error, no metadata (404 is fine: the VA may be gone)."""

    patch: Patch
    events: tuple[Event, ...] = ()
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SetDetachError:
    """Status: ``detachError``; then retry with back-off."""

    patch: Patch
    message: str
    code: int | None = None
    final: bool = True
    events: tuple[Event, ...] = ()
    retry: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class RemovePVFinalizer:
    """Remove the attacher finalizer from a PV no VolumeAttachment references any more."""

    patch: Patch
    retry: ClassVar[bool] = False


VAAction = (
    Ignore
    | WaitForCSINode
    | LoadSecrets
    | AddPVFinalizer
    | AddVAFinalizer
    | AnnotateVA
    | Attach
    | Detach
    | MarkAttached
    | SetAttachError
    | SetDetachError
)
"""What :func:`~csi_sidecars.attacher.decide.decide_va` returns."""

OutcomeAction = MarkAttached | SetAttachError | RemoveVAFinalizer | MarkDetached | SetDetachError
"""What the outcome functions return (applied in order; stop at the first failure)."""

PVAction = Ignore | RemovePVFinalizer
"""What :func:`~csi_sidecars.attacher.pvs.decide_pv` returns."""
