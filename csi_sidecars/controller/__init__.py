"""Plumbing shared by the controller roles (attacher, provisioner, resizer, snapshotter,
cluster-driver-registrar).

Every controller sidecar starts the same way; :func:`~.runner.run_controller` does it once:

1. load the Kubernetes client configuration (fail fast on a bad ``--kubeconfig``);
2. connect to the driver (``--csi-address``; a lost connection exits 1, as in Go), probe until
   it is ready (each probe bounded by ``--timeout``), read its name and capabilities (skipped
   for a role that makes no CSI calls: ``ControllerOptions(needs_driver=False)``);
3. set the ``driver_name`` of the CSI metrics;
4. build the Kubernetes client, a second client for events (its own QPS budget, so events never
   delay the role's writes) with an event recorder on it, and call the role's ``setup(ctx)``
   with a :class:`~.runner.ControllerContext` (driver info, ``port``, ``events_port``,
   ``recorder``, metrics registry); setup (plain or async) declares informers and queues
   through the context and returns the role's ``lead()``; it may also replace the ``/healthz``
   handler (``ctx.healthz``, before the HTTP server starts) and register ``ctx.on_shutdown``
   callbacks. A role whose ``lead()`` is a loop rather than queue workers wraps it in
   ``ctx.until_stopping(...)`` so it ends as soon as the role winds down. Then start the HTTP
   server when ``--http-endpoint`` / ``--metrics-address`` is set (``--metrics-path`` with the
   CSI and work-queue metrics, ``/healthz``, and ``/healthz/leader-election`` under leader
   election; every route is registered before the server starts);
5. under leader election (``KubeOptions.run``), once leading: start the informers, wait until
   every one of them has synced, then run ``lead()``;
6. on SIGTERM: shut the queues down, let the workers finish the keys they hold (at most
   ``drain_timeout``), stop the informers, release the lease (``--leader-election-release-on-
   stop``), run the ``on_shutdown`` callbacks, flush events, stop the HTTP server, close the
   connection; exit 0.

Usage in a role::

    async def setup(ctx: ControllerContext) -> Lead:
        vas = ctx.informer(VOLUME_ATTACHMENTS, fields=[...], resync=flags.resync)
        queue = ctx.queue("csi-attacher-va", start=1.0, maximum=300.0)
        vas.add_handlers(on_add=lambda va: queue.add(name_of(va)))
        return lambda: queue.run(sync_va, workers=10)

    code = await run_controller(options, kube, stop, lock_name=lambda d: "...", setup=setup)

Public API: ``ControllerOptions``, ``ControllerContext``, ``Lead``, ``run_controller``,
``release_on_exit(kube, gate)`` (:mod:`.context`); ``DriverInfo``, ``StartupError``,
``read_driver_info`` (:mod:`.driver`).
"""

from csi_sidecars.controller.context import (
    ControllerContext,
    ControllerOptions,
    Lead,
    release_on_exit,
)
from csi_sidecars.controller.driver import DriverInfo, StartupError, read_driver_info
from csi_sidecars.controller.runner import run_controller

__all__ = [
    "ControllerContext",
    "ControllerOptions",
    "DriverInfo",
    "Lead",
    "StartupError",
    "read_driver_info",
    "release_on_exit",
    "run_controller",
]
