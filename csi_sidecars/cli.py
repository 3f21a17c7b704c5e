"""The ``csi-sidecars`` command: one click group, one subcommand per role.

Each role module exposes a ``command`` built on :class:`csi_sidecars.runtime.flags.GoCommand`, so
Go-style argv (``-csi-address=/x``, ``-v=5``, ``--leader-election=true``) works unchanged.
Only roles that work are registered here. The node roles never speak TLS: before their module is
imported the process gives ``ssl`` up. Every long-running role pauses the garbage collector
while its modules are imported, until its event loop runs (:mod:`csi_sidecars.runtime.startup`).
"""

from __future__ import annotations

import importlib
import sys

import click

from csi_sidecars import __version__
from csi_sidecars.runtime import startup

# subcommand name -> "module:attribute" of its click command
ROLES: dict[str, str] = {
    "attacher": "csi_sidecars.attacher.command:command",
    "cluster-driver-registrar": "csi_sidecars.registrar.cluster:command",
    "csi": "csi_sidecars.csicli.command:command",
    "doctor": "csi_sidecars.doctor.command:command",
    "livenessprobe": "csi_sidecars.livenessprobe.command:command",
    "node-driver-registrar": "csi_sidecars.registrar.node:command",
    "playground": "csi_sidecars.playground.cli:command",
    "provisioner": "csi_sidecars.provisioner.command:command",
    "resizer": "csi_sidecars.resizer.command:command",
    "run": "csi_sidecars.run.command:command",
    "snapshot-controller": "csi_sidecars.snapshotcontroller.command:command",
    "snapshotter": "csi_sidecars.snapshotter.command:command",
}

#: Roles that talk only to unix sockets and plain HTTP: their processes load no ssl.
NO_TLS_ROLES = frozenset({"livenessprobe", "node-driver-registrar"})
#: Controller roles: they start through ``runtime.app.run``, which turns the collector back on,
#: so their imports (about a fifth less CPU without collections) run with it paused too.
GC_PAUSED_ROLES = frozenset(
    {
        "attacher",
        "cluster-driver-registrar",
        "provisioner",
        "resizer",
        "snapshot-controller",
        "snapshotter",
    }
)


class _LazyGroup(click.Group):
    """Imports a role's module only when that role runs, so start-up stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(ROLES)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Only for the command that runs: --help imports every role, TLS ones included.
        if args and args[0] in NO_TLS_ROLES and startup.forgo_tls():
            startup.pause_gc()
        elif args and args[0] in GC_PAUSED_ROLES and "asyncio" not in sys.modules:
            startup.pause_gc()  # a fresh process (a test process has imported asyncio)
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = ROLES.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["--help", "-h"]})
@click.version_option(__version__, "--version", prog_name="csi-sidecars")
def main() -> None:
    """The Kubernetes CSI sidecars as one program: pick a role."""
