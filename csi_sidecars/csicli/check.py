"""``csi-sidecars csi check``: a few-second lifecycle smoke test of a driver.

Not a replacement for csi-sanity: one volume through create, validate, publish, stage, node
publish, stats, the undo of each, a snapshot and delete, every call repeated once for
idempotency, with a PASS/WARN/FAIL/SKIP table. It touches only the objects it created and cleans
them up even when a step fails (see :mod:`csi_sidecars.csicli.lifecycle`).
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli import arguments
from csi_sidecars.csicli.options import (
    EPILOG,
    SIZE,
    caps_option,
    global_options,
    map_option,
    merge_maps,
    secrets_options,
)


@click.command("check", epilog=EPILOG)
@click.option("--size", type=SIZE, default="1Gi", show_default=True, help="Volume size.")
@caps_option
@map_option("--params", "CreateVolume parameters, repeatable.")
@click.option(
    "--node-endpoint",
    metavar="ADDRESS",
    help="The node plugin's socket when it is not the --endpoint one.",
)
@click.option("--node-id", help="Publish to this node instead of NodeGetInfo's node_id.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    help="Where staging and target paths go (a path the driver sees); default: a new "
    "temporary directory.",
)
@click.option("--no-snapshots", is_flag=True, help="Skip the snapshot steps.")
@secrets_options
@global_options()
@click.pass_context
def command(
    ctx: click.Context,
    /,
    size: int,
    caps: tuple[dict[str, Any], ...],
    params: tuple[dict[str, str], ...],
    node_endpoint: str | None,
    node_id: str | None,
    workdir: str | None,
    no_snapshots: bool,
    **_: Any,
) -> None:
    """Smoke-test a driver: one volume's lifecycle, idempotency, clean-up; exits 1 on a FAIL."""
    from csi_sidecars.csicli import checkrun

    try:
        secrets = arguments.load_secrets(
            ctx.params.get("secrets_file"), ctx.params.get("secrets_env")
        )
        node_target = arguments.normalize_endpoint(node_endpoint) if node_endpoint else None
    except arguments.ArgumentError as err:
        raise click.UsageError(str(err), ctx) from None
    opts = checkrun.CheckOptions(
        size=size,
        capabilities=list(caps) or [arguments.parse_capability(arguments.DEFAULT_CAPABILITY)],
        parameters=merge_maps(params) or {},
        secrets=secrets,
        workdir=workdir,
        node_id=node_id,
        snapshots=not no_snapshots,
    )
    checkrun.run(ctx, opts, node_target)
