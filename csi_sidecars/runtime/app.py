"""Process plumbing shared by every role: common flags, start-up, signals and exit codes.

A role's click command uses :func:`common_options` for the flags every Go sidecar has
(``-v``, ``--logging-format``, ``--version``), calls :func:`start` first thing, and hands its
async main to :func:`run`. ``run`` owns the event loop: SIGTERM and SIGINT set the ``stop``
event the role's main receives, and the integer the main returns is the exit code.

The loop is uvloop's when uvloop is installed (``pip install csi-sidecars[fast]``): it spends
less CPU per callback, socket and TLS read than asyncio's own loop. ``CSI_SIDECARS_LOOP=asyncio``
in the environment keeps asyncio's loop anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from csi_sidecars import __version__
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime import startup
from csi_sidecars.runtime.flags import bool_flag

if TYPE_CHECKING:
    # Imported where the loop starts: the node roles may block ssl before asyncio loads it.
    import asyncio

F = TypeVar("F", bound=Callable[..., Any])

log = rlog.get_logger("app")

# Signals that arrive between start() and run(): run() turns them into a stop request, so a
# SIGTERM during start-up still means "exit 0 cleanly" rather than death by signal.
_early_signals: list[int] = []


class Captured(Exception):
    """Raised by :func:`run` under :func:`capture`: it carries the main instead of running it."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[int]]) -> None:
        """Carry ``main``."""
        super().__init__("captured")
        self.main = main


_capturing: list[bool] = []


@contextlib.contextmanager
def capture() -> Iterator[None]:
    """Within the block, :func:`start` only checks ``--version`` and :func:`run` raises
    :class:`Captured` with the main it was given.

    For ``csi-sidecars run``: a role's own command (flag checks and all) builds its main as it
    does for its subcommand, and the bundle runs that main next to the other roles' in its own
    event loop, with the process-wide logging and signals set up once by the bundle.
    """
    _capturing.append(True)
    try:
        yield
    finally:
        _capturing.pop()


def _remember_signal(signum: int, _frame: object) -> None:
    _early_signals.append(signum)


def common_options(func: F) -> F:
    """Add ``-v``, ``--logging-format`` and ``--version`` to a role command."""
    func = click.option(
        "--v", "-v", "v", type=int, default=0, show_default=True, help="klog verbosity level."
    )(func)
    func = click.option(
        "--logging-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Log line format.",
    )(func)
    return bool_flag("--version", help="Print the version and exit.")(func)


def start(role: str, v: int, logging_format: str, version: bool) -> None:
    """Configure logging for ``role``, print the version and exit when asked.

    Also logs one warning naming the Go-only flags that were accepted and ignored.
    """
    if version:
        click.echo(f"csi-sidecars {role} {__version__}")
        sys.exit(0)
    if _capturing:
        return
    rlog.configure(v, logging_format)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _remember_signal)
    ctx = click.get_current_context(silent=True)
    ignored = ctx.meta.get("csi_sidecars.ignored_flags") if ctx is not None else None
    if ignored:
        log.warning("Ignoring flags that only the Go sidecar uses", flags=ignored)
    log.info("Version", role=role, version=__version__)


def loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` or, when installed and not turned off, ``uvloop.run``."""
    import asyncio

    if os.environ.get("CSI_SIDECARS_LOOP", "") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


def run(main: Callable[[asyncio.Event], Awaitable[int]]) -> NoReturn:
    """Run ``main(stop)`` in a fresh event loop and exit with the code it returns.

    SIGTERM and SIGINT set ``stop``; a second signal cancels ``main`` outright.
    """
    import asyncio

    if _capturing:
        raise Captured(main)
    startup.resume_gc()

    async def wrapper() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            if stop.is_set() and task is not None:
                task.cancel()
                return
            log.info("Received signal, shutting down", signal=signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        if _early_signals:
            on_signal(_early_signals[0])
        try:
            return await main(stop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    try:
        code = loop_runner()(wrapper())
    except asyncio.CancelledError:
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
