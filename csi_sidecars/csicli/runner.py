"""Running one CSI call for a ``csi-sidecars csi`` command, from flags to exit code.

:func:`run_unary` and :func:`run_stream` do the same steps for every command: resolve the global
options, merge the flags over ``-f`` (:func:`arguments.merge_request`), read secrets, set up
``-v`` logging through a :class:`~csi_sidecars.csicli.redact.Redactor`, build the request
message, connect, call (following ``next_token`` with ``--all``), check the reply against the
spec, print it and exit with the code of :mod:`~csi_sidecars.csicli.exitcodes`. Imported only
when a command runs, so ``--help`` never loads gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click
import grpc
import grpc.aio

from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.connection import Connection, ConnectTimeoutError, connect
from csi_sidecars.csi.sanitize import strip_secrets
from csi_sidecars.csicli import arguments, exitcodes, tables
from csi_sidecars.csicli.arguments import ArgumentError
from csi_sidecars.csicli.convert import build_request, message_to_data
from csi_sidecars.csicli.options import GLOBAL_KEYS
from csi_sidecars.csicli.output import StreamPrinter, TableFn, choose_format, render
from csi_sidecars.csicli.redact import Redactor
from csi_sidecars.csicli.speccheck import SpecWarning, check_reply
from csi_sidecars.csicli.streamcheck import StreamCheck
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("csi")

#: gRPC stub attribute of :class:`Connection` per service.
SERVICES = ("identity", "controller", "node", "group_controller", "snapshot_metadata")
#: Most pages ``--all`` follows before giving up on a driver that never stops paging.
MAX_PAGES = 100_000


@dataclass
class Settings:
    """The resolved global options of one invocation."""

    endpoint: str
    timeout: float
    connect_timeout: float
    output: str | None
    v: int
    strict: bool
    redactor: Redactor = field(default_factory=Redactor)

    def format(self) -> str:
        """The output format for standard output."""
        return choose_format(self.output, sys.stdout)


def settings_of(ctx: click.Context) -> Settings:
    """The global options: the group's values, overridden by those given after the command.

    Raises:
        click.UsageError: when no endpoint was given at all.
    """
    values: dict[str, Any] = dict(ctx.obj or {})
    for key in GLOBAL_KEYS:
        if ctx.params.get(key) is not None:
            values[key] = ctx.params[key]
    try:
        endpoint = arguments.normalize_endpoint(values.get("endpoint") or "")
    except ArgumentError as err:
        raise click.UsageError(str(err), ctx) from None
    return Settings(
        endpoint=endpoint,
        timeout=float(values.get("timeout") or 30.0),
        connect_timeout=float(values.get("connect_timeout") or 5.0),
        output=values.get("output"),
        v=int(values.get("v") or 0),
        strict=bool(values.get("strict")),
    )


def request_data(
    ctx: click.Context,
    explicit: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    required: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The request data of a command: defaults, then ``-f``, then the flags, then secrets.

    Args:
        ctx: the command's context (``request_file``, ``secrets_file``, ``secrets_env``).
        explicit: fields from the command's flags; None values are "not given".
        defaults: fields used unless a flag sets them, and only without a request file.
        required: ``(field, how to give it)`` pairs that must be set after merging, unless
            a request file was given.

    Raises:
        click.UsageError: for a bad request file or secret source, or a missing field.
    """
    try:
        path = ctx.params.get("request_file")
        from_file = arguments.load_request(path) if path else {}
        secrets = arguments.load_secrets(
            ctx.params.get("secrets_file"), ctx.params.get("secrets_env")
        )
        # A request file is the request: defaults apply only without one.
        base = {} if path else defaults or {}
        data = arguments.merge_request(base, from_file, {**explicit, "secrets": secrets})
        data = dict(arguments.expand_sizes(data))
    except ArgumentError as err:
        raise click.UsageError(str(err), ctx) from None
    # With -f the request is sent as written, so a driver's validation can be tested too.
    for name, how in () if path else required:
        if not arguments.has_field(data, name):
            raise click.UsageError(f"missing {how}", ctx)
    return data


