"""``csi-sidecars csi``: call any CSI v1.12 RPC of a driver from the command line.

A developer tool in the spirit of csc (dell/gocsi), with the RPCs csc lacks
(ControllerGetVolume, ControllerModifyVolume, GetSnapshot, the GroupController and
SnapshotMetadata services), JSON/YAML/table output, spec checks on every reply, and
``csi check``, a short lifecycle smoke test. Normal click parsing, except that ``-v=5``,
``-o=json``, ``-e=ADDR`` and ``-f=FILE`` are accepted as Go and klog users type them.
Only click and the pure modules load for ``--help``; gRPC is imported when a call runs.
"""

from __future__ import annotations

from typing import Any

import click

from csi_sidecars import __version__
from csi_sidecars.csicli import check, controller, groups, identity, metadata, node, snapshots
from csi_sidecars.csicli.options import EPILOG, global_options

_SHORT_WITH_VALUE = ("-v=", "-o=", "-e=", "-f=")


def split_short_equals(args: list[str]) -> list[str]:
    """``-v=5`` -> ``-v 5`` (click would read the value as ``=5``); stops at ``--``."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith(_SHORT_WITH_VALUE):
            out.extend([arg[:2], arg[3:]])
        else:
            out.append(arg)
    return out


class _CsiGroup(click.Group):
    """The ``csi`` group: normalises ``-X=value`` before click parses anything."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, split_short_equals(args))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"csi-sidecars csi {__version__}")
        ctx.exit(0)


@click.group(
    "csi",
    cls=_CsiGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["--help", "-h"], "max_content_width": 100},
)
@global_options(group=True)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and exit.",
)
@click.pass_context
def command(ctx: click.Context, /, **settings: Any) -> None:
    """Call CSI RPCs of a driver: csi -e unix:///run/csi/csi.sock controller caps.

    Replies print as a table on a terminal and as JSON otherwise (-o json|yaml|table); every
    reply is checked against the CSI v1.12 spec and broken rules print a warning. Secrets come
    from --secrets-file or --secrets-env and never appear in any output or log line.
    """
    ctx.obj = settings


command.add_command(identity.group)
command.add_command(controller.group)
snapshots.register(controller.group)
command.add_command(node.group)
command.add_command(groups.group)
command.add_command(metadata.group)
command.add_command(check.command)
