"""What a controller role's ``setup`` receives: the options, the driver, the API and factories.

:class:`ControllerContext` is built by :func:`~csi_sidecars.controller.runner.run_controller`;
roles declare their informers and queues on it and get the driver's capabilities (read once),
the Kubernetes port, the event recorder and the metrics registry from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.connection import (
    DEFAULT_TIMEOUT,
    Connection,
)
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.informer import Informer
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import Resource
from csi_sidecars.kube.sharedinformer import InformerHub
from csi_sidecars.kube.store import Indexer
from csi_sidecars.kube.workqueue import ExponentialBackoff, WorkQueue
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime import startup
from csi_sidecars.runtime.metrics import Registry

if TYPE_CHECKING:
    from csi_sidecars.runtime.http import Handler, Request, Response

log = rlog.get_logger("controller")

T = TypeVar("T")

Lead = Callable[[], Awaitable[Any]]
"""What a role runs while it leads: typically its queues' ``run`` calls, gathered."""

Setup = Callable[["ControllerContext"], "Awaitable[Lead] | Lead"]

EVENT_FLUSH_TIMEOUT = 2.0


@dataclass(slots=True)
class ControllerOptions:
    """The flags every controller role has, plus a few per-role settings.

    Attributes:
        role: our role name (``attacher``): logs and the User-Agent.
        event_component: ``source.component`` of the events the role records.
        csi_address: ``--csi-address``.
        timeout: ``--timeout``: each Probe, and the identity/capability calls.
        http_endpoint: ``--http-endpoint`` (empty: no HTTP server).
        metrics_address: ``--metrics-address`` (deprecated; used when set).
        metrics_path: ``--metrics-path``.
        max_grpc_log_length: ``--max-grpc-log-length``.
        connect_timeout: how long to wait for the driver socket (None: forever).
        drain_timeout: on SIGTERM, how long workers may finish the keys they hold.
        metrics_with_migration: give ``csi_sidecar_operations_seconds`` the ``migrated`` label.
        needs_driver: False for a role that makes no CSI calls (the snapshot-controller): no
            ``--csi-address`` connection, no probe; ``ctx.driver`` is ``DriverInfo("")`` and
            ``ctx.conn`` raises. Everything else (client, events, HTTP, leader election,
            informers, drain) is the same.
    """

    role: str
    event_component: str
    csi_address: str = "/run/csi/socket"
    timeout: float = 15.0
    http_endpoint: str = ""
    metrics_address: str = ""
    metrics_path: str = "/metrics"
    max_grpc_log_length: int = -1
    connect_timeout: float | None = DEFAULT_TIMEOUT
    drain_timeout: float = 30.0
    metrics_with_migration: bool = False
    needs_driver: bool = True

    @property
    def http_address(self) -> str:
        """``--metrics-address`` when set, else ``--http-endpoint``."""
        return self.metrics_address or self.http_endpoint


def release_on_exit(kube: KubeOptions, gate: bool) -> None:
    """Combine ``--leader-election-release-on-stop`` with Go's ``ReleaseLeaderElectionOnExit`` gate.

    Ours defaults to releasing the Lease on SIGTERM; the Go sidecars only do with the gate.
    The Lease is released when either asks for it: the gate keeps its Go meaning, and
    ``--leader-election-release-on-stop=false`` gives Go's default behaviour (no release)
    unless the gate is on.
    """
    kube.release_on_stop = kube.release_on_stop or gate


async def unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``aw`` unless ``stop`` is set first: (True, result) or (False, None)."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        finished = task.done()
        if not finished:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return (True, task.result()) if finished else (False, None)


async def _healthz(_: Request) -> Response:
    from csi_sidecars.runtime.http import Response

    return Response(text="ok")


@dataclass(slots=True)
class _Registered:
    informer: Informer
    wait: bool


