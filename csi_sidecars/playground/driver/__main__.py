"""Command line of the playground CSI driver: serve (default) or print a state directory.

``python -m csi_sidecars.playground.driver --endpoint unix:///x/csi.sock --nodeid n1 ...`` serves
until SIGTERM, SIGINT, SIGHUP or SIGQUIT, then removes its socket and exits 0.
``python -m csi_sidecars.playground.driver state --statedir DIR`` prints the persisted volumes,
snapshots, group snapshots and publications as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from csi_sidecars.playground.driver.options import DriverOptions, parse_args
from csi_sidecars.playground.driver.store import load_state
from csi_sidecars.runtime import logging as rlog


def print_state(argv: Sequence[str]) -> int:
    """The ``state`` subcommand: print the state of ``--statedir`` as JSON; returns 0, or 1
    when the state file is invalid."""
    parser = argparse.ArgumentParser(prog="python -m csi_sidecars.playground.driver state")
    parser.add_argument("--statedir", required=True)
    ns = parser.parse_args(list(argv))
    try:
        data = load_state(ns.statedir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    doc = data.to_json()
    doc["publications"] = data.publications()
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


async def serve(opts: DriverOptions) -> int:
    """Serve until a termination signal; returns the exit code."""
    from csi_sidecars.playground.driver.server import Driver

    driver = Driver(opts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await driver.start()
        await stop.wait()
    finally:
        await driver.stop(1.0)
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "state":
        return print_state(args[1:])
    opts = parse_args(args)
    rlog.configure(opts.v, "text")
    try:
        return asyncio.run(serve(opts))
    except (RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
