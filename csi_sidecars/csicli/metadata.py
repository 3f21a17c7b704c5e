"""``csi-sidecars csi snapshot-metadata``: the SnapshotMetadata service's two streams.

Both print each stream message as it arrives (``-o json``: one JSON object per line), check the
Metadata Format rules across the whole stream (ascending, non-overlapping tuples, constant type,
capacity and, for FIXED_LENGTH, size) and, with ``--retries``, resume a broken stream just after
the last tuple received, as the spec describes.
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars.csicli.options import (
    EPILOG,
    SIZE,
    F,
    global_options,
    request_file_option,
    secrets_options,
)


def _runner() -> Any:
    from csi_sidecars.csicli import runner

    return runner


def _stream_options(func: F) -> F:
    func = click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Resume a stream that breaks with a retryable code this many times.",
    )(func)
    func = click.option(
        "--max-results",
        type=click.IntRange(min=0, max=2**31 - 1),
        help="Tuples per message (0: the driver decides).",
    )(func)
    return click.option(
        "--starting-offset", type=SIZE, help="Byte offset to start from (default 0)."
    )(func)


@click.group("snapshot-metadata", epilog=EPILOG)
def group() -> None:
    """SnapshotMetadata service: allocated and changed blocks of snapshots (streams)."""


@group.command("allocated", epilog=EPILOG)
@click.argument("snapshot_id", required=False)
@_stream_options
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def allocated(
    ctx: click.Context,
    /,
    snapshot_id: str | None,
    starting_offset: int | None,
    max_results: int | None,
    retries: int,
    **_: Any,
) -> None:
    """GetMetadataAllocated SNAPSHOT_ID: the allocated blocks of a snapshot."""
    fields = {
        "snapshot_id": snapshot_id,
        "starting_offset": starting_offset,
        "max_results": max_results,
    }
    _runner().run_stream(
        ctx,
        "GetMetadataAllocated",
        fields,
        required=[("snapshot_id", "SNAPSHOT_ID (or snapshot_id in -f)")],
        retries=retries,
    )


@group.command("delta", epilog=EPILOG)
@click.argument("base_snapshot_id", required=False)
@click.argument("target_snapshot_id", required=False)
@_stream_options
@secrets_options
@request_file_option
@global_options()
@click.pass_context
def delta(
    ctx: click.Context,
    /,
    base_snapshot_id: str | None,
    target_snapshot_id: str | None,
    starting_offset: int | None,
    max_results: int | None,
    retries: int,
    **_: Any,
) -> None:
    """GetMetadataDelta BASE_SNAPSHOT_ID TARGET_SNAPSHOT_ID: blocks changed between them."""
    fields = {
        "base_snapshot_id": base_snapshot_id,
        "target_snapshot_id": target_snapshot_id,
        "starting_offset": starting_offset,
        "max_results": max_results,
    }
    _runner().run_stream(
        ctx,
        "GetMetadataDelta",
        fields,
        required=[
            ("base_snapshot_id", "BASE_SNAPSHOT_ID"),
            ("target_snapshot_id", "TARGET_SNAPSHOT_ID"),
        ],
        retries=retries,
    )