class ControllerContext:
    """What a role's ``setup`` gets: the driver, the API, metrics, and factories.

    Attributes:
        options: the common options.
        driver: the driver's name and capabilities.
        conn: the driver connection (CSI metrics and logging installed); raises
            ``RuntimeError`` for a role run with ``needs_driver=False``.
        port: the Kubernetes port (throttled by ``--kube-api-qps`` / ``--kube-api-burst``).
        metrics: the CSI metrics; ``metrics.registry`` also holds the work-queue metrics.
        recorder: the event recorder (component ``options.event_component``). It writes through
            a client of its own with its own ``--kube-api-qps`` / ``--kube-api-burst`` budget,
            so events never delay attach or provisioning writes.
        events_port: that client (also for reads made only to place events, e.g. pod lists).
        stop: set on SIGTERM/SIGINT.
        stopping: set when the role must wind down (queues are shut down at the same time);
            loops of the role other than queue workers should end when it is set (see
            :meth:`until_stopping`).
        healthz: the ``/healthz`` handler; setup may replace the default (200 ``ok``) with one
            that reports the role's own state.
    """

    def __init__(
        self,
        options: ControllerOptions,
        driver: DriverInfo,
        conn: Connection | None,
        port: KubePort,
        metrics: CSIMetrics,
        recorder: EventRecorder,
        stop: asyncio.Event,
        events_port: KubePort | None = None,
    ) -> None:
        """Create the context (done by :func:`run_controller`)."""
        self.options = options
        self.driver = driver
        self._conn = conn
        self.port = port
        self.metrics = metrics
        self.recorder = recorder
        self.events_port = events_port or port
        self.stop = stop
        self.stopping = asyncio.Event()
        self._informers: list[_Registered] = []
        self._queues: list[WorkQueue] = []
        self._on_shutdown: list[Callable[[], Awaitable[Any]]] = []
        self.healthz: Handler = _healthz
        #: Where :meth:`informer` gets its informers in a bundle (``csi-sidecars run``): views
        #: of informers the process's roles share. None: an informer of the role's own.
        self.shared_informers: InformerHub | None = None

    @property
    def conn(self) -> Connection:
        """The driver connection (not for roles run with ``needs_driver=False``)."""
        if self._conn is None:
            raise RuntimeError(f"{self.options.role}: this role has no driver connection")
        return self._conn

    @property
    def registry(self) -> Registry:
        """The Prometheus registry served on ``--metrics-path``."""
        return self.metrics.registry

    @property
    def informers(self) -> list[Informer]:
        """The informers declared so far."""
        return [r.informer for r in self._informers]

    @property
    def queues(self) -> list[WorkQueue]:
        """The queues declared so far."""
        return list(self._queues)

    def informer(
        self,
        resource: Resource,
        *,
        fields: Sequence[str] | None = None,
        resync: float = 0.0,
        indexers: Mapping[str, Indexer] | None = None,
        wait_for_sync: bool = True,
        **kwargs: Any,
    ) -> Informer:
        """Declare an informer; it starts once leading, before ``lead()``.

        Args:
            resource: what to list and watch.
            fields: field paths to keep in the cache (None: whole objects).
            resync: seconds between resyncs (0: none).
            indexers: secondary indexes.
            wait_for_sync: ``lead()`` starts only after this informer's first list (set False
                for caches the role can do without at first, and check ``has_synced()``).
            **kwargs: further :class:`~csi_sidecars.kube.informer.Informer` arguments.
        """
        args: dict[str, Any] = {"fields": fields, "resync_period": resync, "indexers": indexers}
        inf: Informer
        if self.shared_informers is not None:
            inf = self.shared_informers.informer(self.port, resource, **args, **kwargs)
        else:
            inf = Informer(self.port, resource, **args, **kwargs)
        # A deleted object's event state (aggregation, spam filter) goes with it.
        inf.observe_deletes(functools.partial(self.recorder.forget, resource=resource))
        self._informers.append(_Registered(inf, wait_for_sync))
        return inf

    def queue(self, name: str, *, start: float, maximum: float) -> WorkQueue:
        """Declare a work queue with exponential back-off ``start`` .. ``maximum`` and metrics."""
        q = WorkQueue(name, backoff=ExponentialBackoff(start, maximum), registry=self.registry)
        self._queues.append(q)
        return q

    def on_shutdown(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run ``await callback()`` on a clean stop, after leading ended, before events flush.

        Callbacks run in the order they were added, also in a standby that never led, and not
        when the role fails. They should bound their own time and handle their own errors.
        """
        self._on_shutdown.append(callback)

    async def run_shutdown_callbacks(self) -> None:
        """Await the :meth:`on_shutdown` callbacks (done by :func:`run_controller`)."""
        for callback in self._on_shutdown:
            await callback()

    async def until_stopping(self, aw: Awaitable[Any]) -> None:
        """Await ``aw`` until :attr:`stopping` is set, then cancel it.

        For a ``lead()`` (or part of one) that is a loop rather than queue workers, so that it
        ends as soon as the role winds down instead of at the end of ``drain_timeout``.
        """
        await unless_stopped(aw, self.stopping)

    def shutdown(self) -> None:
        """Set :attr:`stopping` and shut every queue down (workers finish their current keys)."""
        self.stopping.set()
        for q in self._queues:
            q.shutdown()

    async def wait_for_sync(self) -> None:
        """Wait until every informer declared with ``wait_for_sync`` has synced."""
        for reg in self._informers:
            if reg.wait:
                await reg.informer.wait_for_sync()

    async def run_leading(self, lead: Lead) -> None:
        """Start the informers, wait for their sync, run ``lead()``; drain when cancelled.

        ``lead()`` runs in a task of its own, shielded from cancellation: when leadership ends
        (SIGTERM), the queues are shut down and the workers get ``drain_timeout`` seconds to
        finish the keys they hold before ``lead()`` is cancelled. Informers stop last.
        """
        # The initial lists make no reference cycles, only many long-lived objects: the
        # collector is paused while they arrive, and what they left is then frozen out of
        # every later full collection (each would walk the whole cache otherwise).
        paused = gc.isenabled()
        gc.disable()
        tasks = [asyncio.create_task(r.informer.run()) for r in self._informers]
        try:
            try:
                await self.wait_for_sync()
            finally:
                if paused:
                    gc.freeze()
                    gc.enable()
                startup.release_freed()  # the decoded pages of the initial lists
            if tasks:
                log.info("Caches synced, starting workers", role=self.options.role)
            inner = asyncio.ensure_future(lead())
            try:
                await asyncio.shield(inner)
            except asyncio.CancelledError:
                await self._drain(inner)
                raise
        finally:
            self.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, inner: asyncio.Future[Any]) -> None:
        self.shutdown()
        busy = sum(len(q.processing) for q in self._queues)
        log.info("Stopping workers", role=self.options.role, in_flight=busy)
        done, _ = await asyncio.wait({inner}, timeout=self.options.drain_timeout)
        if not done:
            log.warning("Workers did not finish in time, cancelling", role=self.options.role)
            inner.cancel()
            await asyncio.gather(inner, return_exceptions=True)
        elif not inner.cancelled() and inner.exception() is not None:
            log.error("Workers failed while stopping", error=repr(inner.exception()))
