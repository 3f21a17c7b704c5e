"""Pieces of the VolumeAttachment plans that attach and detach share.

:class:`Facts` is what one decision knows (the VolumeAttachment, its PV, the CSINode, the
configuration, the clock). Its methods build the plans both directions end in: the error status
write with its events (``attachError`` / ``detachError``, then retry with back-off), and the
``on_error`` of a guarded metadata write (a stale copy -> decide again; anything else -> the
error status). :func:`with_secrets` reads the controller-publish Secret with a pure
continuation.

The clock is called when a plan is built, also inside a continuation, so an error's ``time`` is
when the error was seen (after a CSI call that took ``--timeout``), as in Go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.attacher import errors, events, patches
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.objects import SecretRef, va_node_name, va_pv_name
from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import JsonDict, SecretError, secret_data
from csi_sidecars.kube.resources import SECRETS, ApiError

Obj = Mapping[str, Any]
Clock = Callable[[], dt.datetime]

#: Seconds before a VolumeAttachment is looked at again while the CSINode cache has not synced.
CSINODE_WAIT = 1.0


def api_message(exc: ApiError) -> str:
    """The API server's message for ``exc`` (Go's ``err.Error()`` text of a status error)."""
    return exc.message or str(exc)


def is_stale(exc: ApiError) -> bool:
    """Whether a guarded JSON patch failed because our copy was stale (409, or 422 ``test``)."""
    return exc.conflict or exc.invalid


def utcnow() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Facts:
    """The inputs of one VolumeAttachment decision.

    Attributes:
        va: the VolumeAttachment.
        cfg: driver and flags.
        pv: the PV named by ``spec.source.persistentVolumeName`` from the cache, or None.
        csinode: the CSINode named ``spec.nodeName`` from the cache, or None.
        clock: the time written into ``attachError`` / ``detachError``.
        csinode_synced: whether the CSINode cache has completed its first list.
        force_sync: the ListVolumes reconciler found the status wrong: attach (or detach) even
            when the status already says so.
    """

    va: Obj
    cfg: AttacherConfig
    pv: Obj | None
    csinode: Obj | None
    clock: Clock = utcnow
    csinode_synced: bool = True
    force_sync: bool = False

    @property
    def pv_name(self) -> str | None:
        """``spec.source.persistentVolumeName``."""
        return va_pv_name(self.va)

    @property
    def node_name(self) -> str:
        """``spec.nodeName``."""
        return va_node_name(self.va)

    def _pods(self) -> events.PodSelector | None:
        return events.pod_selector(self.pv, self.node_name) if self.cfg.pod_events else None

    def _code(self, code: int | None) -> int | None:
        return code if self.cfg.error_codes else None

    def attach_error(self, message: str, code: int | None = None, final: bool = True) -> a.Plan:
        """Write ``attachError``, record the failure events, retry with back-off."""
        error = errors.volume_error(message, self.clock(), self._code(code))
        event = events.attach_failed(self.pv_name, self.node_name, message)
        outcome = a.Retry(_reason("attach", message, final))
        return (
            patches.va_attach_error(self.va, error),
            *events.on_va_and_pods(event, self.va, self._pods(), outcome),
        )

    def detach_error(self, message: str, code: int | None = None, final: bool = True) -> a.Plan:
        """Write ``detachError``, record the failure events, retry with back-off."""
        error = errors.volume_error(message, self.clock(), self._code(code))
        event = events.detach_failed(self.pv_name, self.node_name, message)
        outcome = a.Retry(_reason("detach", message, final))
        return (
            patches.va_detach_error(self.va, error),
            *events.on_va_and_pods(event, self.va, self._pods(), outcome),
        )

    def attach_call_failed(self, exc: BaseException) -> a.Plan:
        """ControllerPublishVolume failed: the error with its gRPC code."""
        return self.attach_error(
            errors.error_message(exc), errors.error_code_number(exc), errors.is_final_error(exc)
        )

    def detach_call_failed(self, exc: BaseException) -> a.Plan:
        """ControllerUnpublishVolume failed: the error with its gRPC code."""
        return self.detach_error(
            errors.error_message(exc), errors.error_code_number(exc), errors.is_final_error(exc)
        )

    def attach_write_failed(self, what: str) -> Callable[[ApiError], a.Plan]:
        """``on_error`` of a guarded write before publishing (Go's wording in ``what``)."""

        def failed(exc: ApiError) -> a.Plan:
            if is_stale(exc):
                return (a.Redecide(api_message(exc)),)
            return self.attach_error(f"{what}: {api_message(exc)}")

        return failed


def _reason(op: str, message: str, final: bool) -> str:
    if final:
        return f"{op} failed: {message}"
    return f"{op} failed, the driver may still be working on it: {message}"


def with_secrets(
    ref: SecretRef | None,
    fail: Callable[[str], a.Plan],
    go_on: Callable[[dict[str, str] | None], a.Plan],
) -> a.Plan:
    """``go_on(secrets)`` once the Secret ``ref`` is read and decoded (None: no Secret needed).

    A Secret that is missing, unreadable or not valid base64 UTF-8 becomes
    ``fail('failed to load secret "<ns>/<name>": <why>')``.
    """
    if ref is None:
        return go_on(None)
    prefix = f'failed to load secret "{ref}"'

    def loaded(secret: JsonDict | None) -> a.Plan:
        if secret is None:
            return fail(f'{prefix}: secrets "{ref.name}" not found')
        try:
            data = secret_data(secret, str(ref))
        except SecretError as exc:
            return fail(f"{prefix}: {exc}")
        return go_on(data)

    return (
        a.Read(
            SECRETS,
            ref.name,
            ref.namespace,
            then=loaded,
            on_error=lambda exc: fail(f"{prefix}: {api_message(exc)}"),
        ),
    )
