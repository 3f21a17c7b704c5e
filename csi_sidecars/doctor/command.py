"""``csi-sidecars doctor``: why is my storage stuck?

``csi-sidecars doctor [KIND [NAME]] [-n NAMESPACE] [-o text|json]``: with a kind and a name it
explains that one object (``pvc``, ``pv``, ``volumeattachment``, ``volumesnapshot``, ``node``,
``driver``, or kubectl's ``kind/name``); with a kind alone it scans that kind; alone it scans the
cluster (or one namespace) for stuck objects. Exit status: 0 healthy, 1 a problem was found,
2 a usage error or the cluster could not be read. Only read permissions are needed.
"""

from __future__ import annotations

import asyncio
import sys

import click

from csi_sidecars import __version__
from csi_sidecars.doctor.gather import GatherError, gather
from csi_sidecars.doctor.render import render_json, render_text
from csi_sidecars.doctor.report import Report
from csi_sidecars.doctor.scan import KIND_ALIASES, NAMESPACED, Target, diagnose, resolve_kind
from csi_sidecars.kube.client import KubeClient, user_agent
from csi_sidecars.kube.config import context_namespace, load_client_config

#: A one-shot reader may use more of the API server than a controller's steady 5 QPS.
QPS = 50.0
BURST = 100
REQUEST_TIMEOUT = 30.0
USAGE_ERROR = 2


def parse_target(kind: str | None, name: str | None, namespace: str | None) -> Target:
    """The :class:`Target` of the command-line arguments.

    Raises:
        click.UsageError: unknown kind, or a name for a kind that has none.
    """
    if kind and "/" in kind and name is None:
        kind, _, name = kind.partition("/")
        if not name:
            raise click.UsageError(f"missing name after {kind}/")
    if kind is None:
        return Target(namespace=namespace)
    resolved = resolve_kind(kind)
    if resolved is None:
        known = ", ".join(
            sorted({"pvc", "pv", "volumeattachment", "volumesnapshot", "node", "driver"})
        )
        raise click.UsageError(f"unknown kind {kind!r}; use one of: {known}")
    if namespace is not None and name is not None and resolved not in NAMESPACED:
        namespace = None  # kubectl ignores -n for cluster-scoped objects too
    return Target(resolved, name, namespace)


async def run(
    target: Target, kubeconfig: str = "", context: str = "", default_namespace: str = ""
) -> Report:
    """Read the cluster and diagnose ``target``.

    Raises:
        GatherError: the cluster could not be read.
        RuntimeError: no client configuration could be loaded.
    """
    config = await load_client_config(kubeconfig or None, context_name=context)
    if target.name is not None and target.kind in NAMESPACED and target.namespace is None:
        target = Target(target.kind, target.name, default_namespace or "default")
    async with KubeClient(
        config, qps=QPS, burst=BURST, agent=user_agent("doctor"), request_timeout=REQUEST_TIMEOUT
    ) as client:
        snap = await gather(client, target)
    return diagnose(snap, target)


@click.command(
    "doctor",
    context_settings={"help_option_names": ["--help", "-h"], "max_content_width": 100},
)
@click.argument("kind", required=False, metavar="[KIND")
@click.argument("name", required=False, metavar="[NAME]]")
@click.option(
    "--kubeconfig",
    default="",
    help="Path to a kubeconfig (default: KUBECONFIG, then the in-cluster service account).",
)
@click.option("--context", default="", help="The kubeconfig context to use (default: current).")
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Namespace of the object; for a scan, look only at this namespace (default: all).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.version_option(__version__, "--version", message="csi-sidecars doctor %(version)s")
def command(
    kind: str | None,
    name: str | None,
    kubeconfig: str,
    context: str,
    namespace: str | None,
    output: str,
) -> None:
    """Explain why storage is stuck: a Pending claim, an attachment that never attaches, a
    volume or snapshot stuck Terminating.

    KIND is pvc, pv, volumeattachment (va), volumesnapshot (vs), node or driver; NAME the
    object (also as KIND/NAME). Without NAME, every object of KIND is checked; without KIND,
    the whole cluster (or the namespace given with -n). Exit status: 0 healthy, 1 a problem
    was found, 2 usage error or the cluster could not be read.
    """
    target = parse_target(kind, name, namespace)
    default_ns = context_namespace(kubeconfig or None, context) if target.name else ""
    try:
        report = asyncio.run(run(target, kubeconfig, context, default_ns))
    except (GatherError, RuntimeError) as exc:
        click.echo(f"csi-sidecars doctor: {exc}", err=True)
        sys.exit(USAGE_ERROR)
    click.echo(render_json(report) if output == "json" else render_text(report), nl=False)
    sys.exit(report.exit_code())


__all__ = ["KIND_ALIASES", "command", "parse_target", "run"]
