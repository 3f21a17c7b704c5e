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
