"""Running ``csi-sidecars csi check``: connect, run the scenario, print the result table.

Kept apart from :mod:`csi_sidecars.csicli.check` so the command's ``--help`` does not load gRPC.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NoReturn

import click

from csi_sidecars.csi.connection import Connection
from csi_sidecars.csicli import exitcodes, runner
from csi_sidecars.csicli.lifecycle import Steps
from csi_sidecars.csicli.output import Table, dump_json, dump_yaml, format_tables
from csi_sidecars.csicli.scenario import CheckOptions, Scenario

__all__ = ["CheckOptions", "run"]


def report(steps: Steps, seconds: float, fmt: str, volume_name: str) -> str:
    """The check's result in ``fmt``: a table and a summary line, or JSON/YAML data."""
    if fmt in ("json", "yaml"):
        data: dict[str, Any] = {
            "passed": not steps.failed(),
            "summary": steps.summary(),
            "seconds": round(seconds, 3),
            "volume_name": volume_name,
            "steps": [r.to_data() for r in steps.results],
        }
        return dump_json(data) if fmt == "json" else dump_yaml(data)
    rows = [
        (r.step, r.rpc, r.result, f"{r.seconds * 1000:.0f}ms" if r.seconds else "-", r.detail)
        for r in steps.results
    ]
    verdict = "FAILED" if steps.failed() else "PASSED"
    table = Table(("STEP", "RPC", "RESULT", "TIME", "DETAIL"), rows)
    summary = Table((), title=f"{verdict}: {steps.summary()} in {seconds:.2f}s")
    return format_tables([table, summary])


def run(ctx: click.Context, opts: CheckOptions, node_endpoint: str | None) -> NoReturn:
    """Run the check for the ``check`` command and exit (0 when no step failed, else 1)."""
    settings = runner.settings_of(ctx)
    settings.redactor.add((opts.secrets or {}).values())
    fmt = settings.format()

    async def main() -> int:
        ctrl = await runner.open_connection(settings)
        if ctrl is None:
            return exitcodes.UNREACHABLE
        node: Connection = ctrl
        try:
            if node_endpoint:
                node_settings = runner.Settings(**{**settings.__dict__, "endpoint": node_endpoint})
                other = await runner.open_connection(node_settings)
                if other is None:
                    return exitcodes.UNREACHABLE
                node = other
            steps = Steps(ctrl, node, settings.timeout)
            start = time.monotonic()
            await Scenario(steps, opts).run()
            text = report(steps, time.monotonic() - start, fmt, opts.volume_name())
            click.echo(settings.redactor.text(text))
            return exitcodes.FAILURE if steps.failed() else exitcodes.OK
        finally:
            if node is not ctrl:
                await node.close()
            await ctrl.close()

    with runner.logging_for(settings):
        code = asyncio.run(main())
    ctx.exit(code)
    raise AssertionError("unreachable")
