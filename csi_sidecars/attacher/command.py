"""``csi-sidecars attacher``: the command, a drop-in for external-attacher v4.12.

Flags are those of :mod:`csi_sidecars.attacher.flags` (the Go names and defaults). The start-up
sequence, HTTP server, leader election and graceful stop are
:func:`csi_sidecars.controller.run_controller`; the VolumeAttachment logic is
:mod:`csi_sidecars.attacher.setup` and :mod:`csi_sidecars.attacher.controller`.

Leader election: the Lease is ``external-attacher-leader-<driver>``. It is released on SIGTERM
when ``--leader-election-release-on-stop`` (ours, default true) or the Go feature gate
``ReleaseLeaderElectionOnExit`` asks for it; ``--leader-election-release-on-stop=false`` without
the gate keeps the Go default (the successor waits for the lease to expire).
"""

from __future__ import annotations

import asyncio

import click

from csi_sidecars.attacher import names
from csi_sidecars.attacher.flags import ROLE, AttacherFlags, attacher_options, validate
from csi_sidecars.attacher.setup import make_setup
from csi_sidecars.controller import ControllerOptions, release_on_exit, run_controller
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import GoCommand

log = rlog.get_logger("attacher")

#: How long in-flight attaches and detaches may take to finish after SIGTERM, beyond --timeout.
DRAIN_MARGIN = 5.0


@click.command(
    ROLE,
    cls=GoCommand,
    help="Attach and detach volumes for VolumeAttachments (external-attacher v4.12).",
)
@attacher_options
def command(*, flags: AttacherFlags) -> None:
    """Run the attacher role."""
    app.start(ROLE, flags.v, flags.logging_format, flags.version)
    try:
        validate(flags)
    except ConfigError as err:
        log.error(str(err))
        raise SystemExit(1) from None
    app.run(lambda stop: run_attacher(flags, stop))


def controller_options(flags: AttacherFlags) -> ControllerOptions:
    """The shared controller options for the attacher's flags."""
    if flags.http.metrics_address:
        log.warning("--metrics-address is deprecated, use --http-endpoint")
    return ControllerOptions(
        role=ROLE,
        event_component=names.EVENT_COMPONENT,
        csi_address=flags.csi.address,
        timeout=flags.csi.timeout,
        http_endpoint=flags.http.endpoint,
        metrics_address=flags.http.metrics_address,
        metrics_path=flags.http.metrics_path,
        max_grpc_log_length=flags.max_grpc_log_length,
        drain_timeout=flags.csi.timeout + DRAIN_MARGIN,
    )


async def run_attacher(flags: AttacherFlags, stop: asyncio.Event, **testing: object) -> int:
    """The role's main; returns the exit code. ``testing`` goes to ``run_controller``."""
    release_on_exit(flags.kube, flags.gates[names.GATE_RELEASE_LEADER_ELECTION_ON_EXIT])
    return await run_controller(
        controller_options(flags),
        flags.kube,
        stop,
        lock_name=lambda driver: names.lease_name(driver.name),
        setup=make_setup(flags),
        **testing,  # type: ignore[arg-type]
    )
