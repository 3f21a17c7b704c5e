"""The node bundle: node-driver-registrar and livenessprobe in one process.

Each role runs its own code (:func:`~csi_sidecars.registrar.node.run_node_registrar`,
:func:`~csi_sidecars.livenessprobe.server.run_livenessprobe`) with its own configuration, and
shares with the other role only what two containers of one pod would duplicate:

* the start-up driver connection: roles that name the same driver socket share one
  :class:`~csi_sidecars.csi.lean.link.DriverLink` (each keeps its own timeout and its own
  ``GetPluginInfo``; the livenessprobe's ``/healthz`` still dials afresh per request, as Go);
* HTTP servers, per endpoint (:mod:`csi_sidecars.run.http`);
* the interpreter: one Python and one copy of every module instead of two.

Supervision is :func:`~csi_sidecars.run.supervise.supervise`: either role failing ends the
process, naming the role.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import click

from csi_sidecars.csi.lean.address import parse_target
from csi_sidecars.csi.lean.link import DriverLink
from csi_sidecars.run.http import SharedHttp
from csi_sidecars.run.supervise import RoleMain, supervise
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.httphost import HttpHost
from csi_sidecars.runtime.options import params_of

log = rlog.get_logger("run")


class LivenessprobeRole:
    """The livenessprobe in the node bundle."""

    name = "livenessprobe"

    def params(self) -> list[click.Parameter]:
        """The livenessprobe's flags."""
        from csi_sidecars.livenessprobe.command import configure

        return params_of(configure)

    def configure(self, values: dict[str, Any]) -> Any:
        """The livenessprobe's configuration (raises ConfigError)."""
        from csi_sidecars.livenessprobe.command import configure

        return configure(**values)

    def csi_address(self, config: Any) -> str:
        """The driver socket the role talks to."""
        return str(config.csi_address)

    def routes(self, config: Any) -> list[tuple[str, str]]:
        """(endpoint, path) pairs the role will serve."""
        routes = [(config.health_address, "/healthz")]
        if config.metrics_on_health:
            routes.append((config.health_address, config.metrics_path))
        if config.metrics_address:
            routes.append((config.metrics_address, config.metrics_path))
        return routes

    async def run(
        self, config: Any, stop: asyncio.Event, *, link: DriverLink, http: HttpHost
    ) -> int:
        """Run the role until ``stop``."""
        from csi_sidecars.livenessprobe.server import run_livenessprobe

        return await run_livenessprobe(config, stop, link=link, http=http)


class NodeDriverRegistrarRole:
    """The node-driver-registrar in the node bundle."""

    name = "node-driver-registrar"

    def params(self) -> list[click.Parameter]:
        """The registrar's flags."""
        from csi_sidecars.registrar.node import configure

        return params_of(configure)

    def configure(self, values: dict[str, Any]) -> Any:
        """The registrar's configuration (logs and raises SystemExit as its subcommand does)."""
        from csi_sidecars.registrar.node import configure

        return configure(**values)

    def csi_address(self, config: Any) -> str:
        """The driver socket the role talks to."""
        return str(config.csi_address)

    def routes(self, config: Any) -> list[tuple[str, str]]:
        """(endpoint, path) pairs the role will serve."""
        if not config.http_address:
            return []
        return [(config.http_address, "/healthz"), (config.http_address, "/healthz/registration")]

    async def run(
        self, config: Any, stop: asyncio.Event, *, link: DriverLink, http: HttpHost
    ) -> int:
        """Run the role until ``stop`` or a failed registration."""
        from csi_sidecars.registrar.node import run_node_registrar

        return await run_node_registrar(config, stop, link=link, http=http)


LIVENESSPROBE = LivenessprobeRole()
NODE_DRIVER_REGISTRAR = NodeDriverRegistrarRole()

NodeRole = LivenessprobeRole | NodeDriverRegistrarRole


async def run_node_bundle(roles: list[tuple[NodeRole, Any]], stop: asyncio.Event) -> int:
    """Run the configured node roles in this process until a signal or a role's end.

    Returns:
        The exit code (see :func:`~csi_sidecars.run.supervise.supervise`).
    """
    http = SharedHttp()
    try:
        for role, config in roles:
            for address, path in role.routes(config):
                http.expect(role.name, address, path)
    except ConfigError as err:
        log.error(str(err))
        return 1
    links: dict[str, DriverLink] = {}
    mains: dict[str, RoleMain] = {}
    for role, config in roles:
        address = role.csi_address(config)
        link = links.setdefault(str(parse_target(address)), DriverLink(address))
        mains[role.name] = functools.partial(role.run, config, link=link, http=http.host(role.name))
    log.info(
        "Running the node bundle",
        roles=[role.name for role, _ in roles],
        driver_connections=len(links),
    )
    try:
        return await supervise(mains, stop)
    finally:
        for link in links.values():
            await link.close()
        await http.close()
