"""``csi-sidecars csi group``: the GroupController service (volume group snapshots)."""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli import tables
from csi_sidecars.csicli.options import (
    EPILOG,
    F,
    global_options,
    map_option,
    merge_maps,
    request_file_option,
    secrets_options,
)

GROUP_ID = ("group_snapshot_id", "GROUP_SNAPSHOT_ID (or group_snapshot_id in -f)")


def _runner() -> Any:
    from csi_sidecars.csicli import runner

    return runner


def _snapshot_ids(func: F) -> F:
    return click.option(
        "--snapshot-id",
        "snapshot_ids",
        multiple=True,
        metavar="ID",
        help="A member snapshot of the group, repeatable (the spec asks for all of them).",
    )(func)


@click.group("group", epilog=EPILOG)
def group() -> None:
    """GroupController service: volume group snapshots."""


@group.command("create", epilog=EPILOG)
@click.argument("name", required=False)
@click.option(
    "--source-volume",
    "source_volumes",
    multiple=True,
    metavar="ID",
    help="A volume to snapshot, repeatable.",
)
@map_option("--params", "Parameters (VolumeGroupSnapshotClass parameters), repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def create(
    ctx: click.Context,
    /,
    name: str | None,
    source_volumes: tuple[str, ...],
    params: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """CreateVolumeGroupSnapshot NAME --source-volume ID [--source-volume ID ...]."""
    fields = {
        "name": name,
        "source_volume_ids": list(source_volumes) or None,
        "parameters": merge_maps(params),
    }
    _runner().run_unary(
        ctx,
        "group_controller",
        "CreateVolumeGroupSnapshot",
        fields,
        required=[("name", "NAME (or name in -f)"), ("source_volume_ids", "--source-volume")],
        table=tables.group_snapshot,
    )


@group.command("delete", epilog=EPILOG)
@click.argument("group_snapshot_id", required=False)
@_snapshot_ids
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def delete(
    ctx: click.Context, /, group_snapshot_id: str | None, snapshot_ids: tuple[str, ...], **_: Any
) -> None:
    """DeleteVolumeGroupSnapshot GROUP_SNAPSHOT_ID --snapshot-id ID ..."""
    fields = {"group_snapshot_id": group_snapshot_id, "snapshot_ids": list(snapshot_ids) or None}
    _runner().run_unary(
        ctx, "group_controller", "DeleteVolumeGroupSnapshot", fields, required=[GROUP_ID]
    )


@group.command("get", epilog=EPILOG)
@click.argument("group_snapshot_id", required=False)
@_snapshot_ids
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def get(
    ctx: click.Context, /, group_snapshot_id: str | None, snapshot_ids: tuple[str, ...], **_: Any
) -> None:
    """GetVolumeGroupSnapshot GROUP_SNAPSHOT_ID [--snapshot-id ID ...]."""
    fields = {"group_snapshot_id": group_snapshot_id, "snapshot_ids": list(snapshot_ids) or None}
    _runner().run_unary(
        ctx,
        "group_controller",
        "GetVolumeGroupSnapshot",
        fields,
        required=[GROUP_ID],
        table=tables.group_snapshot,
    )


@group.command("caps", epilog=EPILOG)
@global_options()
@click.pass_context
def caps(ctx: click.Context, /, **_: Any) -> None:
    """GroupControllerGetCapabilities."""
    _runner().run_unary(
        ctx, "group_controller", "GroupControllerGetCapabilities", {}, table=tables.capabilities
    )
