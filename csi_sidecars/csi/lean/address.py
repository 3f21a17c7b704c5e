"""Where a lean connection dials: a ``--csi-address`` value parsed without any gRPC library.

The forms csi-lib-utils accepts for the node roles: an absolute path or ``unix:///path`` (also
``unix:path``) for a unix socket, ``dns:///host:port`` or plain ``host:port`` for TCP. Anything
else is refused at start-up with a message that names the value, instead of dialling forever.
"""

from __future__ import annotations

from typing import NamedTuple

from csi_sidecars.runtime.errors import ConfigError


class Target(NamedTuple):
    """A parsed address: ``path`` for a unix socket, else ``host`` and ``port``."""

    path: str | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        """The address as gRPC writes it: ``unix:///csi/csi.sock`` or ``host:port``."""
        if self.path is not None:
            return "unix://" + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_target(address: str) -> Target:
    """Parse ``address`` (see the module docstring).

    Raises:
        ConfigError: for an empty address, an unknown scheme or a missing or bad port.
    """
    if not address:
        raise ConfigError("the CSI address is empty")
    if address.startswith("/"):
        return Target(path=address)
    if address.startswith("unix:"):
        path = address[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError(f"invalid unix address {address!r}: no socket path")
        return Target(path=path)
    rest = address
    if "://" in address:
        scheme, _, rest = address.partition("://")
        if scheme != "dns":
            raise ConfigError(
                f"unsupported address {address!r}: use a socket path, unix:///path or host:port"
            )
        rest = rest.rpartition("/")[2]
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"invalid address {address!r}: expected host:port or a socket path")
    return Target(host=host, port=int(port_text))
