"""The shared Kubernetes flags, parsed Go-style."""

from __future__ import annotations

import asyncio

import click
import pytest
from click.testing import CliRunner

from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.runtime.flags import GoCommand

seen: list[KubeOptions] = []


@click.command(cls=GoCommand)
@click.option("--csi-address", default="/run/csi/socket")
@kube_options
def cmd(csi_address: str, kube: KubeOptions) -> None:
    seen.append(kube)


def parse(*args: str) -> KubeOptions:
    seen.clear()
    result = CliRunner().invoke(cmd, list(args))
    assert result.exit_code == 0, result.output
    return seen[0]


def test_defaults_match_go() -> None:
    opts = parse()
    assert (opts.kubeconfig, opts.qps, opts.burst) == ("", 5.0, 10)
    assert opts.leader_election is False
    assert (opts.lease_duration, opts.renew_deadline, opts.retry_period) == (15.0, 10.0, 5.0)
    assert opts.leader_election_labels == {}
    assert opts.release_on_stop is True


def test_go_style_flags() -> None:
    opts = parse(
        "-kubeconfig=/k",
        "--kube-api-qps=50",
        "-kube-api-burst",
        "100",
        "--leader-election=true",
        "-leader-election-namespace=kube-system",
        "--leader-election-lease-duration=1m30s",
        "--leader-election-renew-deadline=20s",
        "--leader-election-retry-period=2s",
        "--leader-election-labels=a:b,c:d",
        "--leader-election-release-on-stop=false",
    )
    assert opts.kubeconfig == "/k" and opts.qps == 50.0 and opts.burst == 100
    assert opts.leader_election
    assert opts.leader_election_namespace == "kube-system"
    assert (opts.lease_duration, opts.renew_deadline, opts.retry_period) == (90.0, 20.0, 2.0)
    assert opts.leader_election_labels == {"a": "b", "c": "d"}
    assert not opts.release_on_stop
    cfg = opts.leader_election_config("external-attacher-leader-hostpath.csi.k8s.io", "pod-1")
    assert cfg.lock_name == "external-attacher-leader-hostpath-csi-k8s-io"
    assert cfg.namespace == "kube-system" and cfg.identity == "pod-1"
    assert cfg.release_on_cancel is False and cfg.labels == {"a": "b", "c": "d"}


def test_bad_labels_exit_2() -> None:
    result = CliRunner().invoke(cmd, ["--leader-election-labels=oops"])
    assert result.exit_code == 2
    assert "key:value" in result.output


async def test_run_without_leader_election_stops_on_event() -> None:
    opts = KubeOptions()
    stop = asyncio.Event()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def lead() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = asyncio.create_task(opts.run("attacher", "lock", lead, stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert cancelled.is_set()


async def test_run_without_leader_election_propagates_failure() -> None:
    async def lead() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        await KubeOptions().run("attacher", "lock", lead, asyncio.Event())


class SlowCleanupLead:
    """A ``lead()`` that runs until cancelled, then awaits a few times in its cleanup."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started = asyncio.Event()
        self.cleaned = asyncio.Event()

    async def __call__(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.fail:
                raise RuntimeError("cleanup failed")
            self.cleaned.set()

    async def start(self, stop: asyncio.Event) -> asyncio.Task[None]:
        task = asyncio.create_task(KubeOptions().run("attacher", "lock", self, stop))
        await asyncio.wait_for(self.started.wait(), 5)
        return task


async def test_run_without_leader_election_waits_for_lead_cleanup() -> None:
    # Without awaiting the cancelled lead(), run would return before its cleanup finished.
    lead, stop = SlowCleanupLead(), asyncio.Event()
    task = await lead.start(stop)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert lead.cleaned.is_set()


async def test_run_without_leader_election_raises_a_failure_of_lead_cleanup() -> None:
    lead, stop = SlowCleanupLead(fail=True), asyncio.Event()
    task = await lead.start(stop)
    stop.set()
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await asyncio.wait_for(task, 5)


async def test_cancelling_run_without_leader_election_still_cancels_it() -> None:
    lead = SlowCleanupLead()
    task = await lead.start(asyncio.Event())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lead.cleaned.is_set()
