"""The snapshot commands of ``csi-sidecars csi controller``.

CreateSnapshot, DeleteSnapshot, ListSnapshots (with ``--all``) and GetSnapshot (CSI v1.12's
alpha ``GET_SNAPSHOT``). They live in the Controller service, so :func:`register` adds them to
the ``controller`` group.
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli import tables
from csi_sidecars.csicli.controller import paging_options
from csi_sidecars.csicli.options import (
    EPILOG,
    global_options,
    map_option,
    merge_maps,
    request_file_option,
    secrets_options,
)

SNAPSHOT_ID = ("snapshot_id", "SNAPSHOT_ID (or snapshot_id in -f)")


def _runner() -> Any:
    from csi_sidecars.csicli import runner

    return runner


@click.command("create-snapshot", epilog=EPILOG)
@click.argument("name", required=False)
@click.option("--source-volume", metavar="ID", help="The volume to snapshot.")
@map_option("--params", "Parameters (VolumeSnapshotClass parameters), repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def create_snapshot(
    ctx: click.Context,
    /,
    name: str | None,
    source_volume: str | None,
    params: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """CreateSnapshot NAME --source-volume VOLUME_ID."""
    fields = {"name": name, "source_volume_id": source_volume, "parameters": merge_maps(params)}
    _runner().run_unary(
        ctx,
        "controller",
        "CreateSnapshot",
        fields,
        required=[("name", "NAME (or name in -f)"), ("source_volume_id", "--source-volume")],
        table=tables.snapshot,
    )


@click.command("delete-snapshot", epilog=EPILOG)
@click.argument("snapshot_id", required=False)
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def delete_snapshot(ctx: click.Context, /, snapshot_id: str | None, **_: Any) -> None:
    """DeleteSnapshot SNAPSHOT_ID."""
    _runner().run_unary(
        ctx, "controller", "DeleteSnapshot", {"snapshot_id": snapshot_id}, required=[SNAPSHOT_ID]
    )


@click.command("list-snapshots", epilog=EPILOG)
@click.option("--source-volume", metavar="ID", help="Only snapshots of this volume.")
@click.option("--snapshot-id", metavar="ID", help="Only this snapshot.")
@paging_options
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def list_snapshots(
    ctx: click.Context,
    /,
    source_volume: str | None,
    snapshot_id: str | None,
    max_entries: int | None,
    starting_token: str | None,
    page_all: bool,
    **_: Any,
) -> None:
    """ListSnapshots (one page, or every page with --all)."""
    fields = {
        "source_volume_id": source_volume,
        "snapshot_id": snapshot_id,
        "max_entries": max_entries,
        "starting_token": starting_token,
    }
    _runner().run_unary(
        ctx, "controller", "ListSnapshots", fields, table=tables.snapshots, page_all=page_all
    )


@click.command("get-snapshot", epilog=EPILOG)
@click.argument("snapshot_id", required=False)
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def get_snapshot(ctx: click.Context, /, snapshot_id: str | None, **_: Any) -> None:
    """GetSnapshot SNAPSHOT_ID (CSI v1.12, alpha)."""
    _runner().run_unary(
        ctx,
        "controller",
        "GetSnapshot",
        {"snapshot_id": snapshot_id},
        required=[SNAPSHOT_ID],
        table=tables.snapshot,
    )


def register(group: click.Group) -> None:
    """Add the snapshot commands to the ``controller`` group."""
    for cmd in (create_snapshot, delete_snapshot, list_snapshots, get_snapshot):
        group.add_command(cmd)
