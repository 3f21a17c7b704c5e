"""Go-style flag normalisation and parsing."""

import click
import click.testing
import pytest

from csi_sidecars.runtime.flags import (
    DURATION,
    GoCommand,
    bool_flag,
    format_duration,
    normalize_go_args,
    parse_duration,
)


@click.command(cls=GoCommand)
@click.option("--csi-address", default="/run/csi/socket")
@click.option("--timeout", type=DURATION, default="15s")
@click.option("--v", "-v", "v", type=int, default=0)
@bool_flag("--leader-election")
def _cmd(csi_address: str, timeout: float, v: int, leader_election: bool) -> None:
    click.echo(f"{csi_address}|{timeout}|{v}|{leader_election}")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "/run/csi/socket|15.0|0|False"),
        (["-csi-address=/x.sock", "-v=5"], "/x.sock|15.0|5|False"),
        (["--csi-address", "/y.sock", "--v", "3"], "/y.sock|15.0|3|False"),
        (["--leader-election"], "/run/csi/socket|15.0|0|True"),
        (["-leader-election=true"], "/run/csi/socket|15.0|0|True"),
        (["--leader-election=false"], "/run/csi/socket|15.0|0|False"),
        (["--leader-election=1", "--timeout=1m30s"], "/run/csi/socket|90.0|0|True"),
        (
            ["--automaxprocs", "--log-flush-frequency", "5s", "-timeout=100ms"],
            "/run/csi/socket|0.1|0|False",
        ),
    ],
)
def test_go_style_argv(argv: list[str], expected: str) -> None:
    result = click.testing.CliRunner().invoke(_cmd, argv)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == expected


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--no-such-flag=1"], "-no-such-flag"),
        (["--timeout"], "flag needs an argument: -timeout"),
        (["--leader-election=maybe"], "invalid boolean value"),
        (["--timeout=fast"], "invalid duration"),
    ],
)
def test_bad_flags_exit_2(argv: list[str], needle: str) -> None:
    result = click.testing.CliRunner().invoke(_cmd, argv)
    assert result.exit_code == 2
    assert needle in result.output


def test_ignored_flags_are_reported() -> None:
    params = _cmd.params
    out, ignored = normalize_go_args(["--automaxprocs", "--vmodule", "x=5", "-v=2"], params)
    assert out == ["--v=2"]
    assert ignored == ["--automaxprocs", "--vmodule"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("100ms", 0.1),
        ("1h", 3600.0),
        ("-2s", -2.0),
        ("1.5s", 1.5),
        ("10us", 1e-5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "15", "1x", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(15) == "15s"
    assert format_duration(0.1) == "100ms"
    assert format_duration(90) == "1m30s"