def _secret_values(data: Any) -> list[str]:
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "secrets" and isinstance(value, dict):
                out.extend(str(v) for v in value.values())
            else:
                out.extend(_secret_values(value))
    elif isinstance(data, list):
        for value in data:
            out.extend(_secret_values(value))
    return out


@contextlib.contextmanager
def logging_for(settings: Settings) -> Iterator[None]:
    """Log at ``-v`` to standard error through the redactor; restore the default after."""
    rlog.configure(settings.v, "text", stream=settings.redactor.stream(sys.stderr))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        rlog.configure()


def echo_err(settings: Settings, text: str) -> None:
    """Write a line to standard error, secret values scrubbed."""
    click.echo(settings.redactor.text(text), err=True)


def print_warnings(settings: Settings, warnings: Sequence[SpecWarning]) -> None:
    """Print spec warnings to standard error."""
    for warning in warnings:
        echo_err(settings, f"warning: {warning}")


async def open_connection(settings: Settings) -> Connection | None:
    """Connect, or print why not and return None."""
    try:
        return await connect(
            settings.endpoint, timeout=settings.connect_timeout, termination_log=None
        )
    except ConnectTimeoutError:
        hint = ""
        if settings.endpoint.startswith("unix://") and not _exists(
            settings.endpoint[len("unix://") :]
        ):
            hint = " (no socket at that path)"
        echo_err(
            settings,
            f"error: cannot reach the driver at {settings.endpoint}{hint} within "
            f"{settings.connect_timeout:g}s",
        )
        return None


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def stub_method(conn: Connection, service: str, method: str) -> Any:
    """The bound stub method ``method`` of ``service`` (an attribute name in :data:`SERVICES`)."""
    return getattr(getattr(conn, service), method)


async def call_unary(
    conn: Connection, service: str, method: str, request: Any, settings: Settings, page_all: bool
) -> tuple[Any, list[SpecWarning]]:
    """Call once (or every page with ``page_all``); the reply and the spec warnings.

    Raises:
        grpc.aio.AioRpcError: when a call fails.
    """
    fn = stub_method(conn, service, method)
    reply = await fn(request, timeout=settings.timeout)
    warnings = check_reply(method, request, reply)
    if not page_all:
        return reply, warnings
    entries = list(reply.entries)
    seen = {request.starting_token}
    pages = 1
    while reply.next_token:
        if reply.next_token in seen or pages >= MAX_PAGES:
            warnings.append(
                SpecWarning(
                    method,
                    "next_token",
                    f"repeats {reply.next_token!r}, so paging would never end; stopped",
                    method,
                    "use the next_token as a value for the starting_token field in the next "
                    "request",
                )
            )
            break
        seen.add(reply.next_token)
        request.starting_token = reply.next_token
        reply = await fn(request, timeout=settings.timeout)
        warnings.extend(check_reply(method, request, reply))
        entries.extend(reply.entries)
        pages += 1
    merged = type(reply)()
    merged.entries.extend(entries)
    return merged, warnings


def _exit(ctx: click.Context, code: int) -> NoReturn:
    ctx.exit(code)
    raise AssertionError("unreachable")  # ctx.exit raises


