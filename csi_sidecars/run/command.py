"""``csi-sidecars run --roles A,B [flags]``: the click command of the bundles.

The flags depend on the roles, so the command reads ``--roles`` from the raw arguments before
click parses them and adds the selected roles' flags (:mod:`csi_sidecars.run.flags`); ``--help``
then documents exactly those. Before it imports any role it applies the kind's process policy:
a node bundle gives ``ssl`` up and pauses the garbage collector until its loop runs, as the node
subcommands do (:mod:`csi_sidecars.runtime.startup`). Each role then configures itself from its
own flag values, as its subcommand would (a bad flag exits 1 naming the role), and the kind's
runner takes over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from csi_sidecars.run.flags import FlagTable, build
from csi_sidecars.run.registry import REGISTRY, BundledRole, Kind, load, resolve
from csi_sidecars.runtime import app, startup
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import GoCommand

log = rlog.get_logger("run")

_META = "csi_sidecars.run"
EXAMPLE = "node-driver-registrar,livenessprobe"
CONTROLLER_EXAMPLE = "provisioner,attacher,resizer,snapshotter"


def peek_roles(args: Sequence[str]) -> str | None:
    """The value of the last ``--roles`` / ``-roles`` in raw arguments, or None."""
    found: str | None = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name != "roles":
            continue
        if eq:
            found = value
        elif i + 1 < len(args):
            found = args[i + 1]
    return found


class RunCommand(GoCommand):
    """A command whose flags are the bundle's plus those of the roles named by ``--roles``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Remember the bundle's own parameters."""
        super().__init__(*args, **kwargs)
        self._own = list(self.params)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Add the selected roles' flags, then parse (Go-style argv included)."""
        self.params = list(self._own)
        spec = peek_roles(args)
        if spec is not None:
            kind, entries = resolve(spec)
            if not kind.tls and startup.forgo_tls():
                startup.pause_gc()
            adapters: list[BundledRole] = [load(entry.target or "") for entry in entries]
            table = build([(adapter.name, adapter.params()) for adapter in adapters])
            taken = {opt for param in self._own for opt in param.opts}
            self.params.extend(p for p in table.params() if not taken & set(p.opts))
            ctx.meta[_META] = (kind, adapters, table)
        return super().parse_args(ctx, args)


def _configure(adapters: list[BundledRole], table: FlagTable) -> list[tuple[BundledRole, Any]]:
    ctx = click.get_current_context()
    configured: list[tuple[BundledRole, Any]] = []
    for adapter in adapters:
        values = table.values_for(adapter.name, ctx)
        try:
            configured.append((adapter, adapter.configure(values)))
        except ConfigError as err:
            log.error(f"{adapter.name}: {err}", role=adapter.name)
            raise SystemExit(1) from None
        except SystemExit as exc:
            if exc.code:
                log.error(
                    f"Role {adapter.name} cannot start", role=adapter.name, exit_code=exc.code
                )
            raise
    return configured


_BUNDLEABLE = ", ".join(sorted(name for name, entry in REGISTRY.items() if entry.target))


@click.command(
    "run",
    cls=RunCommand,
    help="Run several roles in one process, e.g. --roles "
    f"{EXAMPLE} for a CSI driver's DaemonSet, or --roles {CONTROLLER_EXAMPLE} for its "
    f"controller Deployment. Roles: {_BUNDLEABLE}.",
    epilog="Each role's flags are --<role>.<flag> (e.g. --livenessprobe.http-endpoint=:9808); "
    "a flag given without the prefix goes to every selected role that has it, and a prefixed "
    "one wins for its role. Add --roles to --help to list the roles' flags. A role ending "
    "ends the process with its exit code.",
)
@click.option(
    "--roles",
    default=None,
    metavar="ROLE,ROLE",
    help=f"The roles to run, comma separated, e.g. {EXAMPLE}.",
)
@app.common_options
def command(roles: str | None, v: int, logging_format: str, version: bool, **_: Any) -> None:
    """Run the selected roles in this process."""
    app.start("run", v, logging_format, version)
    bundle: tuple[Kind, list[BundledRole], FlagTable] | None = click.get_current_context().meta.get(
        _META
    )
    if bundle is None:
        raise click.UsageError(f"--roles is required, e.g. --roles {EXAMPLE}")
    kind, adapters, table = bundle
    configured = _configure(adapters, table)
    runner = load(kind.runner or "")
    app.run(lambda stop: runner(configured, stop))
