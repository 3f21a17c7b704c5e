"""Where a role serves its HTTP routes: a server per address, or one shared by several roles.

A role hands its routes (path -> :class:`Route`) for one address to an :class:`HttpHost` and gets
the started :class:`~csi_sidecars.runtime.http.HttpServer` back, or :class:`HttpBindError`. Run
alone, a role uses :class:`Servers` (one server per call, as each Go sidecar has its own). In the
node bundle (``csi-sidecars run``) the bundle passes its own host, which puts the routes of roles
that name the same address on one server; the role code is the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

from csi_sidecars.runtime.http import Handler, HttpBindError, HttpServer


class Route(NamedTuple):
    """A handler and the methods it answers (``*`` for any)."""

    handler: Handler
    methods: tuple[str, ...] = ("GET",)


class HttpHost(Protocol):
    """Serves a role's routes on an address."""

    async def serve(self, address: str, routes: Mapping[str, Route]) -> HttpServer:
        """Serve ``routes`` on ``address`` (``host:port``) and return the running server.

        Raises:
            HttpBindError: when the address cannot be bound.
        """
        ...


class Servers:
    """The standalone host: every :meth:`serve` call binds a server of its own."""

    def __init__(self) -> None:
        """Start with no servers."""
        self.servers: list[HttpServer] = []

    async def serve(self, address: str, routes: Mapping[str, Route]) -> HttpServer:
        """Bind a new server on ``address`` with ``routes``."""
        try:
            server = HttpServer(address)
        except ValueError as err:
            raise HttpBindError(str(err)) from None
        for path, route in routes.items():
            server.add(path, route.handler, route.methods)
        await server.start()
        self.servers.append(server)
        return server

    async def close(self) -> None:
        """Stop every server, newest first."""
        while self.servers:
            await self.servers.pop().stop()
