"""The cluster-driver-registrar's executor: read the CSIDriver, act on the plan, repeat.

:class:`ClusterRegistrar` does the I/O around the pure decisions in
:mod:`csi_sidecars.registrar.cluster_spec`. Each :meth:`~ClusterRegistrar.sync_once` reads the
live CSIDriver, diffs it, and applies (server-side apply with a field manager, forced, so fields
someone else changed are taken back), refuses, or deletes and re-creates. :meth:`run` repeats it
every ``interval`` seconds, and sooner with back-off after a transient error.

A refusal (an immutable field differs) is logged as an error and recorded as a Warning event
once per distinct difference; later checks of the same difference stay quiet at ``-v<4``, so the
registrar never hammers the API server or floods events. A 422 from the API server on apply (an
immutable field the registrar did not know, a field an older server validates differently) is
treated the same way. Fields the API server silently drops (their feature gate is off) are
reported once and then left out of the comparison, so they cannot cause an apply every interval.
"""

from __future__ import annotations

import asyncio
import copy
import enum
from collections.abc import Callable

from csi_sidecars.kube import patch as kpatch
from csi_sidecars.kube.objects import Event
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import CSI_DRIVERS, ApiError, JsonDict
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("cluster-register")

FIELD_MANAGER = "csi-sidecars-cluster-driver-registrar"
DEFAULT_INTERVAL = 120.0
INITIAL_BACKOFF = 1.0

#: ``emit(obj, event_type, reason, message)`` records an event about ``obj``.
EventEmitter = Callable[[JsonDict, str, str, str], None]


class Outcome(enum.Enum):
    """The result of one sync."""

    CREATED = "created"
    IN_SYNC = "in-sync"
    CORRECTED = "corrected"
    RECREATED = "recreated"
    CONFLICT = "conflict"
    INVALID = "invalid"
    WAITING = "waiting"


#: Outcomes after which the next check waits the full interval (no back-off retry).
SETTLED = frozenset(
    {
        Outcome.CREATED,
        Outcome.IN_SYNC,
        Outcome.CORRECTED,
        Outcome.RECREATED,
        Outcome.CONFLICT,
        Outcome.INVALID,
    }
)


def _no_events(obj: JsonDict, event_type: str, reason: str, message: str) -> None:
    return None


