"""What controller roles share when ``csi-sidecars run`` puts several of them in one process.

The bundle (``csi_sidecars/run/controller.py``) runs each role's own main, exactly as its
subcommand builds it, in a task of its own whose context carries that role's
:class:`RoleShare` (:func:`joined`). :func:`~csi_sidecars.controller.runner.run_controller`
looks for it and then, instead of building everything for itself:

* takes the driver connection of the role's ``--csi-address`` from the bundle: one connection
  per socket, dialled once, with ``GetPluginInfo`` and the capabilities read once
  (:meth:`ControllerBundle.driver`); each role still waits with its own timeout. Every CSI call
  is recorded in the metrics of the role that made it (:class:`RoutedMetrics`);
* declares its informers through the bundle's
  :class:`~csi_sidecars.kube.sharedinformer.InformerHub`: roles watching the same resource
  share one list+watch and one store, which keeps the union of their fields. The shared
  informer lists and watches through the client of the role that declared it first (that
  role's ``--kubeconfig``, permissions and ``--kube-api-qps``), which stays open until the
  bundle ends; each role keeps its own clients and rate limits, as each Go sidecar has its own;
* serves its HTTP routes through the bundle's host (one server per endpoint, as the node
  bundle does);
* waits, after its ``setup``, until every role of the bundle has declared its informers, so
  the shared ones know every field before their first list.

Leader election stays per role, with the role's own Lease name: a bundle and separately run
sidecars (ours or Go's) of the same driver never both lead a role.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from csi_sidecars.controller.driver import DriverInfo, read_driver_info
from csi_sidecars.csi.connection import (
    Connection,
    ConnectTimeoutError,
    LossPolicy,
    connect,
    normalize_address,
)
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.client import KubeClient
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.sharedinformer import InformerHub
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.httphost import HttpHost

log = rlog.get_logger("run")

#: The metrics of the role whose task is running (see :class:`RoutedMetrics`).
_ROLE_METRICS: contextvars.ContextVar[CSIMetrics | None] = contextvars.ContextVar(
    "csi_sidecars_role_metrics", default=None
)


class RoutedMetrics(CSIMetrics):
    """The metrics of a connection several roles share: each call goes to its caller's metrics.

    The caller is the role whose task (or a task it started) made the call; calls made outside
    any role are not recorded.
    """

    def __init__(self) -> None:
        """Create the router (its own registry stays empty)."""
        super().__init__(process_start_time=False)

    def record(self, method: str, err: BaseException | None, seconds: float) -> None:
        """Record the call in the calling role's metrics."""
        target = _ROLE_METRICS.get()
        if target is not None:
            target.record(method, err, seconds)


def record_calls_in(metrics: CSIMetrics) -> None:
    """Record this task's CSI calls (and those of tasks it starts later) in ``metrics``."""
    _ROLE_METRICS.set(metrics)


@dataclass
class _Driver:
    connecting: asyncio.Task[Connection]
    info: asyncio.Task[DriverInfo] | None = None


class ControllerBundle:
    """The parts the controller roles of one process share.

    Args:
        roles: the names of the bundled roles (each calls :meth:`setup_done` once).
        http: where the roles serve their HTTP routes (per role: :meth:`http_for`).
        hub_port: where the shared informers list and watch (None: through the client of the
            role that declared each first).
    """

    def __init__(
        self,
        roles: Iterable[str],
        http: dict[str, HttpHost] | None = None,
        hub_port: KubePort | None = None,
    ) -> None:
        """Create the shared parts; nothing is dialled before a role asks."""
        self.hub = InformerHub(hub_port)
        self.metrics = RoutedMetrics()
        self._http = http or {}
        self._drivers: dict[str, _Driver] = {}
        #: how many driver connections the bundle dialled (one per socket)
        self.connections = 0
        self._pending = set(roles)
        self.setups_done = asyncio.Event()
        if not self._pending:
            self.setups_done.set()
        self._stack = contextlib.AsyncExitStack()

    def http_for(self, role: str) -> HttpHost | None:
        """The HTTP host of ``role`` (None: the role binds its own servers)."""
        return self._http.get(role)

    async def connection(
        self, address: str, timeout: float | None, *, log_length: int
    ) -> Connection:
        """The shared connection to the driver at ``address``; waits at most ``timeout``.

        Raises:
            ConnectTimeoutError: when the driver did not answer within ``timeout``.
        """
        key = normalize_address(address)
        entry = self._drivers.get(key)
        if entry is None:
            task = asyncio.get_running_loop().create_task(
                connect(
                    address,
                    timeout=None,
                    metrics=self.metrics,
                    on_lost=LossPolicy.EXIT,
                    max_grpc_log_length=log_length,
                ),
                name=f"csi-connect {key}",
            )
            entry = self._drivers[key] = _Driver(task)
            self.connections += 1
        limit = timeout if timeout is not None and timeout > 0 else None
        try:
            return await asyncio.wait_for(asyncio.shield(entry.connecting), limit)
        except TimeoutError:
            raise ConnectTimeoutError(
                f"timed out after {limit:g}s waiting for the CSI driver at {address}"
            ) from None

    async def driver(self, conn: Connection, timeout: float) -> DriverInfo:
        """The driver's name and capabilities, read once per connection.

        Raises:
            StartupError: when the driver did not tell them.
        """
        entry = self._drivers[normalize_address(conn.address)]
        if entry.info is None:
            entry.info = asyncio.get_running_loop().create_task(read_driver_info(conn, timeout))
        return await asyncio.shield(entry.info)

    async def adopt(self, client: KubeClient) -> KubeClient:
        """Keep ``client`` open until the bundle closes (a role's clients: see the module)."""
        return await self._stack.enter_async_context(client)

    def setup_done(self, role: str) -> None:
        """``role`` has declared its informers (or ended); the last one releases the others."""
        self._pending.discard(role)
        if not self._pending:
            self.setups_done.set()

    async def close(self) -> None:
        """Stop the shared informers, close their client and the driver connections."""
        await self.hub.close()
        await self._stack.aclose()
        for entry in self._drivers.values():
            for task in (entry.info, entry.connecting):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if not entry.connecting.cancelled() and entry.connecting.exception() is None:
                await entry.connecting.result().close()
        self._drivers.clear()


@dataclass(frozen=True, slots=True)
class RoleShare:
    """One role's handle on its bundle."""

    bundle: ControllerBundle
    role: str


_SHARE: contextvars.ContextVar[RoleShare | None] = contextvars.ContextVar(
    "csi_sidecars_role_share", default=None
)


def current() -> RoleShare | None:
    """The bundle share of the running role (None: the role runs alone)."""
    return _SHARE.get()


@contextlib.contextmanager
def joined(bundle: ControllerBundle, role: str) -> Iterator[RoleShare]:
    """Within the block (in the role's own task), the role runs as part of ``bundle``."""
    share = RoleShare(bundle, role)
    token = _SHARE.set(share)
    try:
        yield share
    finally:
        _SHARE.reset(token)
        bundle.setup_done(role)
