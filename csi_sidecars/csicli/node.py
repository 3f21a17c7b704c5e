"""``csi-sidecars csi node``: the Node service (stage, publish, stats, expand, info).

Paths are sent as given; the driver resolves them in its own mount namespace, so when it runs in
a container they must be paths the driver sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from csi_sidecars.csicli import tables
from csi_sidecars.csicli.controller import VOLUME_ID, capacity_range, default_cap, size_options
from csi_sidecars.csicli.options import (
    EPILOG,
    F,
    global_options,
    map_option,
    merge_maps,
    request_file_option,
    secrets_options,
    single_cap_option,
)


def _runner() -> Any:
    from csi_sidecars.csicli import runner

    return runner


def _staging(required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--staging-path",
        metavar="PATH",
        help="staging_target_path" + (" (required)." if required else "."),
    )


@click.group("node", epilog=EPILOG)
def group() -> None:
    """Node service: stage, publish, stats, expand, node info."""


@group.command("stage", epilog=EPILOG)
@click.argument("volume_id", required=False)
@_staging(required=True)
@single_cap_option
@map_option("--pub-context", "Publish context from ControllerPublishVolume, repeatable.")
@map_option("--vol-context", "Volume context from CreateVolume, repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def stage(
    ctx: click.Context,
    /,
    volume_id: str | None,
    staging_path: str | None,
    cap: dict[str, Any] | None,
    pub_context: tuple[dict[str, str], ...],
    vol_context: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """NodeStageVolume VOLUME_ID --staging-path PATH."""
    fields = {
        "volume_id": volume_id,
        "staging_target_path": staging_path,
        "volume_capability": cap,
        "publish_context": merge_maps(pub_context),
        "volume_context": merge_maps(vol_context),
    }
    _runner().run_unary(
        ctx,
        "node",
        "NodeStageVolume",
        fields,
        defaults=default_cap(),
        required=[VOLUME_ID, ("staging_target_path", "--staging-path")],
    )


@group.command("unstage", epilog=EPILOG)
@click.argument("volume_id", required=False)
@_staging(required=True)
@request_file_option
@global_options()
@click.pass_context
def unstage(
    ctx: click.Context, /, volume_id: str | None, staging_path: str | None, **_: Any
) -> None:
    """NodeUnstageVolume VOLUME_ID --staging-path PATH."""
    _runner().run_unary(
        ctx,
        "node",
        "NodeUnstageVolume",
        {"volume_id": volume_id, "staging_target_path": staging_path},
        required=[VOLUME_ID, ("staging_target_path", "--staging-path")],
    )


@group.command("publish", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--target-path", metavar="PATH", help="target_path (required).")
@_staging()
@single_cap_option
@click.option("--read-only/--read-write", default=None, help="Publish read-only.")
@map_option("--pub-context", "Publish context from ControllerPublishVolume, repeatable.")
@map_option("--vol-context", "Volume context from CreateVolume, repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def publish(
    ctx: click.Context,
    /,
    volume_id: str | None,
    target_path: str | None,
    staging_path: str | None,
    cap: dict[str, Any] | None,
    read_only: bool | None,
    pub_context: tuple[dict[str, str], ...],
    vol_context: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """NodePublishVolume VOLUME_ID --target-path PATH [--staging-path PATH]."""
    fields = {
        "volume_id": volume_id,
        "target_path": target_path,
        "staging_target_path": staging_path,
        "volume_capability": cap,
        "readonly": read_only,
        "publish_context": merge_maps(pub_context),
        "volume_context": merge_maps(vol_context),
    }
    _runner().run_unary(
        ctx,
        "node",
        "NodePublishVolume",
        fields,
        defaults=default_cap(),
        required=[VOLUME_ID, ("target_path", "--target-path")],
    )


@group.command("unpublish", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--target-path", metavar="PATH", help="target_path (required).")
@request_file_option
@global_options()
@click.pass_context
def unpublish(
    ctx: click.Context, /, volume_id: str | None, target_path: str | None, **_: Any
) -> None:
    """NodeUnpublishVolume VOLUME_ID --target-path PATH."""
    _runner().run_unary(
        ctx,
        "node",
        "NodeUnpublishVolume",
        {"volume_id": volume_id, "target_path": target_path},
        required=[VOLUME_ID, ("target_path", "--target-path")],
    )


@group.command("info", epilog=EPILOG)
@global_options()
@click.pass_context
def info(ctx: click.Context, /, **_: Any) -> None:
    """NodeGetInfo: node ID, volume limit, topology."""
    _runner().run_unary(ctx, "node", "NodeGetInfo", {}, table=tables.node_info)


@group.command("caps", epilog=EPILOG)
@global_options()
@click.pass_context
def caps(ctx: click.Context, /, **_: Any) -> None:
    """NodeGetCapabilities."""
    _runner().run_unary(ctx, "node", "NodeGetCapabilities", {}, table=tables.capabilities)


@group.command("stats", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--volume-path", metavar="PATH", help="A path where the volume is published.")
@_staging()
@request_file_option
@global_options()
@click.pass_context
def stats(
    ctx: click.Context,
    /,
    volume_id: str | None,
    volume_path: str | None,
    staging_path: str | None,
    **_: Any,
) -> None:
    """NodeGetVolumeStats VOLUME_ID --volume-path PATH: usage and condition."""
    fields = {
        "volume_id": volume_id,
        "volume_path": volume_path,
        "staging_target_path": staging_path,
    }
    _runner().run_unary(
        ctx,
        "node",
        "NodeGetVolumeStats",
        fields,
        required=[VOLUME_ID, ("volume_path", "--volume-path")],
        table=tables.stats,
    )


@group.command("expand", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--volume-path", metavar="PATH", help="A path where the volume is published.")
@_staging()
@size_options
@single_cap_option
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def expand(
    ctx: click.Context,
    /,
    volume_id: str | None,
    volume_path: str | None,
    staging_path: str | None,
    size: int | None,
    limit: int | None,
    cap: dict[str, Any] | None,
    **_: Any,
) -> None:
    """NodeExpandVolume VOLUME_ID --volume-path PATH [--size SIZE]."""
    fields = {
        "volume_id": volume_id,
        "volume_path": volume_path,
        "staging_target_path": staging_path,
        "capacity_range": capacity_range(size, limit),
        "volume_capability": cap,
    }
    _runner().run_unary(
        ctx,
        "node",
        "NodeExpandVolume",
        fields,
        required=[VOLUME_ID, ("volume_path", "--volume-path")],
        table=tables.node_expand,
    )
