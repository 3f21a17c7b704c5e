"""click options shared by the ``csi-sidecars csi`` commands.

The global options (``--endpoint``, ``--timeout``, ``-o``, ``-v``, ...) are accepted both before
the command group and after the command (``csi -e unix:///x.sock node info`` and
``csi node info -e unix:///x.sock`` both work); a value given after the command wins. Value
parsing is done by click parameter types built on :mod:`csi_sidecars.csicli.arguments`, so a bad
size or capability is a usage error naming the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from csi_sidecars.csicli import arguments, exitcodes
from csi_sidecars.csicli.output import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

#: Parameter names of the global options, as click passes them.
GLOBAL_KEYS = ("endpoint", "timeout", "connect_timeout", "output", "v", "strict")

DEFAULT_TIMEOUT = "30s"
DEFAULT_CONNECT_TIMEOUT = "5s"

EPILOG = f"Exit codes: {exitcodes.help_text()}"


class _Parsed(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A click type that runs one of the :mod:`arguments` parsers."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


def _parse_timeout(text: str) -> float:
    from csi_sidecars.runtime.flags import parse_duration

    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"timeout {text!r} must be positive")
    return seconds


SIZE = _Parsed("size", arguments.parse_size)
CAPABILITY = _Parsed("capability", arguments.parse_capability)
MAP = _Parsed("key=value[,...]", lambda v: arguments.parse_map([v]))
TOPOLOGY = _Parsed("key=value[,...]", lambda v: {"segments": arguments.parse_map([v])})
DURATION = _Parsed("duration", _parse_timeout)


def global_options(group: bool = False) -> Callable[[F], F]:
    """The options every command takes; ``group`` gives them their defaults (and the
    ``CSI_ENDPOINT`` variable), otherwise they default to "inherit from the group"."""

    def default(value: Any) -> Any:
        return value if group else None

    def decorate(func: F) -> F:
        opts = [
            click.option(
                "--endpoint",
                "-e",
                envvar="CSI_ENDPOINT" if group else None,
                default=None,
                metavar="ADDRESS",
                help="Driver socket: unix:///path, /path, or host:port [env CSI_ENDPOINT].",
            ),
            click.option(
                "--timeout",
                type=DURATION,
                default=default(DEFAULT_TIMEOUT),
                help=f"Deadline of each call (Go syntax: 10s, 1m) [default {DEFAULT_TIMEOUT}].",
            ),
            click.option(
                "--connect-timeout",
                type=DURATION,
                default=default(DEFAULT_CONNECT_TIMEOUT),
                help=f"How long to wait for the socket [default {DEFAULT_CONNECT_TIMEOUT}].",
            ),
            click.option(
                "--output",
                "-o",
                type=click.Choice(FORMATS),
                default=None,
                help="Output format [default: table on a terminal, json otherwise].",
            ),
            click.option(
                "--v",
                "-v",
                "v",
                type=click.IntRange(min=0),
                default=default(0),
                help="Log verbosity; -v=5 logs every request and reply (secrets stripped).",
            ),
            click.option(
                "--strict",
                is_flag=True,
                default=default(False),
                help="Exit 4 when a reply violates the CSI spec (warnings otherwise).",
            ),
        ]
        for opt in reversed(opts):
            func = opt(func)
        return func

    return decorate


def secrets_options(func: F) -> F:
    """``--secrets-file`` and ``--secrets-env``: the request's ``secrets`` map."""
    func = click.option(
        "--secrets-env",
        metavar="VAR",
        help="Read secrets from environment variable VAR (JSON, YAML or k=v,k2=v2).",
    )(func)
    return click.option(
        "--secrets-file",
        type=click.Path(dir_okay=False),
        help="Read secrets from a YAML/JSON mapping or key=value lines. Never echoed.",
    )(func)


def request_file_option(func: F) -> F:
    """``-f FILE``: a whole request as YAML or JSON; flags given as well override its fields."""
    return click.option(
        "--request-file",
        "-f",
        metavar="FILE",
        help="The request as YAML/JSON (- for standard input); flags override its fields.",
    )(func)


def caps_option(func: F) -> F:
    """``--cap MODE,TYPE[,FS[,FLAGS]]``, repeatable."""
    return click.option(
        "--cap",
        "caps",
        type=CAPABILITY,
        multiple=True,
        help="Volume capability MODE,TYPE[,FS_TYPE[,MOUNT_FLAG...]], e.g. "
        "MULTI_NODE_MULTI_WRITER,mount,ext4 (repeatable) "
        f"[default {arguments.DEFAULT_CAPABILITY}].",
    )(func)


def single_cap_option(func: F) -> F:
    """``--cap`` for calls that take one capability."""
    return click.option(
        "--cap",
        "cap",
        type=CAPABILITY,
        help=f"Volume capability MODE,TYPE[,FS_TYPE[,MOUNT_FLAG...]] [default "
        f"{arguments.DEFAULT_CAPABILITY}].",
    )(func)


def map_option(name: str, help: str) -> Callable[[F], F]:
    """A repeatable ``key=value[,key=value]`` option merged into one map."""
    return click.option(name, type=MAP, multiple=True, metavar="K=V[,K=V]", help=help)


def merge_maps(values: tuple[dict[str, str], ...]) -> dict[str, str] | None:
    """One map from the values of a :func:`map_option`; None when it was not given."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        out.update(value)
    return out
