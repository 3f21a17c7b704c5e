"""The top-level command: only working roles are listed, every one prints the version."""

import subprocess
import sys

import click.testing
import pytest

from csi_sidecars import __version__, cli


def test_help_lists_registered_roles_only() -> None:
    result = click.testing.CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    listed = {
        line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()
    }
    assert listed == set(cli.ROLES)


@pytest.mark.parametrize("role", sorted(cli.ROLES))
def test_every_role_prints_its_version(role: str) -> None:
    result = click.testing.CliRunner().invoke(cli.main, [role, "--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"csi-sidecars {role} {__version__}"


def test_unknown_flag_exits_2_naming_it() -> None:
    role = "livenessprobe"
    result = click.testing.CliRunner().invoke(cli.main, [role, "-no-such-flag=1"])
    assert result.exit_code == 2
    assert "-no-such-flag" in result.output


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "csi_sidecars", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0
    assert __version__ in proc.stdout


_GC_PROBE = """
import gc, sys
from csi_sidecars import cli
try:
    cli.main([sys.argv[1], "--version"], standalone_mode=False)
finally:
    print("enabled" if gc.isenabled() else "paused")
"""


@pytest.mark.parametrize(
    ("role", "state"),
    [("provisioner", "paused"), ("attacher", "paused"), ("csi", "enabled")],
)
def test_controller_roles_import_with_the_collector_paused(role: str, state: str) -> None:
    # --version exits before runtime.app.run would turn the collector back on.
    proc = subprocess.run(
        [sys.executable, "-c", _GC_PROBE, role], capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip().splitlines()[-1] == state, proc.stderr


def test_a_process_that_has_asyncio_keeps_its_collector() -> None:
    import gc
    import importlib

    importlib.import_module("asyncio")  # as in any test process running event loops
    assert gc.isenabled()
    result = click.testing.CliRunner().invoke(cli.main, ["provisioner", "--version"])
    assert result.exit_code == 0
    assert gc.isenabled()
