"""The node bundle's HTTP servers: one per endpoint, whichever roles name it.

Roles announce the paths they will serve before they start (:meth:`SharedHttp.expect`), then
serve them when they are ready, through their own :class:`~csi_sidecars.runtime.httphost.HttpHost`
view (:meth:`SharedHttp.host`). Roles whose endpoints differ get separate servers, exactly as two
containers would. Roles that name the same endpoint (``:9808`` and ``0.0.0.0:9808`` are the same)
share one server:

* a health path both serve (``/healthz``) answers 200 ``ok`` only when every one of them does;
  otherwise the first failure's status with ``<role>: <its body>``, and 503 ``<role>: not
  serving yet`` for a role still starting (the livenessprobe opens its port only once it knows
  the driver, as in Go). Each role's own answer stays reachable at ``<path>/<role>``;
* any other path (``/metrics``) must belong to one role only: two would be a configuration
  error, reported before the roles start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.http import (
    Handler,
    HttpBindError,
    HttpServer,
    Request,
    Response,
    split_endpoint,
)
from csi_sidecars.runtime.httphost import Route

Key = tuple[str, int]
HEALTH_PREFIX = "/healthz"


def _key(address: str) -> Key:
    host, port = split_endpoint(address)
    return host, port


class _RoleHost:
    """One role's view of the shared servers."""

    def __init__(self, shared: SharedHttp, role: str) -> None:
        self._shared = shared
        self._role = role

    async def serve(self, address: str, routes: Mapping[str, Route]) -> HttpServer:
        return await self._shared.serve(self._role, address, routes)


class SharedHttp:
    """HTTP servers shared by the roles of one process, one per endpoint."""

    def __init__(self) -> None:
        """Start with nothing expected and nothing bound."""
        self._servers: dict[Key, HttpServer] = {}
        self._expected: dict[Key, dict[str, list[str]]] = {}
        self._claimed: dict[Key, dict[str, dict[str, Route]]] = {}
        self._binding = asyncio.Lock()  # two roles starting at once must not both bind

    def expect(self, role: str, address: str, path: str) -> None:
        """Announce that ``role`` will serve ``path`` on ``address``.

        Raises:
            ConfigError: for a bad endpoint, or a non-health path another role serves there.
        """
        try:
            key = _key(address)
        except ValueError as err:
            raise ConfigError(f"{role}: {err}") from None
        owners = self._expected.setdefault(key, {}).setdefault(path, [])
        if owners and not path.startswith(HEALTH_PREFIX):
            raise ConfigError(
                f"{owners[0]} and {role} both serve {path} on {address}; "
                f"give one of them its own endpoint (--{role}.http-endpoint)"
            )
        if role not in owners:
            owners.append(role)

    def host(self, role: str) -> _RoleHost:
        """The host ``role`` serves through."""
        return _RoleHost(self, role)

    async def serve(self, role: str, address: str, routes: Mapping[str, Route]) -> HttpServer:
        """Serve ``role``'s routes on the endpoint's server, binding it on first use.

        Raises:
            HttpBindError: when the endpoint cannot be bound.
        """
        try:
            key = _key(address)
        except ValueError as err:
            raise HttpBindError(str(err)) from None
        async with self._binding:
            server = self._servers.get(key)
            if server is None:
                server = HttpServer(address)
                await server.start()
                self._servers[key] = server
        expected = self._expected.setdefault(key, {})
        claimed = self._claimed.setdefault(key, {})
        for path, route in routes.items():
            owners = expected.setdefault(path, [role])
            if role not in owners:
                owners.append(role)
            claimed.setdefault(path, {})[role] = route
            if len(owners) == 1:
                server.add(path, route.handler, route.methods)
            else:
                server.add(path, self._combined(key, path), ("*",))
                server.add(f"{path}/{role}", route.handler, route.methods)
        return server

    def _combined(self, key: Key, path: str) -> Handler:
        async def handle(request: Request) -> Response:
            for role in self._expected[key][path]:
                route = self._claimed[key].get(path, {}).get(role)
                if route is None:
                    return Response(503, f"{role}: not serving yet")
                answer = await route.handler(request)
                if not 200 <= answer.status < 300:
                    body = answer.payload().decode("utf-8", errors="replace")
                    return Response(answer.status, f"{role}: {body}")
            return Response(200, "ok")

        return handle

    async def close(self) -> None:
        """Stop every server."""
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            await server.stop()
