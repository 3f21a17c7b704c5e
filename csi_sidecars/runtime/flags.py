"""Go-compatible command-line flags on top of click.

Manifests written for the Go sidecars pass flags the way Go's ``flag`` package accepts them:
``-csi-address=/x.sock``, ``--timeout 15s``, ``-v=5``, ``--leader-election`` or
``--leader-election=false``. click understands none of the single-dash long forms and has no
notion of a boolean flag that may carry ``=true``. :class:`GoCommand` rewrites argv into one
canonical shape (``--name=value`` for every flag) before click parses it, using the command's own
option table, so each role declares its flags once with ordinary click options.

Flags that only mean something to a Go binary (``--automaxprocs``, klog's file flags, ...) are
accepted and dropped; the command logs one warning line naming them once logging is set up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

# Go-only flags we accept and ignore: name -> whether it is boolean (takes no separate value).
GO_ONLY_FLAGS: dict[str, bool] = {
    "automaxprocs": True,
    "log-flush-frequency": False,
    "vmodule": False,
    "log-json-info-buffer-size": False,
    "log-json-split-stream": True,
    "log-text-info-buffer-size": False,
    "log-text-split-stream": True,
    "add_dir_header": True,
    "alsologtostderr": True,
    "log_backtrace_at": False,
    "log_dir": False,
    "log_file": False,
    "log_file_max_size": False,
    "logtostderr": True,
    "one_output": True,
    "skip_headers": True,
    "skip_log_headers": True,
    "stderrthreshold": False,
}

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_bool(value: str) -> bool:
    """Parse a boolean the way Go's strconv.ParseBool does.

    Raises:
        ValueError: for anything else.
    """
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid boolean value {value!r}")


def parse_duration(value: str) -> float:
    """Parse a Go duration string (``"15s"``, ``"1m30s"``, ``"100ms"``, ``"0"``) into seconds.

    Raises:
        ValueError: when the string is not a Go duration.
    """
    text = value.strip()
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if text[:1] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    pos = 0
    total = 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Format seconds the short way Go prints simple durations (``15s``, ``1m0s``, ``100ms``)."""
    if seconds == 0:
        return "0s"
    if abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes == 0:
        return f"{secs:g}s"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{minutes:g}m{secs:g}s"
    return f"{hours:g}h{minutes:g}m{secs:g}s"


class DurationType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A click parameter type for Go durations; the value is seconds as a float."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(
                f"invalid duration {value!r} (use Go syntax like 15s, 1m30s, 100ms)", param, ctx
            )


class GoBoolType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A click parameter type for Go booleans (``true``, ``false``, ``1``, ``0``, ``t``, ``f``)."""

    name = "bool"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bool):
            return value
        try:
            return parse_go_bool(str(value))
        except ValueError:
            self.fail(f"invalid boolean value {value!r}", param, ctx)


DURATION = DurationType()
GO_BOOL = GoBoolType()

F = TypeVar("F", bound=Callable[..., Any])


def bool_flag(name: str, default: bool = False, help: str = "") -> Callable[[F], F]:
    """Declare a Go-style boolean flag (``--name``, ``--name=true``, ``--name=false``)."""
    return click.option(
        name, type=GO_BOOL, default=default, show_default=True, metavar="[=true|false]", help=help
    )


def _is_bool(param: click.Parameter) -> bool:
    return isinstance(param.type, GoBoolType | click.types.BoolParamType) or bool(
        getattr(param, "is_flag", False)
    )


class GoCommand(click.Command):
    """A click command that first rewrites Go-style argv into ``--name=value`` form.

    Every option of the command must have a long name; single-dash long flags are accepted,
    booleans may stand alone or carry ``=value``, and non-boolean flags take their value after
    ``=`` or as the next argument. Unknown flags exit 2 naming the flag.
    """

    #: Extra Go-only flags this command accepts and ignores, on top of GO_ONLY_FLAGS.
    extra_ignored: dict[str, bool]

    def __init__(self, *args: Any, extra_ignored: dict[str, bool] | None = None, **kwargs: Any):
        kwargs.setdefault("context_settings", {})
        kwargs["context_settings"].setdefault("help_option_names", ["--help", "-h"])
        super().__init__(*args, **kwargs)
        self.extra_ignored = dict(extra_ignored or {})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        normalized, ignored = normalize_go_args(args, self.params, self.extra_ignored)
        ctx.meta["csi_sidecars.ignored_flags"] = ignored
        return super().parse_args(ctx, normalized)


def normalize_go_args(
    args: Sequence[str],
    params: Sequence[click.Parameter],
    extra_ignored: dict[str, bool] | None = None,
) -> tuple[list[str], list[str]]:
    """Rewrite Go-style argv into ``--name=value`` form.

    Args:
        args: the raw arguments after the subcommand name.
        params: the click parameters of the command.
        extra_ignored: command-specific Go-only flags (name -> is boolean).

    Returns:
        The rewritten arguments, and the names of the Go-only flags that were dropped.

    Raises:
        click.UsageError: for an unknown flag, a flag missing its value or a bad boolean.
    """
    known: dict[str, bool] = {}
    for param in params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                known[opt.lstrip("-")] = _is_bool(param)
    ignored_table = {**GO_ONLY_FLAGS, **(extra_ignored or {})}
    out: list[str] = []
    ignored: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            out.extend(args[i - 1 :])
            break
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            continue
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, eq, value = body.partition("=")
        if name in ("help", "h") and not eq:
            out.append("--help")
            continue
        if name in known:
            if known[name]:
                if eq:
                    try:
                        value = "true" if parse_go_bool(value) else "false"
                    except ValueError:
                        raise click.UsageError(
                            f"invalid boolean value {value!r} for flag -{name}"
                        ) from None
                else:
                    value = "true"
            elif not eq:
                if i >= len(args):
                    raise click.UsageError(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            out.append(f"--{name}={value}")
            continue
        if name in ignored_table:
            ignored.append(f"--{name}")
            if not eq and not ignored_table[name] and i < len(args):
                i += 1
            continue
        raise click.UsageError(f"flag provided but not defined: -{name}")
    return out, ignored
