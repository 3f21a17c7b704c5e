"""``csi-sidecars csi identity``: GetPluginInfo, GetPluginCapabilities and Probe."""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli import tables
from csi_sidecars.csicli.options import EPILOG, global_options


def _runner() -> Any:
    from csi_sidecars.csicli import runner

    return runner


@click.group("identity", epilog=EPILOG)
def group() -> None:
    """Identity service: plugin name, capabilities, readiness."""


@group.command("info", epilog=EPILOG)
@global_options()
@click.pass_context
def info(ctx: click.Context, /, **_: Any) -> None:
    """GetPluginInfo: the driver's name, version and manifest."""
    _runner().run_unary(ctx, "identity", "GetPluginInfo", {}, table=tables.fields)


@group.command("caps", epilog=EPILOG)
@global_options()
@click.pass_context
def caps(ctx: click.Context, /, **_: Any) -> None:
    """GetPluginCapabilities: the services and expansion modes the plugin offers."""
    _runner().run_unary(ctx, "identity", "GetPluginCapabilities", {}, table=tables.capabilities)


@group.command("probe", epilog=EPILOG)
@global_options()
@click.pass_context
def probe(ctx: click.Context, /, **_: Any) -> None:
    """Probe: whether the driver is ready (an unset ``ready`` means ready).

    Exits 1 when the driver answers ``ready: false``.
    """
    _runner().run_unary(ctx, "identity", "Probe", {}, table=tables.probe, verdict=_ready)


def _ready(reply: Any) -> int:
    return 1 if reply.HasField("ready") and not reply.ready.value else 0