class ClusterRegistrar:
    """Keeps one CSIDriver object as the driver and the flags want it."""

    def __init__(
        self,
        port: KubePort,
        desired: JsonDict,
        *,
        allow_recreate: bool = False,
        emit: EventEmitter = _no_events,
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        """Create the executor.

        Args:
            port: the Kubernetes port.
            desired: the CSIDriver from :func:`.cluster_spec.build_csidriver`.
            allow_recreate: delete and re-create the object when an immutable field differs.
            emit: event sink (e.g. ``EventRecorder.event`` with the CSIDriver resource).
            field_manager: the server-side apply field manager.
        """
        self.port = port
        self.desired = desired
        self.name: str = desired["metadata"]["name"]
        self.allow_recreate = allow_recreate
        self.emit = emit
        self.field_manager = field_manager
        #: Spec fields the API server dropped; no longer compared.
        self.ignored: set[str] = set()
        #: UID of the object last seen matching (or written); what delete-on-shutdown removes.
        self.synced_uid: str | None = None
        #: The last outcome, for health reporting.
        self.last_outcome: Outcome | None = None
        self._reported: str | None = None

    async def _get(self) -> JsonDict | None:
        try:
            return await self.port.get(CSI_DRIVERS, self.name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def _apply(self) -> JsonDict:
        body = copy.deepcopy(self.desired)
        applied = await kpatch.apply(self.port, CSI_DRIVERS, body, self.field_manager)
        self.synced_uid = (applied.get("metadata") or {}).get("uid") or self.synced_uid
        dropped = [f for f in cs.dropped_fields(self.desired, applied) if f not in self.ignored]
        if dropped:
            gates = sorted({cs.SPEC_FIELDS[f].feature_gate for f in dropped if f in cs.SPEC_FIELDS})
            log.warning(
                "The API server did not keep these CSIDriver fields; is their feature gate "
                "enabled? They are no longer compared",
                csidriver=self.name,
                fields=dropped,
                feature_gates=[g for g in gates if g],
            )
            self.ignored.update(dropped)
        return applied

    def _report_once(self, key: str, obj: JsonDict, event: Event) -> None:
        """Log an error and record ``event`` unless this exact problem was already reported."""
        if self._reported == key:
            if rlog.v(4):
                log.info("CSIDriver problem persists", csidriver=self.name, problem=event.message)
            return
        self._reported = key
        log.error(event.message, csidriver=self.name, reason=event.reason)
        self.emit(obj, event.type, event.reason, event.message)

    async def sync_once(self) -> Outcome:
        """Bring the CSIDriver in line once.

        Raises:
            ApiError: a transient API error (the caller retries with back-off).
        """
        live = await self._get()
        diff = cs.diff_csidriver(self.desired, live, self.ignored)
        decision = cs.plan(self.name, diff, self.allow_recreate)
        outcome = await self._execute(decision, diff, live)
        self.last_outcome = outcome
        if outcome not in (Outcome.CONFLICT, Outcome.INVALID):
            self._reported = None
        return outcome

    async def _execute(self, decision: cs.Plan, diff: cs.Diff, live: JsonDict | None) -> Outcome:
        if decision.step is cs.Step.NOTHING:
            if live is not None:
                self.synced_uid = self.synced_uid or (live.get("metadata") or {}).get("uid")
            if rlog.v(5):
                log.info("CSIDriver is up to date", csidriver=self.name)
            return Outcome.IN_SYNC
        if decision.step is cs.Step.WAIT:
            log.info(decision.message, csidriver=self.name)
            return Outcome.WAITING
        if decision.step is cs.Step.REFUSE:
            assert live is not None and decision.event is not None
            self._report_once("conflict:" + diff.describe(), live, decision.event)
            return Outcome.CONFLICT
        if decision.step is cs.Step.RECREATE:
            assert live is not None
            uid = (live.get("metadata") or {}).get("uid")
            log.warning(
                "Deleting CSIDriver to change immutable fields",
                csidriver=self.name,
                fields=diff.describe(conflicts_only=True),
            )
            try:
                await self.port.delete(CSI_DRIVERS, self.name, uid=uid)
            except ApiError as exc:
                if not exc.not_found:
                    raise
        try:
            applied = await self._apply()
        except ApiError as exc:
            if not exc.invalid:
                raise
            msg = f'The API server rejected CSIDriver "{self.name}": {exc.message}'
            target = live or self.desired
            self._report_once(
                "invalid:" + exc.message, target, Event("Warning", cs.REASON_APPLY_FAILED, msg)
            )
            return Outcome.INVALID
        assert decision.event is not None
        log.info(decision.message, csidriver=self.name)
        self.emit(applied, decision.event.type, decision.event.reason, decision.event.message)
        if decision.step is cs.Step.RECREATE:
            return Outcome.RECREATED
        return Outcome.CREATED if diff.kind is cs.DiffKind.MISSING else Outcome.CORRECTED

    async def run(
        self, interval: float = DEFAULT_INTERVAL, max_backoff: float | None = None
    ) -> None:
        """Sync now and then every ``interval`` seconds, until cancelled.

        A transient error (or a CSIDriver being deleted) retries sooner, with back-off from
        1 s doubling up to ``max_backoff`` (default ``interval``).
        """
        cap = max_backoff if max_backoff is not None else interval
        backoff = min(INITIAL_BACKOFF, cap)
        while True:
            try:
                outcome = await self.sync_once()
            except ApiError as exc:
                hint = " (check the RBAC rules of this identity)" if exc.status == 403 else ""
                log.error(f"Failed to sync CSIDriver{hint}", csidriver=self.name, error=str(exc))
                outcome = None
            except (OSError, TimeoutError) as exc:
                log.error("Failed to reach the API server", csidriver=self.name, error=repr(exc))
                outcome = None
            if outcome in SETTLED:
                backoff = min(INITIAL_BACKOFF, cap)
                await asyncio.sleep(interval)
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, cap)

    async def delete(self) -> bool:
        """Delete the CSIDriver last seen in sync (a uid precondition spares a newer object).

        Returns:
            Whether an object was deleted.
        """
        if self.synced_uid is None:
            log.info("Not deleting CSIDriver: it was never in sync", csidriver=self.name)
            return False
        try:
            await self.port.delete(CSI_DRIVERS, self.name, uid=self.synced_uid)
        except ApiError as exc:
            if exc.not_found:
                return False
            if exc.status == 409:
                log.warning(
                    "Not deleting CSIDriver: it was re-created by someone else", csidriver=self.name
                )
                return False
            raise
        log.info("Deleted CSIDriver", csidriver=self.name)
        return True
