"""``csi-sidecars playground``: a local control plane with our sidecars around a CSI driver.

``playground up`` runs until Ctrl-C or SIGTERM with a live status line; ``playground demo``
starts the same thing, runs a scripted tour and stops. Both build the testbed binaries first
when they are missing (unless ``--bin-dir`` points at binaries the user has).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csi_sidecars import __version__
from csi_sidecars.playground import binaries
from csi_sidecars.runtime import app
from csi_sidecars.runtime import logging as rlog

if TYPE_CHECKING:
    from csi_sidecars.playground.session import Playground

# The session (and with it the control plane's PKI, which needs the 'playground' extra) is
# imported only once require_extra() has passed, so that `csi-sidecars --help` and a clear
# message work in an install without the extra (the container image).

F = TypeVar("F", bound=Callable[..., Any])

BUILD_SCRIPT = Path(__file__).with_name("build_testbed.sh")


def ensure_binaries(bin_dir: Path | None) -> Path:
    """Return the binary directory, building the testbed binaries first when they are missing.

    Raises:
        click.ClickException: binaries are missing from a user-given ``--bin-dir``, or the build
            failed.
    """
    needed = binaries.CONTROL_PLANE_BINARIES
    if bin_dir is not None:
        absent = binaries.missing(list(needed), bin_dir)
        if absent:
            raise click.ClickException(f"missing in --bin-dir {bin_dir}: {', '.join(absent)}")
        return bin_dir
    default = binaries.default_bin_dir()
    absent = binaries.missing(list(needed), default)
    if not absent:
        return default
    click.echo(
        f"Building the testbed binaries ({', '.join(absent)}) with Go into {default}.\n"
        "A first build takes several minutes (about 5-20 on 2 cores); later starts take seconds.",
        err=True,
    )
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "ci"], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise click.ClickException(
            "building the testbed binaries failed (see the output above); "
            "install Go or pass --bin-dir with prebuilt binaries"
        )
    built = Path(proc.stdout.strip().splitlines()[-1])
    click.echo(f"Built in {time.monotonic() - started:.0f}s: {built}", err=True)
    return built


def _options(func: F) -> F:
    for decorator in reversed(
        (
            click.option(
                "--dir",
                "directory",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory for kubeconfig, playground.json and logs (default: a new "
                "temporary directory, printed).",
            ),
            click.option(
                "--roles",
                default="all",
                show_default=True,
                help="Comma-separated csi-sidecars roles to run, 'all' or 'none'.",
            ),
            click.option("--nodes", type=click.IntRange(1, 10), default=1, show_default=True),
            click.option(
                "--driver-cmd",
                help="Your CSI driver's command line; {endpoint} and {nodeid} are replaced. "
                "Default: our hostpath-like driver.",
            ),
            click.option(
                "--driver-socket",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Socket of a CSI driver you already run (one node only).",
            ),
            click.option(
                "--bin-dir",
                type=click.Path(file_okay=False, exists=True, path_type=Path),
                help="Use these Kubernetes binaries instead of building them "
                "(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl).",
            ),
            click.option(
                "--kubelet/--no-kubelet",
                default=None,
                help="Run every Node with a real kubelet and containerd (default: when they "
                "are installed; see 'real nodes need' in the output otherwise).",
            ),
            click.option("--v", "-v", "v", type=int, default=0, help="Log verbosity."),
        )
    ):
        func = decorator(func)
    return func


PLAYGROUND_EXTRA_HINT = (
    "the playground needs the 'playground' extra (the cryptography package, for the control "
    "plane's certificates): pip install 'csi-sidecars[playground]'"
)


def require_extra() -> None:
    """Fail with what to install when the playground's optional dependencies are missing.

    Raises:
        click.ClickException: ``cryptography`` is not installed.
    """
    if importlib.util.find_spec("cryptography") is None:
        raise click.ClickException(PLAYGROUND_EXTRA_HINT)


@click.group("playground")
@click.version_option(__version__, "--version", message="csi-sidecars playground %(version)s")
def command() -> None:
    """A local Kubernetes control plane with csi-sidecars around a CSI driver."""


def _make(
    directory: Path | None,
    roles: str,
    nodes: int,
    driver_cmd: str | None,
    driver_socket: Path | None,
    bin_dir: Path | None,
    v: int,
    kubelet: bool | None = None,
) -> Playground:
    rlog.configure(v, "text")
    require_extra()
    from csi_sidecars.playground.session import Playground, parse_roles

    if driver_cmd and driver_socket:
        raise click.UsageError("use either --driver-cmd or --driver-socket, not both")
    if driver_socket is not None and nodes != 1:
        raise click.UsageError("--driver-socket works with one node only")
    try:
        role_list = parse_roles(roles)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    resolved = ensure_binaries(bin_dir)
    real = decide_kubelet(kubelet, resolved)
    made = directory is None
    if directory is None:
        # Short: kubelet's plugin sockets live below it and unix socket paths are short.
        directory = Path(tempfile.mkdtemp(prefix="csi-pg-"))
    click.echo(f"playground directory: {directory}", err=True)
    return Playground(
        directory=directory.resolve(),
        bin_dir=resolved,
        roles=role_list,
        nodes=nodes,
        driver_cmd=driver_cmd,
        driver_socket=driver_socket,
        remove_directory=made,
        kubelet=real,
    )


def decide_kubelet(wanted: bool | None, bin_dir: Path) -> bool:
    """Whether to run real nodes: as asked, or (not asked) when every piece is installed.

    Raises:
        click.ClickException: ``--kubelet`` was given and a piece is missing.
    """
    from csi_sidecars.playground import realnode

    if wanted is False:
        return False
    missing = realnode.missing_requirements(bin_dir)
    if not missing:
        return True
    message = realnode.explain_missing(missing)
    if wanted:
        raise click.ClickException(message)
    click.echo(f"{message}; starting API-only Nodes (no pods run) instead", err=True)
    return False


@command.command("up")
@_options
def up(
    directory: Path | None,
    roles: str,
    nodes: int,
    driver_cmd: str | None,
    driver_socket: Path | None,
    bin_dir: Path | None,
    kubelet: bool | None,
    v: int,
) -> None:
    """Start the playground and keep it running until Ctrl-C or SIGTERM."""
    pg = _make(directory, roles, nodes, driver_cmd, driver_socket, bin_dir, v, kubelet)
    from csi_sidecars.playground.session import format_status, kubectl_hint

    async def main(stop: asyncio.Event) -> int:
        try:
            await pg.start()
        except BaseException:
            await pg.stop()
            raise
        cp = pg.control_plane
        click.echo(
            f"ready in {cp.startup_seconds:.1f}s (API server answered after "
            f"{cp.api_ready_seconds:.1f}s); roles: {', '.join(pg.roles) or 'none'}"
        )
        for line in kubectl_hint(pg.directory, pg.bin_dir):
            click.echo(line)
        tty = sys.stdout.isatty()
        last = ""
        try:
            while not stop.is_set():
                line = format_status(await pg.status())
                if tty:
                    click.echo(f"\r{line}\x1b[K", nl=False)
                elif line != last:
                    click.echo(line)
                last = line
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
        finally:
            if tty:
                click.echo("")
            click.echo("stopping the playground ...")
            await pg.stop()
        return 0

    app.run(main)


@command.command("demo")
@_options
def demo(
    directory: Path | None,
    roles: str,
    nodes: int,
    driver_cmd: str | None,
    driver_socket: Path | None,
    bin_dir: Path | None,
    kubelet: bool | None,
    v: int,
) -> None:
    """Start the playground, run a scripted tour of what works, and stop."""
    pg = _make(directory, roles, nodes, driver_cmd, driver_socket, bin_dir, v, kubelet)
    from csi_sidecars.playground.demo import run_tour

    async def main(stop: asyncio.Event) -> int:
        try:
            await pg.start()
            return await run_tour(pg, stop, echo=click.echo)
        finally:
            await pg.stop()

    app.run(main)
