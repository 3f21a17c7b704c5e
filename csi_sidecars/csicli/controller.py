"""``csi-sidecars csi controller``: the volume RPCs of the Controller service.

The snapshot RPCs of the same service are added to this group by
:mod:`csi_sidecars.csicli.snapshots`. Each command maps its flags onto request fields; anything
the flags cannot express goes in a request file (``-f``).
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli import arguments, tables
from csi_sidecars.csicli.options import (
    EPILOG,
    SIZE,
    TOPOLOGY,
    F,
    caps_option,
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


def default_caps() -> dict[str, Any]:
    """Request defaults for calls with ``volume_capabilities``."""
    return {"volume_capabilities": [arguments.parse_capability(arguments.DEFAULT_CAPABILITY)]}


def default_cap() -> dict[str, Any]:
    """Request defaults for calls with one ``volume_capability``."""
    return {"volume_capability": arguments.parse_capability(arguments.DEFAULT_CAPABILITY)}


def capacity_range(size: int | None, limit: int | None) -> dict[str, int] | None:
    """A ``CapacityRange`` from ``--size`` / ``--limit``; None when neither was given."""
    out = {}
    if size is not None:
        out["required_bytes"] = size
    if limit is not None:
        out["limit_bytes"] = limit
    return out or None


def size_options(func: F) -> F:
    """``--size`` (required_bytes) and ``--limit`` (limit_bytes)."""
    func = click.option("--limit", type=SIZE, help="capacity_range.limit_bytes, e.g. 10Gi.")(func)
    return click.option(
        "--size", type=SIZE, help="capacity_range.required_bytes, e.g. 5Gi, 100M, 4096."
    )(func)


VOLUME_ID = ("volume_id", "VOLUME_ID (or volume_id in -f)")


@click.group("controller", epilog=EPILOG)
def group() -> None:
    """Controller service: volumes, capacity, snapshots."""


@group.command("create-volume", epilog=EPILOG)
@click.argument("name", required=False)
@size_options
@caps_option
@map_option("--params", "Parameters (StorageClass parameters), repeatable.")
@map_option("--mutable-params", "Mutable parameters (VolumeAttributesClass), repeatable.")
@click.option("--requisite", type=TOPOLOGY, multiple=True, help="A requisite topology, repeatable.")
@click.option("--preferred", type=TOPOLOGY, multiple=True, help="A preferred topology, repeatable.")
@click.option("--source-snapshot", metavar="ID", help="Create from this snapshot.")
@click.option("--source-volume", metavar="ID", help="Clone this volume.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def create_volume(
    ctx: click.Context,
    /,
    name: str | None,
    size: int | None,
    limit: int | None,
    caps: tuple[dict[str, Any], ...],
    params: tuple[dict[str, str], ...],
    mutable_params: tuple[dict[str, str], ...],
    requisite: tuple[dict[str, Any], ...],
    preferred: tuple[dict[str, Any], ...],
    source_snapshot: str | None,
    source_volume: str | None,
    **_: Any,
) -> None:
    """CreateVolume NAME."""
    if source_snapshot and source_volume:
        raise click.UsageError("give --source-snapshot or --source-volume, not both", ctx)
    source = None
    if source_snapshot:
        source = {"snapshot": {"snapshot_id": source_snapshot}}
    elif source_volume:
        source = {"volume": {"volume_id": source_volume}}
    topology = None
    if requisite or preferred:
        topology = {
            k: list(v) for k, v in (("requisite", requisite), ("preferred", preferred)) if v
        }
    fields = {
        "name": name,
        "capacity_range": capacity_range(size, limit),
        "volume_capabilities": list(caps) or None,
        "parameters": merge_maps(params),
        "mutable_parameters": merge_maps(mutable_params),
        "volume_content_source": source,
        "accessibility_requirements": topology,
    }
    _runner().run_unary(
        ctx,
        "controller",
        "CreateVolume",
        fields,
        defaults=default_caps(),
        required=[("name", "NAME (or name in -f)")],
        table=tables.volume,
    )


@group.command("delete-volume", epilog=EPILOG)
@click.argument("volume_id", required=False)
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def delete_volume(ctx: click.Context, /, volume_id: str | None, **_: Any) -> None:
    """DeleteVolume VOLUME_ID."""
    _runner().run_unary(
        ctx, "controller", "DeleteVolume", {"volume_id": volume_id}, required=[VOLUME_ID]
    )


@group.command("publish", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--node-id", help="The node to publish to (NodeGetInfo's node_id).")
@single_cap_option
@click.option("--read-only/--read-write", default=None, help="Publish read-only.")
@map_option("--vol-context", "Volume context from CreateVolume, repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def publish(
    ctx: click.Context,
    /,
    volume_id: str | None,
    node_id: str | None,
    cap: dict[str, Any] | None,
    read_only: bool | None,
    vol_context: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """ControllerPublishVolume VOLUME_ID --node-id NODE; prints the publish context."""
    fields = {
        "volume_id": volume_id,
        "node_id": node_id,
        "volume_capability": cap,
        "readonly": read_only,
        "volume_context": merge_maps(vol_context),
    }
    _runner().run_unary(
        ctx,
        "controller",
        "ControllerPublishVolume",
        fields,
        defaults=default_cap(),
        required=[VOLUME_ID, ("node_id", "--node-id")],
    )


@group.command("unpublish", epilog=EPILOG)
@click.argument("volume_id", required=False)
@click.option("--node-id", help="The node to unpublish from; unset means every node.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def unpublish(ctx: click.Context, /, volume_id: str | None, node_id: str | None, **_: Any) -> None:
    """ControllerUnpublishVolume VOLUME_ID [--node-id NODE]."""
    _runner().run_unary(
        ctx,
        "controller",
        "ControllerUnpublishVolume",
        {"volume_id": volume_id, "node_id": node_id},
        required=[VOLUME_ID],
    )


@group.command("validate", epilog=EPILOG)
@click.argument("volume_id", required=False)
@caps_option
@map_option("--vol-context", "Volume context from CreateVolume, repeatable.")
@map_option("--params", "Parameters the volume was created with, repeatable.")
@map_option("--mutable-params", "Mutable parameters, repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def validate(
    ctx: click.Context,
    /,
    volume_id: str | None,
    caps: tuple[dict[str, Any], ...],
    vol_context: tuple[dict[str, str], ...],
    params: tuple[dict[str, str], ...],
    mutable_params: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """ValidateVolumeCapabilities VOLUME_ID; exits 1 when the driver does not confirm."""
    fields = {
        "volume_id": volume_id,
        "volume_capabilities": list(caps) or None,
        "volume_context": merge_maps(vol_context),
        "parameters": merge_maps(params),
        "mutable_parameters": merge_maps(mutable_params),
    }
    _runner().run_unary(
        ctx,
        "controller",
        "ValidateVolumeCapabilities",
        fields,
        defaults=default_caps(),
        required=[VOLUME_ID],
        table=tables.validate,
        verdict=lambda reply: 0 if reply.HasField("confirmed") else 1,
    )


def paging_options(func: F) -> F:
    """``--max-entries``, ``--starting-token`` and ``--all``."""
    func = click.option(
        "--all", "page_all", is_flag=True, help="Follow next_token and print every entry."
    )(func)
    func = click.option("--starting-token", help="Continue from this next_token.")(func)
    return click.option(
        "--max-entries", type=click.IntRange(min=0), help="Entries per page (0: driver decides)."
    )(func)


@group.command("list-volumes", epilog=EPILOG)
@paging_options
@request_file_option
@global_options()
@click.pass_context
def list_volumes(
    ctx: click.Context,
    /,
    max_entries: int | None,
    starting_token: str | None,
    page_all: bool,
    **_: Any,
) -> None:
    """ListVolumes (one page, or every page with --all)."""
    _runner().run_unary(
        ctx,
        "controller",
        "ListVolumes",
        {"max_entries": max_entries, "starting_token": starting_token},
        table=tables.volumes,
        page_all=page_all,
    )


@group.command("get-volume", epilog=EPILOG)
@click.argument("volume_id", required=False)
@request_file_option
@global_options()
@click.pass_context
def get_volume(ctx: click.Context, /, volume_id: str | None, **_: Any) -> None:
    """ControllerGetVolume VOLUME_ID: the volume, where it is published, its condition."""
    _runner().run_unary(
        ctx,
        "controller",
        "ControllerGetVolume",
        {"volume_id": volume_id},
        required=[VOLUME_ID],
        table=tables.volume,
    )


@group.command("get-capacity", epilog=EPILOG)
@caps_option
@map_option("--params", "Parameters (StorageClass parameters), repeatable.")
@click.option("--topology", type=TOPOLOGY, help="Accessible topology, e.g. zone=a.")
@request_file_option
@global_options()
@click.pass_context
def get_capacity(
    ctx: click.Context,
    /,
    caps: tuple[dict[str, Any], ...],
    params: tuple[dict[str, str], ...],
    topology: dict[str, Any] | None,
    **_: Any,
) -> None:
    """GetCapacity: available capacity, optionally for capabilities, parameters, topology."""
    fields = {
        "volume_capabilities": list(caps) or None,
        "parameters": merge_maps(params),
        "accessible_topology": topology,
    }
    _runner().run_unary(ctx, "controller", "GetCapacity", fields, table=tables.capacity)


@group.command("caps", epilog=EPILOG)
@global_options()
@click.pass_context
def caps(ctx: click.Context, /, **_: Any) -> None:
    """ControllerGetCapabilities."""
    _runner().run_unary(
        ctx, "controller", "ControllerGetCapabilities", {}, table=tables.capabilities
    )


@group.command("expand", epilog=EPILOG)
@click.argument("volume_id", required=False)
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
    size: int | None,
    limit: int | None,
    cap: dict[str, Any] | None,
    **_: Any,
) -> None:
    """ControllerExpandVolume VOLUME_ID --size SIZE."""
    fields = {
        "volume_id": volume_id,
        "capacity_range": capacity_range(size, limit),
        "volume_capability": cap,
    }
    _runner().run_unary(
        ctx,
        "controller",
        "ControllerExpandVolume",
        fields,
        required=[VOLUME_ID, ("capacity_range", "--size")],
        table=tables.expand,
    )


@group.command("modify", epilog=EPILOG)
@click.argument("volume_id", required=False)
@map_option("--mutable-params", "The mutable parameters to apply, repeatable.")
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def modify(
    ctx: click.Context,
    /,
    volume_id: str | None,
    mutable_params: tuple[dict[str, str], ...],
    **_: Any,
) -> None:
    """ControllerModifyVolume VOLUME_ID --mutable-params K=V."""
    fields = {"volume_id": volume_id, "mutable_parameters": merge_maps(mutable_params)}
    _runner().run_unary(
        ctx,
        "controller",
        "ControllerModifyVolume",
        fields,
        required=[VOLUME_ID, ("mutable_parameters", "--mutable-params")],
    )
