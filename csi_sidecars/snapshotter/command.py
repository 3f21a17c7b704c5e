"""``csi-sidecars snapshotter``: the command, a drop-in for csi-snapshotter v8.6.

Flags are :mod:`.flags` (Go's names and defaults). Start-up, the HTTP server (metrics,
``/healthz``, ``/healthz/leader-election``), leader election and the graceful stop are
:func:`csi_sidecars.controller.run_controller`; the contents' logic is :mod:`.controller`.

Leader election: the Lease is ``external-snapshotter-leader-<driver>`` (``/`` -> ``-``, then
sanitised). It is released on SIGTERM when ``--leader-election-release-on-stop`` (ours, on by
default) or the gate ``ReleaseLeaderElectionOnExit`` asks for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from csi_sidecars.controller import ControllerOptions, release_on_exit, run_controller
from csi_sidecars.kube.snapshots import GATE_RELEASE_LEADER_ELECTION_ON_EXIT
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import GoCommand
from csi_sidecars.snapshotter import names
from csi_sidecars.snapshotter.controller import make_setup
from csi_sidecars.snapshotter.flags import SnapshotterFlags, snapshotter_options, validate

log = rlog.get_logger(names.ROLE)

#: Seconds beyond --timeout that in-flight calls may take to finish after SIGTERM.
DRAIN_MARGIN = 5.0


@click.command(
    names.ROLE,
    cls=GoCommand,
    help="Create and delete snapshots for VolumeSnapshotContents (csi-snapshotter v8.6).",
)
@snapshotter_options
def command(*, flags: SnapshotterFlags) -> None:
    """Run the snapshotter role."""
    app.start(names.ROLE, flags.v, flags.logging_format, flags.version)
    try:
        node = validate(flags)
    except ConfigError as err:
        log.error(str(err))
        raise SystemExit(1) from None
    app.run(lambda stop: run_snapshotter(flags, stop, node=node))


def controller_options(flags: SnapshotterFlags) -> ControllerOptions:
    """The shared controller options for the snapshotter's flags."""
    if flags.http.metrics_address:
        log.warning("--metrics-address is deprecated, use --http-endpoint")
    return ControllerOptions(
        role=names.ROLE,
        # Set to "csi-snapshotter <driver>" once the driver name is known (setup).
        event_component="csi-snapshotter",
        csi_address=flags.csi.address,
        timeout=flags.csi.timeout,
        http_endpoint=flags.http.endpoint,
        metrics_address=flags.http.metrics_address,
        metrics_path=flags.http.metrics_path,
        drain_timeout=flags.csi.timeout + DRAIN_MARGIN,
    )


async def run_snapshotter(
    flags: SnapshotterFlags, stop: asyncio.Event, *, node: str = "", **testing: Any
) -> int:
    """The role's main; returns the exit code. ``testing`` (``port=``, ``conn=``) goes to
    :func:`~csi_sidecars.controller.run_controller`."""
    release_on_exit(flags.kube, flags.gates[GATE_RELEASE_LEADER_ELECTION_ON_EXIT])
    return await run_controller(
        controller_options(flags),
        flags.kube,
        stop,
        lock_name=lambda driver: names.lease_name(driver.name),
        setup=make_setup(flags, node),
        **testing,
    )
