"""The attacher's executor: applies the pure decisions with real API writes and CSI calls.

One :meth:`Executor.sync_va` call processes one VolumeAttachment key the way
:mod:`csi_sidecars.attacher.actions` describes: decide, do the step (Secret GET, finalizer /
annotation JSON patch), decide again with the answer, until a CSI call or a final write. When the
PV finalizer step would be followed by the VA finalizer step, both patches go out at once (two
objects, no order needed: both land before the CSI call), saving a round trip per attach. Objects
come from the informer caches; every successful patch returns the object as the API server now
has it, which replaces the cached copy for the rest of the sync.

Conflicts: our metadata writes are JSON patches guarded by ``test`` operations, so a decision
made from a stale cache fails with 422 (the API server's answer to a failed ``test``; 409 is
treated alike). The executor then GETs the object and decides again, a few times at most.

Return values follow :meth:`csi_sidecars.kube.workqueue.WorkQueue.run`: True forgets the key,
False re-queues it with back-off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc

from csi_sidecars.attacher import actions as a
from csi_sidecars.attacher import events as ev
from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.decide import attach_outcome, decide_va, detach_outcome, step_failed
from csi_sidecars.attacher.objects import name_of, secret_data, va_node_name, va_pv_name
from csi_sidecars.attacher.patches import PERSISTENT_VOLUME, Patch
from csi_sidecars.attacher.pvs import decide_pv
from csi_sidecars.csi.connection import Connection
from csi_sidecars.csi.sanitize import Stripped
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.jsonpatch import apply_json_patch
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUMES,
    PODS,
    SECRETS,
    VOLUME_ATTACHMENTS,
    ApiError,
    JsonDict,
)
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("attacher")

Obj = Mapping[str, Any]
Lookup = Callable[[str], JsonDict | None]

#: Re-reads after a failed ``test`` before the key goes back to the queue with back-off.
MAX_CONFLICTS = 3
#: Decide/step rounds per sync (a sync takes at most about six).
MAX_STEPS = 16
#: Pod lookups for events running at the same time; more are skipped.
MAX_POD_LOOKUPS = 32


def _rv(obj: Obj | None) -> int | None:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


class WrittenCache:
    """The objects our own writes returned, until the informer has caught up with them.

    A key is often synced again right after a write (the write's watch event queues it), before
    that event reached the cache; deciding from the stale copy would publish a second time.
    Like client-go's mutation cache, this compares resourceVersions as numbers (the API server's
    are etcd revisions); anything else falls back to the informer's copy.
    """

    def __init__(self) -> None:
        self._objects: dict[str, JsonDict] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def remember(self, obj: JsonDict | None) -> None:
        """Keep the object a write returned."""
        if obj is not None and _rv(obj) is not None:
            self._objects[name_of(obj)] = obj

    def newest(self, name: str, cached: JsonDict | None) -> JsonDict | None:
        """``cached``, unless our last write of ``name`` is newer than it."""
        written = self._objects.get(name)
        if written is None:
            return cached
        old, new = _rv(cached), _rv(written)
        if cached is None or old is None or new is None or old >= new:
            self._objects.pop(name, None)
            return cached
        return written

    def deleted(self, name: str) -> bool:
        """Whether our last write of ``name`` left it deleting with no finalizer (so gone)."""
        obj = self._objects.get(name)
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        return bool(meta.get("deletionTimestamp")) and not meta.get("finalizers")

    def observe(self, obj: Obj) -> None:
        """The informer saw ``obj``: forget our copy once the cache is as new."""
        name = name_of(obj)
        written = self._objects.get(name)
        if written is not None:
            old, new = _rv(obj), _rv(written)
            if old is None or new is None or old >= new:
                self._objects.pop(name, None)

    def forget(self, name: str) -> None:
        """Drop ``name`` (the object was deleted)."""
        self._objects.pop(name, None)


class _Stale(Exception):
    """A guarded patch failed: re-read the object and decide again."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _api_message(exc: ApiError) -> str:
    return exc.message or str(exc)


