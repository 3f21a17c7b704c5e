"""Lease leader election against the in-memory fake, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.leaderelection import (
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
    lease_namespace,
    parse_labels,
    sanitize_name,
)
from csi_sidecars.kube.resources import LEASES, ApiError


@pytest.mark.parametrize(
    ("name", "want"),
    [
        (
            "external-attacher-leader-hostpath.csi.k8s.io",
            "external-attacher-leader-hostpath-csi-k8s-io",
        ),
        ("a_b/c", "a-b-c"),
        ("ends.", "ends-X"),
        ("plain", "plain"),
    ],
)
def test_sanitize_name(name: str, want: str) -> None:
    assert sanitize_name(name) == want


def test_namespace_fallback_chain(tmp_path: pytest.TempPathFactory) -> None:
    sa = tmp_path / "namespace"  # type: ignore[operator]
    assert lease_namespace("flag", {"POD_NAMESPACE": "pod"}, str(sa)) == "flag"
    assert lease_namespace("", {"POD_NAMESPACE": "pod"}, str(sa)) == "pod"
    assert lease_namespace("", {}, str(sa)) == "default"
    sa.write_text("from-sa\n")
    assert lease_namespace("", {}, str(sa)) == "from-sa"


def test_parse_labels() -> None:
    assert parse_labels("a:b, c:d") == {"a": "b", "c": "d"}
    assert parse_labels("") == {}
    with pytest.raises(ValueError):
        parse_labels("novalue")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LeaderElectionConfig("x", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElectionConfig("x", renew_deadline=5, retry_period=5)
    assert LeaderElectionConfig("a.b").lock_name == "a-b"


def make(
    fake: FakeKube, clock: FakeClock, identity: str, lost: list[str] | None = None, **kw: object
) -> LeaderElector:
    cfg = LeaderElectionConfig("lock", namespace="ns", identity=identity, **kw)  # type: ignore[arg-type]
    return LeaderElector(
        fake,
        cfg,
        clock=clock,
        on_stopped_leading=(lambda: lost.append(identity)) if lost is not None else None,
    )


def leader_of(fake: FakeKube) -> str:
    lease = fake.peek(LEASES, "lock", "ns")
    return "" if lease is None else str(lease["spec"].get("holderIdentity") or "")


async def wait_until(
    cond: Callable[[], bool], clock: FakeClock, step: float = 0.5, limit: float = 120
) -> float:
    """Advance fake time until ``cond()``; return the fake seconds it took."""
    start = clock.monotonic()
    while not cond():
        if clock.monotonic() - start > limit:
            raise AssertionError("condition not reached in fake time")
        await clock.advance(step)
    return clock.monotonic() - start


async def test_exactly_one_leads_and_handover_within_lease_after_crash() -> None:
    fake, clock = FakeKube(), FakeClock()
    leading: set[str] = set()
    stops = {n: asyncio.Event() for n in ("a", "b")}
    electors = {n: make(fake, clock, n) for n in ("a", "b")}

    def lead_fn(name: str) -> Callable[[], object]:
        async def lead() -> None:
            leading.add(name)
            try:
                await asyncio.Event().wait()
            finally:
                leading.discard(name)

        return lead

    tasks = {n: asyncio.create_task(e.run(lead_fn(n), stops[n])) for n, e in electors.items()}  # type: ignore[arg-type]
    await wait_until(lambda: bool(leading), clock)
    for _ in range(20):
        await clock.advance(1.0)
        assert len(leading) == 1
    first = next(iter(leading))
    other = "b" if first == "a" else "a"
    assert leader_of(fake) == first
    # Crash the leader: no release, no more renewals.
    tasks[first].cancel()
    await asyncio.gather(tasks[first], return_exceptions=True)
    leading.discard(first)
    took = await wait_until(lambda: other in leading, clock)
    # Lease duration 15 s plus at most one jittered retry period (5 s * 2.2).
    assert took <= 15 + 11 + 1
    assert leader_of(fake) == other
    lease = fake.peek(LEASES, "lock", "ns")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1
    stops[other].set()
    await asyncio.wait_for(tasks[other], 5)


async def test_release_on_stop_hands_over_immediately() -> None:
    fake, clock = FakeKube(), FakeClock()
    a, b = make(fake, clock, "a"), make(fake, clock, "b")
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    b_leads = asyncio.Event()

    async def idle() -> None:
        await asyncio.Event().wait()

    async def lead_b() -> None:
        b_leads.set()
        await asyncio.Event().wait()

    ta = asyncio.create_task(a.run(idle, stop_a))
    await wait_until(a.is_leader, clock)
    tb = asyncio.create_task(b.run(lead_b, stop_b))
    await clock.advance(1.0)
    assert not b_leads.is_set()
    stop_a.set()
    await asyncio.wait_for(ta, 5)
    lease = fake.peek(LEASES, "lock", "ns")
    assert lease is not None
    assert lease["spec"].get("holderIdentity") in (None, "")
    assert lease["spec"]["leaseDurationSeconds"] == 1
    # b takes over at its next retry, well before a 15 s lease would have run out.
    took = await wait_until(b_leads.is_set, clock, step=0.25)
    assert took <= 5 * 2.2 + 0.5
    stop_b.set()
    await asyncio.wait_for(tb, 5)


async def test_no_release_when_disabled() -> None:
    fake, clock = FakeKube(), FakeClock()
    a = make(fake, clock, "a", release_on_cancel=False)
    stop = asyncio.Event()

    async def idle() -> None:
        await asyncio.Event().wait()

    t = asyncio.create_task(a.run(idle, stop))
    await wait_until(a.is_leader, clock)
    stop.set()
    await asyncio.wait_for(t, 5)
    assert leader_of(fake) == "a"


async def test_losing_the_lease_calls_callback_and_raises() -> None:
    fake, clock = FakeKube(), FakeClock()
    lost: list[str] = []
    a = make(fake, clock, "a", lost)
    cancelled = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    t = asyncio.create_task(a.run(lead, asyncio.Event()))
    await wait_until(a.is_leader, clock)
    fake.inject("replace", ApiError(500, "InternalError", "etcd down"), resource=LEASES, times=100)
    await wait_until(t.done, clock)
    with pytest.raises(LeaderElectionLost):
        await t
    assert lost == ["a"]
    assert cancelled.is_set()


async def test_renew_survives_a_transient_failure() -> None:
    fake, clock = FakeKube(), FakeClock()
    lost: list[str] = []
    a = make(fake, clock, "a", lost)
    t = asyncio.create_task(a.run(lambda: asyncio.Event().wait(), asyncio.Event()))
    await wait_until(a.is_leader, clock)
    fake.inject("replace", ApiError(500, "InternalError", "blip"), resource=LEASES, times=1)
    await clock.advance(30)
    assert not t.done()
    assert lost == []
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)


async def test_labels_and_fields_on_lease() -> None:
    fake, clock = FakeKube(), FakeClock()
    a = make(fake, clock, "a", labels={"app": "x"})
    assert await a.try_acquire_or_renew()
    lease = fake.peek(LEASES, "lock", "ns")
    assert lease is not None
    assert lease["metadata"]["labels"] == {"app": "x"}
    spec = lease["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]


async def test_healthz_check_semantics() -> None:
    fake, clock = FakeKube(), FakeClock()
    a = make(fake, clock, "a")
    b = make(fake, clock, "b")
    assert a.check() is None  # not leader: ok
    assert await a.try_acquire_or_renew()
    assert a.check() is None
    assert not await b.try_acquire_or_renew()
    await clock.advance(15 + 20 + 1)
    err = a.check()
    assert err == "failed election to renew leadership on lease lock"
    assert b.check() is None  # non-leaders report ok


async def test_healthz_handler_responses() -> None:
    fake, clock = FakeKube(), FakeClock()
    a = make(fake, clock, "a")
    resp = await a.healthz_handler(None)  # type: ignore[arg-type]
    assert (resp.status, resp.text) == (200, "ok")
    assert await a.try_acquire_or_renew()
    await clock.advance(40)
    resp = await a.healthz_handler(None)  # type: ignore[arg-type]
    assert resp.status == 500
    assert resp.text == "internal server error: failed election to renew leadership on lease lock"


async def test_became_leader_event_sink() -> None:
    fake, clock = FakeKube(), FakeClock()
    events: list[tuple[str, str, str]] = []
    b = LeaderElector(
        fake,
        LeaderElectionConfig("lock", namespace="ns", identity="b"),
        clock=clock,
        on_stopped_leading=None,
        event_sink=lambda obj, t, r, m: events.append((obj["kind"], r, m)),
    )
    a = make(fake, clock, "a")
    assert await a.try_acquire_or_renew()
    await clock.advance(16)
    assert not await b.try_acquire_or_renew()  # first sighting of a's record starts the clock
    await clock.advance(16)
    assert await b.try_acquire_or_renew()
    assert events == [("Lease", "LeaderElection", "b became leader")]


async def test_standby_retries_right_at_observed_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A crashed holder's lease is taken at its observed expiry, not a retry period later."""
    fake, clock = FakeKube(), FakeClock()
    await fake.create(
        LEASES,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "lock", "namespace": "ns"},
            "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 15},
        },
        "ns",
    )
    # Longest jitter: retries land 10.9 s apart (0, 10.9, 21.8, ...), none of them near 15 s.
    monkeypatch.setattr("csi_sidecars.kube.leaderelection.random.random", lambda: 0.99)
    leading: list[str] = []
    stop = asyncio.Event()

    async def lead() -> None:
        leading.append("b")
        await asyncio.Event().wait()

    task = asyncio.create_task(make(fake, clock, "b").run(lead, stop))
    took = await wait_until(lambda: bool(leading), clock, step=0.05)
    assert 15 <= took <= 15.5
    assert leader_of(fake) == "b"
    stop.set()
    await asyncio.wait_for(task, 5)
