"""The controller bundle: provisioner, attacher, resizer, snapshotter (and the cluster registrar)
in one process.

Each role is configured by its own command, exactly as ``csi-sidecars <role>`` would be: the
bundle calls the command's function with the role's flag values under
:func:`csi_sidecars.runtime.app.capture`, so the role's own checks run (a bad flag exits 1 or 2
naming the role) and the role hands back its main instead of starting a loop. The mains then
run side by side in one event loop under :func:`~csi_sidecars.run.supervise.supervise`
(crash-only: the first role to end takes the process down, naming it), each in a task that
carries the shared parts (:mod:`csi_sidecars.controller.bundle`): one driver connection per
socket with the driver's name and capabilities read once, shared informers (one list+watch and
one store per resource), and HTTP servers per endpoint (:mod:`csi_sidecars.run.http`). Each
role keeps its own Kubernetes clients and rate limits, queues, metrics registry, health check
and leader-election Lease (the same Lease name as the role run alone).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import click

from csi_sidecars.controller.bundle import ControllerBundle, joined
from csi_sidecars.csi.lean.link import DriverLink
from csi_sidecars.run.http import SharedHttp
from csi_sidecars.run.node import LivenessprobeRole
from csi_sidecars.run.registry import load
from csi_sidecars.run.supervise import RoleMain, supervise
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError

log = rlog.get_logger("run")

#: The flags the bundle itself has (``-v``, ``--logging-format``, ``--version``).
_BUNDLE_OWN = ("v", "logging_format", "version")

Main = Callable[[asyncio.Event], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """A configured controller role: its main and the HTTP routes it will serve."""

    main: Main
    #: ``--metrics-address`` or else ``--http-endpoint`` ("" for none).
    http_address: str
    metrics_path: str
    leader_election: bool

    def routes(self) -> list[tuple[str, str]]:
        """(endpoint, path) pairs the role will serve."""
        if not self.http_address:
            return []
        paths = [self.metrics_path, "/healthz"]
        if self.leader_election:
            paths.append("/healthz/leader-election")
        return [(self.http_address, path) for path in paths]


class ControllerRole:
    """A controller role in the bundle, configured through its own command.

    Args:
        name: the role's name (its subcommand).
        command: ``module:attr`` of the role's click command.
    """

    def __init__(self, name: str, command: str) -> None:
        """Name the role and where its command is."""
        self.name = name
        self._target = command

    def _command(self) -> click.Command:
        command: click.Command = load(self._target)
        return command

    def params(self) -> list[click.Parameter]:
        """The role's flags, less those the bundle has for every role."""
        return [p for p in self._command().params if p.name not in _BUNDLE_OWN]

    def configure(self, values: dict[str, Any]) -> ControllerConfig:
        """The role's main, from its own command run with ``values``.

        Raises:
            ConfigError, SystemExit, click.UsageError: as the role's own command does.
        """
        command = self._command()
        ctx = click.get_current_context()
        args = dict(values)
        for param in command.params:
            name = param.name or ""
            if param.callback is not None and name in args:
                args[name] = param.callback(ctx, param, args[name])
        args.update(v=ctx.params.get("v", 0), logging_format="text", version=False)
        callback = command.callback
        if callback is None:
            raise ConfigError(f"{self.name}: the command has nothing to run")
        try:
            with app.capture():
                callback(**args)
        except app.Captured as got:
            return ControllerConfig(
                main=got.main,
                http_address=str(
                    values.get("metrics_address") or values.get("http_endpoint") or ""
                ),
                metrics_path=str(values.get("metrics_path") or "/metrics"),
                leader_election=bool(values.get("leader_election")),
            )
        raise ConfigError(f"{self.name}: the command ended without starting the role")


PROVISIONER = ControllerRole("provisioner", "csi_sidecars.provisioner.command:command")
ATTACHER = ControllerRole("attacher", "csi_sidecars.attacher.command:command")
RESIZER = ControllerRole("resizer", "csi_sidecars.resizer.command:command")
SNAPSHOTTER = ControllerRole("snapshotter", "csi_sidecars.snapshotter.command:command")
CLUSTER_DRIVER_REGISTRAR = ControllerRole(
    "cluster-driver-registrar", "csi_sidecars.registrar.cluster:command"
)


async def _role_main(bundle: ControllerBundle, name: str, main: Main, stop: asyncio.Event) -> int:
    with joined(bundle, name):  # in the role's own task: only its context sees it
        return await main(stop)


async def run_controller_bundle(
    roles: list[tuple[ControllerRole | LivenessprobeRole, Any]], stop: asyncio.Event
) -> int:
    """Run the configured controller roles (and a livenessprobe) until a signal or a role's end.

    Returns:
        The exit code (see :func:`~csi_sidecars.run.supervise.supervise`).
    """
    http = SharedHttp()
    try:
        for role, config in roles:
            for address, path in (
                config.routes() if isinstance(role, ControllerRole) else role.routes(config)
            ):
                http.expect(role.name, address, path)
    except ConfigError as err:
        log.error(str(err))
        return 1
    controllers = [role.name for role, _ in roles if isinstance(role, ControllerRole)]
    bundle = ControllerBundle(controllers, http={name: http.host(name) for name in controllers})
    links: list[DriverLink] = []
    mains: dict[str, RoleMain] = {}
    for role, config in roles:
        if isinstance(role, ControllerRole):
            mains[role.name] = functools.partial(_role_main, bundle, role.name, config.main)
        else:  # the livenessprobe: its own start-up link, as in the node bundle
            links.append(DriverLink(role.csi_address(config)))
            mains[role.name] = functools.partial(
                role.run, config, link=links[-1], http=http.host(role.name)
            )
    log.info("Running the controller bundle", roles=list(mains))
    try:
        return await supervise(mains, stop)
    finally:
        for link in links:
            await link.close()
        log.info(
            "Controller bundle stopped",
            driver_connections=bundle.connections,
            shared_informers=len(bundle.hub.bases()),
        )
        await bundle.close()
        await http.close()