class Executor:
    """Syncs VolumeAttachment and PersistentVolume keys.

    Args:
        cfg: driver name, capabilities, flags.
        port: the Kubernetes API.
        conn: the CSI driver connection.
        timeout: ``--timeout`` for ControllerPublish/Unpublish.
        get_va: VA cache lookup by name.
        get_pv: PV cache lookup by name.
        get_csinode: CSINode cache lookup by node name.
        vas_of_pv: VAs in the cache (any attacher) whose source is the named PV.
        csinode_synced: whether the CSINode cache has synced.
        recorder: where events go; None records none.
        events_port: the API for pod lookups made only to place events (default ``port``).
        now: the clock for error times.
    """

    def __init__(
        self,
        cfg: AttacherConfig,
        port: KubePort,
        conn: Connection,
        *,
        timeout: float,
        get_va: Lookup,
        get_pv: Lookup,
        get_csinode: Lookup,
        vas_of_pv: Callable[[str], Iterable[Obj]],
        csinode_synced: Callable[[], bool] = lambda: True,
        recorder: EventRecorder | None = None,
        events_port: KubePort | None = None,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.cfg = cfg
        self.port = port
        self.conn = conn
        self.timeout = timeout
        self.get_va = get_va
        self.get_pv = get_pv
        self.get_csinode = get_csinode
        self.vas_of_pv = vas_of_pv
        self.csinode_synced = csinode_synced
        self.recorder = recorder
        self.events_port = events_port or port
        self.now = now
        #: VA names the ListVolumes reconciler found out of step (consumed by the next sync).
        self.force_sync: set[str] = set()
        #: VA names waiting for the CSINode cache (re-queued by the controller once synced).
        self.waiting_for_csinode: set[str] = set()
        #: Objects returned by our writes, newer than the caches for a moment.
        self.written_vas = WrittenCache()
        self.written_pvs = WrittenCache()
        self.pods_forbidden = False
        self._pod_lookups: set[asyncio.Task[None]] = set()

    # -- VolumeAttachments -----------------------------------------------------------------

    async def sync_va(self, name: str) -> bool:
        """Process VolumeAttachment ``name`` once; False asks for a retry with back-off."""
        va = self.get_va(name)
        if va is None:
            self.force_sync.discard(name)
            self.written_vas.forget(name)
            return True
        va = self.written_vas.newest(name, va) or va
        force = name in self.force_sync
        self.force_sync.discard(name)
        pv_name = va_pv_name(va)
        pv = self.written_pvs.newest(pv_name, self.get_pv(pv_name)) if pv_name else None
        conflicts = 0
        while True:
            try:
                return await self._sync_va(va, pv, force)
            except _Stale:
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    log.info("VolumeAttachment keeps changing, retrying later", va=name)
                    return False
                try:
                    fresh = await self.port.get(VOLUME_ATTACHMENTS, name)
                    pv = await self._get_or_none(pv_name) if pv_name else None
                except ApiError as exc:
                    if exc.not_found:
                        return True
                    log.error("Failed to re-read the VolumeAttachment", va=name, error=str(exc))
                    return False
                va = fresh

    async def _get_or_none(self, pv_name: str) -> JsonDict | None:
        try:
            return await self.port.get(PERSISTENT_VOLUMES, pv_name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def _sync_va(self, va: JsonDict, pv: JsonDict | None, force: bool) -> bool:
        secrets: dict[str, str] | None = None
        secrets_error: str | None = None
        name = name_of(va)

        def decide(va: JsonDict, pv: JsonDict | None) -> a.VAAction:
            return decide_va(
                va,
                cfg=self.cfg,
                pv=pv,
                csinode=self.get_csinode(va_node_name(va)),
                now=self.now(),
                csinode_synced=self.csinode_synced(),
                secrets=secrets,
                secrets_error=secrets_error,
                force_sync=force,
            )

        for _ in range(MAX_STEPS):
            action = decide(va, pv)
            if rlog.v(4):
                log.info("Next step", va=name, action=type(action).__name__)
            if isinstance(action, a.Ignore):
                if rlog.v(5):
                    log.info("Nothing to do", va=name, reason=action.reason)
                return True
            if isinstance(action, a.WaitForCSINode):
                self.waiting_for_csinode.add(name)
                return True
            if isinstance(action, a.LoadSecrets):
                secrets, secrets_error = await self._load_secrets(action)
                continue
            if isinstance(action, a.AddPVFinalizer):
                ahead = self._after_pv_step(va, pv, action, decide)
                if isinstance(ahead, a.AddVAFinalizer):
                    assert pv is not None
                    # Two objects, no order needed (both land before the CSI call): one round
                    # trip instead of two.
                    both = await self._steps(va, pv, action, ahead)
                    if both is None:
                        return False
                    pv, va = both
                    continue
                new = await self._step(va, pv, action)
                if new is None:
                    return False
                pv = new
                continue
            if isinstance(action, a.AddVAFinalizer | a.AnnotateVA):
                new = await self._step(va, pv, action)
                if new is None:
                    return isinstance(action, a.AnnotateVA)  # best effort, no back-off
                va = new
                continue
            if isinstance(action, a.Attach):
                return await self._attach(va, pv, action)
            if isinstance(action, a.Detach):
                return await self._detach(va, pv, action)
            return await self._write(va, pv, action)
        log.error("Too many steps for one VolumeAttachment", va=name)
        return False

    async def _load_secrets(
        self, action: a.LoadSecrets
    ) -> tuple[dict[str, str] | None, str | None]:
        ref = action.ref
        try:
            secret = await self.port.get(SECRETS, ref.name, ref.namespace)
        except ApiError as exc:
            return None, _api_message(exc)
        try:
            return secret_data(secret), None
        except ValueError as exc:
            return None, str(exc)

    async def _attach(self, va: JsonDict, pv: JsonDict | None, action: a.Attach) -> bool:
        name = name_of(va)
        log.info("Attaching", va=name, volume=action.volume_handle, node_id=action.node_id)
        if rlog.v(5):
            log.info("ControllerPublishVolume request", request=Stripped(action.request))
        now = self.now
        try:
            resp = await self.conn.controller.ControllerPublishVolume(
                action.request, timeout=self.timeout
            )
        except grpc.RpcError as exc:
            outcome = attach_outcome(va, action, cfg=self.cfg, now=now(), error=exc, pv=pv)
            if isinstance(outcome, a.SetAttachError):
                log.info("Attach failed", va=name, error=outcome.message, final=outcome.final)
            await self._write(va, pv, outcome)
            return False
        ctx = dict(resp.publish_context)
        done = attach_outcome(va, action, cfg=self.cfg, now=now(), publish_context=ctx, pv=pv)
        ok = await self._write(va, pv, done)
        if ok:
            log.info("Attached", va=name)
        return ok

    async def _detach(self, va: JsonDict, pv: JsonDict | None, action: a.Detach) -> bool:
        name = name_of(va)
        log.info(
            "Detaching",
            va=name,
            volume=action.volume_handle,
            node_id=action.node_id,
            pv_gone=action.from_annotations,
        )
        error: BaseException | None = None
        try:
            await self.conn.controller.ControllerUnpublishVolume(
                action.request, timeout=self.timeout
            )
        except grpc.RpcError as exc:
            error = exc
        outcome = detach_outcome(va, action, cfg=self.cfg, now=self.now(), error=error, pv=pv)
        for step in outcome:
            if isinstance(step, a.MarkDetached) and self.written_vas.deleted(name):
                # Our finalizer was the last one: the API server has removed the VA, and the
                # status write would only get a 404 (Go sends it anyway).
                self._record(va, pv, step.events)
                continue
            if not await self._write(va, pv, step):
                return False
        if error is not None:
            return False
        log.info("Detached", va=name)
        return True

    # -- writes ----------------------------------------------------------------------------

    async def _patch(self, patch: Patch) -> JsonDict | None:
        """Send ``patch``; None when a 404 is acceptable. Raises _Stale on a failed guard."""
        is_pv = patch.kind == PERSISTENT_VOLUME
        try:
            new = await self.port.patch(
                PERSISTENT_VOLUMES if is_pv else VOLUME_ATTACHMENTS,
                patch.name,
                patch.body,
                patch_type=patch.type,
                subresource=patch.subresource,
            )
            (self.written_pvs if is_pv else self.written_vas).remember(new)
            return new
        except ApiError as exc:
            if exc.not_found and patch.ignore_not_found:
                return None
            if patch.type == "json" and (exc.conflict or exc.invalid):
                raise _Stale from exc
            raise

    async def _step(self, va: JsonDict, pv: JsonDict | None, action: Any) -> JsonDict | None:
        """Apply a step's patch; the updated object, or None after a failure was handled."""
        try:
            new = await self._patch(action.patch)
        except ApiError as exc:
            await self._failed(va, pv, action, exc)
            return None
        if new is None:  # 404 on a patch that allows it: nothing to continue with
            return None
        return new

    @staticmethod
    def _after_pv_step(
        va: JsonDict,
        pv: JsonDict | None,
        action: a.AddPVFinalizer,
        decide: Callable[[JsonDict, JsonDict | None], a.VAAction],
    ) -> a.VAAction | None:
        """What the next step would be once ``action`` has patched the PV (None: unknown)."""
        if pv is None:
            return None
        try:
            return decide(va, apply_json_patch(pv, action.patch.body))
        except ApiError:
            return None

    async def _steps(
        self, va: JsonDict, pv: JsonDict, add_pv: a.AddPVFinalizer, add_va: a.AddVAFinalizer
    ) -> tuple[JsonDict, JsonDict] | None:
        """The PV and VA finalizer steps at the same time: (PV, VA) as patched, or None.

        Raises:
            _Stale: either guard failed (after both requests finished).
        """
        results = await asyncio.gather(
            self._step(va, pv, add_pv), self._step(va, pv, add_va), return_exceptions=True
        )
        stale: _Stale | None = None
        for result in results:
            if isinstance(result, _Stale):
                stale = result
            elif isinstance(result, BaseException):
                raise result
        if stale is not None:
            raise stale
        new_pv, new_va = results
        if not isinstance(new_pv, dict) or not isinstance(new_va, dict):
            return None
        return new_pv, new_va

    async def _write(self, va: JsonDict, pv: JsonDict | None, action: Any) -> bool:
        """Apply a final write and record its events; True when the key can be forgotten."""
        try:
            await self._patch(action.patch)
        except ApiError as exc:
            await self._failed(va, pv, action, exc)
            return False
        self._record(va, pv, getattr(action, "events", ()))
        return not action.retry

    async def _failed(self, va: JsonDict, pv: JsonDict | None, action: Any, exc: ApiError) -> None:
        message = _api_message(exc)
        log.error("API write failed", va=name_of(va), action=type(action).__name__, error=message)
        failed = step_failed(va, action, message, cfg=self.cfg, now=self.now(), pv=pv)
        if failed is None:
            return
        try:
            await self._patch(failed.patch)
        except (ApiError, _Stale) as second:
            log.error("Failed to save the error", va=name_of(va), error=str(second))
            return
        self._record(va, pv, failed.events)

    # -- events ----------------------------------------------------------------------------

    def _record(self, va: Obj, pv: Obj | None, events: Iterable[ev.Event]) -> None:
        if self.recorder is None:
            return
        for event in events:
            if event.pods is None:
                self.recorder.event(
                    dict(va), event.type, event.reason, event.message, resource=VOLUME_ATTACHMENTS
                )
            elif not self.pods_forbidden and len(self._pod_lookups) < MAX_POD_LOOKUPS:
                task = asyncio.get_running_loop().create_task(self._record_on_pods(event))
                self._pod_lookups.add(task)
                task.add_done_callback(self._pod_lookups.discard)

    async def _record_on_pods(self, event: ev.Event) -> None:
        selector = event.pods
        assert selector is not None and self.recorder is not None
        try:
            page = await self.events_port.list(
                PODS, selector.namespace, field_selector=f"spec.nodeName={selector.node_name}"
            )
        except ApiError as exc:
            if exc.status == 403:
                self.pods_forbidden = True
                log.info("Not allowed to list pods: events go on VolumeAttachments only")
            else:
                log.info("Could not list pods for an event", error=_api_message(exc))
            return
        except Exception as exc:  # never let an event lookup fail a sync
            log.info("Could not list pods for an event", error=repr(exc))
            return
        for pod in page.get("items") or []:
            if ev.pod_uses_claim(pod, selector):
                self.recorder.event(pod, event.type, event.reason, event.message, resource=PODS)

    async def close(self) -> None:
        """Wait for pending pod lookups (bounded by the client's request timeout)."""
        if self._pod_lookups:
            await asyncio.gather(*self._pod_lookups, return_exceptions=True)

    # -- PersistentVolumes -----------------------------------------------------------------

    async def sync_pv(self, name: str) -> bool:
        """Remove the attacher finalizer from PV ``name`` when nothing needs it any more."""
        pv = self.written_pvs.newest(name, self.get_pv(name))
        for _ in range(MAX_CONFLICTS + 1):
            if pv is None:
                return True
            action = decide_pv(pv, cfg=self.cfg, vas=self.vas_of_pv(name))
            if isinstance(action, a.Ignore):
                if rlog.v(5):
                    log.info("PersistentVolume unchanged", pv=name, reason=action.reason)
                return True
            try:
                await self._patch(action.patch)
            except _Stale:
                try:
                    pv = await self._get_or_none(name)
                except ApiError as exc:
                    log.error("Failed to re-read the PersistentVolume", pv=name, error=str(exc))
                    return False
                continue
            except ApiError as exc:
                log.error(
                    "Failed to remove the PersistentVolume finalizer", pv=name, error=str(exc)
                )
                return False
            log.info("Removed finalizer from PersistentVolume", pv=name)
            return True
        return False
