"""The Kubernetes flags every controller role shares, and what they build.

:func:`kube_options` adds the csi-lib-utils standard flags (``--kubeconfig``, ``--kube-api-qps``
5, ``--kube-api-burst`` 10, ``--leader-election`` and its namespace, lease duration 15s, renew
deadline 10s, retry period 5s and labels) plus ``--leader-election-release-on-stop`` (ours, on by
default) to a click command, and hands the command one :class:`KubeOptions` as ``kube``.
``--retry-interval-start`` / ``--retry-interval-max`` differ per role, so roles declare them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import click

from csi_sidecars.kube.client import KubeClient, user_agent
from csi_sidecars.kube.config import ClientConfig, load_client_config
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.leaderelection import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    EventSink,
    LeaderElectionConfig,
    LeaderElector,
    default_identity,
    lease_namespace,
    parse_labels,
)
from csi_sidecars.kube.resources import LEASES, JsonDict
from csi_sidecars.runtime.flags import DURATION, bool_flag

F = TypeVar("F", bound=Callable[..., Any])


class RouteTable(Protocol):
    """Anything that takes extra HTTP routes (e.g. runtime.http.HttpServer)."""

    def add(self, path: str, handler: Any) -> None:
        """Register ``handler`` at ``path``."""
        ...


@dataclass(slots=True)
class KubeOptions:
    """The parsed Kubernetes flags of a controller role."""

    kubeconfig: str = ""
    master: str = ""
    qps: float = 5.0
    burst: int = 10
    leader_election: bool = False
    leader_election_namespace: str = ""
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    leader_election_labels: dict[str, str] = field(default_factory=dict)
    release_on_stop: bool = True
    _config: ClientConfig | None = None

    async def client_config(self) -> ClientConfig:
        """The loaded connection settings (loaded once)."""
        if self._config is None:
            self._config = await load_client_config(self.kubeconfig or None, master=self.master)
        return self._config

    async def client(self, role: str) -> KubeClient:
        """The role's main client, throttled by ``--kube-api-qps`` / ``--kube-api-burst``."""
        return KubeClient(
            await self.client_config(), qps=self.qps, burst=self.burst, agent=user_agent(role)
        )

    async def leader_election_client(self, role: str) -> KubeClient:
        """A second client with its own token bucket, used only for the Lease."""
        return KubeClient(
            await self.client_config(),
            qps=self.qps,
            burst=self.burst,
            agent=user_agent(role) + " leader-election",
        )

    def leader_election_config(
        self, lock_name: str, identity: str | None = None
    ) -> LeaderElectionConfig:
        """The Lease settings for ``lock_name`` (sanitised)."""
        return LeaderElectionConfig(
            lock_name=lock_name,
            namespace=lease_namespace(self.leader_election_namespace),
            identity=identity or default_identity(),
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
            labels=dict(self.leader_election_labels),
            release_on_cancel=self.release_on_stop,
        )

    async def run(
        self,
        role: str,
        lock_name: str,
        lead: Callable[[], Awaitable[Any]],
        stop: asyncio.Event,
        *,
        routes: RouteTable | None = None,
        event_sink: EventSink | None = None,
    ) -> None:
        """Run ``lead()`` until ``stop``, under leader election when ``--leader-election``.

        With an HTTP route table, ``/healthz/leader-election`` is registered on it. Losing the
        lease exits the process with code 1. On ``stop``, ``lead()`` is cancelled and awaited
        (with or without leader election), so its cleanup has finished when this returns.
        """
        if not self.leader_election:
            lead_task = asyncio.ensure_future(lead())
            stop_task = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({lead_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lead_task.cancel()
                stop_task.cancel()
                # Let lead()'s cleanup finish before returning. asyncio.wait neither raises the
                # task's CancelledError nor swallows a cancellation of this coroutine.
                await asyncio.wait({lead_task, stop_task})
            if lead_task.done() and not lead_task.cancelled() and lead_task.exception():
                raise lead_task.exception()  # type: ignore[misc]
            return
        async with await self.leader_election_client(role) as le_client:
            config = self.leader_election_config(lock_name)
            recorder: EventRecorder | None = None
            if event_sink is None:
                # As in Go: LeaderElection events on the Lease from "<lock>/<identity>".
                recorder = EventRecorder(le_client, f"{config.lock_name}/{config.identity}")
                rec = recorder

                def event_sink(obj: JsonDict, etype: str, reason: str, message: str) -> None:
                    rec.event(obj, etype, reason, message, resource=LEASES)

            elector = LeaderElector(le_client, config, event_sink=event_sink)
            if routes is not None:
                routes.add("/healthz/leader-election", elector.healthz_handler)
            sender = asyncio.ensure_future(recorder.run()) if recorder is not None else None
            try:
                await elector.run(lead, stop)
            finally:
                if sender is not None:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)


def _labels(_: click.Context, __: click.Parameter, value: str) -> dict[str, str]:
    try:
        return parse_labels(value or "")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def kube_options(func: F | None = None, *, master: bool = False) -> Any:
    """Add the shared Kubernetes flags; the command receives them as ``kube: KubeOptions``.

    Use as ``@kube_options`` or, for the roles whose Go sidecar has ``--master``
    (provisioner, resizer), ``@kube_options(master=True)``.
    """
    if func is None:
        return functools.partial(_kube_options, master=master)
    return _kube_options(func, master=master)


def _kube_options(func: F, *, master: bool) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = KubeOptions(
            kubeconfig=kwargs.pop("kubeconfig"),
            master=kwargs.pop("master", ""),
            qps=kwargs.pop("kube_api_qps"),
            burst=kwargs.pop("kube_api_burst"),
            leader_election=kwargs.pop("leader_election"),
            leader_election_namespace=kwargs.pop("leader_election_namespace"),
            lease_duration=kwargs.pop("leader_election_lease_duration"),
            renew_deadline=kwargs.pop("leader_election_renew_deadline"),
            retry_period=kwargs.pop("leader_election_retry_period"),
            leader_election_labels=kwargs.pop("leader_election_labels"),
            release_on_stop=kwargs.pop("leader_election_release_on_stop"),
        )
        return func(*args, kube=opts, **kwargs)

    decorators = [
        click.option(
            "--kubeconfig",
            default="",
            help="Path to a kubeconfig file; empty means KUBECONFIG, then in-cluster config.",
        ),
        *(
            [
                click.option(
                    "--master",
                    default="",
                    help="API server URL; overrides the kubeconfig's server (alone: that URL "
                    "without credentials).",
                )
            ]
            if master
            else []
        ),
        click.option(
            "--kube-api-qps",
            type=float,
            default=5.0,
            show_default=True,
            help="Requests per second to the API server (client-side limit).",
        ),
        click.option(
            "--kube-api-burst",
            type=int,
            default=10,
            show_default=True,
            help="Requests allowed in a burst above --kube-api-qps.",
        ),
        bool_flag("--leader-election", help="Run only while holding a Lease."),
        click.option(
            "--leader-election-namespace",
            default="",
            help="Namespace of the Lease; default POD_NAMESPACE, then the pod's own namespace.",
        ),
        click.option(
            "--leader-election-lease-duration",
            type=DURATION,
            default="15s",
            show_default=True,
            help="How long others wait after the last renewal before taking over.",
        ),
        click.option(
            "--leader-election-renew-deadline",
            type=DURATION,
            default="10s",
            show_default=True,
            help="How long the leader keeps trying to renew before it gives up and exits.",
        ),
        click.option(
            "--leader-election-retry-period",
            type=DURATION,
            default="5s",
            show_default=True,
            help="Time between acquire and renew attempts.",
        ),
        click.option(
            "--leader-election-labels",
            default="",
            callback=_labels,
            help="Labels for the Lease, as key:value pairs separated by commas.",
        ),
        bool_flag(
            "--leader-election-release-on-stop",
            default=True,
            help="Release the Lease on SIGTERM so a standby takes over at once.",
        ),
    ]
    out: Any = wrapper
    for deco in reversed(decorators):
        out = deco(out)
    return out  # type: ignore[no-any-return]
