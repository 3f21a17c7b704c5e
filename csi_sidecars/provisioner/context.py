"""What the provisioner's executors share: settings, caches, API and driver access, outcomes.

The executors (:mod:`.provision`, :mod:`.cleanup`, :mod:`.delete`, :mod:`.clone_protection`)
are thin: they read the caches, call the pure core, and do the I/O it asks for through a
:class:`Context`. A sync returns the work queue's :data:`~csi_sidecars.kube.workqueue.Result`:
:data:`DONE`, :data:`RETRY` (back-off) or :class:`~csi_sidecars.kube.workqueue.After`.
CSI calls go through :meth:`Context.create_volume` / :meth:`Context.delete_volume`, each bounded
by ``--timeout``; their failures come back as a gRPC code (None when not a gRPC status) and Go's
error text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from csi_sidecars.csi.codes import GO_DEADLINE, error_code, format_error
from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.objects import Event
from csi_sidecars.kube.resources import JsonDict, Resource
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.provisioner.caches import Caches
from csi_sidecars.provisioner.journal import Journal
from csi_sidecars.provisioner.kubeio import KubeIO
from csi_sidecars.provisioner.metrics import ProvisionerMetrics
from csi_sidecars.provisioner.pv import CLEANUP_ATTEMPTS, build_pv
from csi_sidecars.provisioner.request import ProvisionerOptions, ProvisionPlan
from csi_sidecars.provisioner.states import delete_volume_succeeded
from csi_sidecars.provisioner.topology import TopologyPins

#: The key is finished for now (its back-off is reset).
DONE: Result = True
#: Try the key again with per-key exponential back-off.
RETRY: Result = False


@dataclass(frozen=True)
class Settings:
    """Flags and start-up facts the executors use (besides :class:`ProvisionerOptions`)."""

    identity: str
    timeout: float = 10.0
    strict_topology: bool = False
    immediate_topology: bool = True
    retry_interval_max: float = 300.0
    controller_publish_readonly: bool = False
    additional_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallResult:
    """The outcome of one CSI call: the response, or the error's code and Go text."""

    response: Any = None
    code: grpc.StatusCode | None = grpc.StatusCode.OK
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.code == grpc.StatusCode.OK and not self.error


def _failed(exc: BaseException) -> CallResult:
    return CallResult(None, error_code(exc), format_error(exc))


@dataclass
class Context:
    """Everything an executor needs; one per provisioner."""

    io: KubeIO
    journal: Journal
    caches: Caches
    csi: csi_pb2_grpc.ControllerAsyncStub
    opts: ProvisionerOptions
    settings: Settings
    recorder: EventRecorder
    metrics: ProvisionerMetrics
    pins: TopologyPins = field(default_factory=TopologyPins)
    monotonic: Callable[[], float] = time.monotonic

    @property
    def known_names(self) -> set[str]:
        """The driver name and any additional provisioner names."""
        return {self.opts.driver_name, *self.settings.additional_names}

    def event(self, obj: Mapping[str, Any], resource: Resource, event: Event | None) -> None:
        """Record ``event`` on ``obj`` (no-op for None)."""
        if event is not None:
            self.recorder.event(
                dict(obj), event.type, event.reason, event.message, resource=resource
            )

    def build_pv(
        self,
        plan: ProvisionPlan,
        pvc: Mapping[str, Any],
        sc: Mapping[str, Any],
        volume: csi_pb2.Volume,
        capacity_bytes: int,
    ) -> JsonDict:
        """:func:`~.pv.build_pv` with this provisioner's driver, identity and options."""
        return build_pv(
            plan,
            pvc,
            sc,
            volume,
            capacity_bytes,
            driver=self.opts.driver_name,
            identity=self.settings.identity,
            supports_topology=self.opts.supports_topology,
            controller_publish_readonly=self.settings.controller_publish_readonly,
            vac_gate=self.opts.vac_gate,
        )

    async def create_volume(self, request: csi_pb2.CreateVolumeRequest) -> CallResult:
        """CreateVolume with ``--timeout``."""
        try:
            resp = await self.csi.CreateVolume(request, timeout=self.settings.timeout)
        except Exception as exc:
            return _failed(exc)
        return CallResult(resp)

    async def delete_volume(
        self, volume_id: str, secrets: Mapping[str, str], timeout: float | None = None
    ) -> CallResult:
        """DeleteVolume with ``--timeout`` (or ``timeout``)."""
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id, secrets=dict(secrets))
        try:
            resp = await self.csi.DeleteVolume(
                request, timeout=self.settings.timeout if timeout is None else timeout
            )
        except Exception as exc:
            return _failed(exc)
        return CallResult(resp)

    async def delete_created_volume(self, volume_id: str, secrets: Mapping[str, str]) -> str | None:
        """Delete a volume we cannot use: up to 5 DeleteVolume tries within one ``--timeout``.

        Returns:
            None when deleted (NotFound counts), else the last error text.
        """
        deadline = self.monotonic() + self.settings.timeout
        last = GO_DEADLINE
        for _ in range(CLEANUP_ATTEMPTS):
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                break
            result = await self.delete_volume(volume_id, secrets, remaining)
            if delete_volume_succeeded(result.code):
                return None
            last = result.error
        return last


JsonMutation = Callable[[JsonDict], JsonDict | None]