def run_unary(
    ctx: click.Context,
    service: str,
    method: str,
    explicit: dict[str, Any],
    *,
    defaults: dict[str, Any] | None = None,
    required: Sequence[tuple[str, str]] = (),
    table: TableFn = tables.fields,
    page_all: bool = False,
    verdict: Callable[[Any], int] | None = None,
) -> NoReturn:
    """Run one unary call for a command and exit with its code (see the module docstring).

    Args:
        ctx: the command's context.
        service: the stub attribute (one of :data:`SERVICES`).
        method: the RPC name, e.g. ``CreateVolume``.
        explicit: request fields from the command's flags (None: not given).
        defaults: request fields used unless the file or a flag sets them.
        required: fields that must be set, with how to give them, for the usage error.
        table: the ``-o table`` layout of the reply.
        page_all: follow ``next_token`` and print every entry (``--all``).
        verdict: exit code for a successful reply (Probe answering not ready exits 1).
    """
    settings = settings_of(ctx)
    data = request_data(ctx, explicit, defaults, required)
    settings.redactor.add(_secret_values(data))
    try:
        request = build_request(f"{method}Request", data)
    except ArgumentError as err:
        raise click.UsageError(str(err), ctx) from None
    fmt = settings.format()

    async def main() -> int:
        conn = await open_connection(settings)
        if conn is None:
            return exitcodes.UNREACHABLE
        async with conn:
            try:
                reply, warnings = await call_unary(
                    conn, service, method, request, settings, page_all
                )
            except grpc.aio.AioRpcError as err:
                echo_err(settings, f"error: {method}: {format_error(err)}")
                return exitcodes.for_grpc_code(err.code().name)
        print_warnings(settings, warnings)
        text = render(settings.redactor.data(message_to_data(reply)), fmt, table)
        if text:
            click.echo(text)
        if settings.strict and warnings:
            return exitcodes.SPEC_VIOLATION
        return verdict(reply) if verdict is not None else exitcodes.OK

    with logging_for(settings):
        code = asyncio.run(main())
    _exit(ctx, code)


def run_stream(
    ctx: click.Context,
    method: str,
    explicit: dict[str, Any],
    *,
    required: Sequence[tuple[str, str]] = (),
    retries: int = 0,
) -> NoReturn:
    """Run a SnapshotMetadata stream for a command, printing messages as they arrive.

    With ``retries``, a stream that breaks with a retryable code is re-requested from just
    after the last tuple received, as the spec allows; ``--timeout`` bounds each attempt.
    """
    settings = settings_of(ctx)
    data = request_data(ctx, explicit, None, required)
    settings.redactor.add(_secret_values(data))
    try:
        request: Any = build_request(f"{method}Request", data)
    except ArgumentError as err:
        raise click.UsageError(str(err), ctx) from None
    printer = StreamPrinter(
        sys.stdout, settings.format(), tables.block_header, tables.BLOCK_COLUMNS, tables.block_rows
    )
    retryable = {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }

    async def main() -> int:
        conn = await open_connection(settings)
        if conn is None:
            return exitcodes.UNREACHABLE
        check = StreamCheck(method, request)
        warned = False
        attempt = 0
        async with conn:
            while True:
                fn = stub_method(conn, "snapshot_metadata", method)
                if rlog.v(5):
                    log.info(
                        "GRPC call",
                        method=f"/csi.v1.SnapshotMetadata/{method}",
                        request=strip_secrets(request),
                    )
                try:
                    async for msg in fn(request, timeout=settings.timeout):
                        if rlog.v(5):
                            log.info("GRPC stream message", response=strip_secrets(msg))
                        warnings = check.feed(msg)
                        print_warnings(settings, warnings)
                        warned = warned or bool(warnings)
                        printer.message(settings.redactor.data(message_to_data(msg)))
                except grpc.aio.AioRpcError as err:
                    if err.code() in retryable and attempt < retries:
                        attempt += 1
                        request.starting_offset = check.resume_offset()
                        echo_err(
                            settings,
                            f"warning: {method}: stream broke "
                            f"({format_error(err)}); resuming at offset "
                            f"{request.starting_offset} (retry {attempt}/{retries})",
                        )
                        continue
                    echo_err(settings, f"error: {method}: {format_error(err)}")
                    return exitcodes.for_grpc_code(err.code().name)
                if rlog.v(5):
                    log.info("GRPC stream end", method=f"/csi.v1.SnapshotMetadata/{method}")
                break
        return exitcodes.SPEC_VIOLATION if settings.strict and warned else exitcodes.OK

    with logging_for(settings):
        code = asyncio.run(main())
    _exit(ctx, code)
