"""Token bucket semantics on a fake clock."""

from __future__ import annotations

import asyncio

from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.ratelimit import TokenBucket


async def test_burst_then_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, 10, clock)
    done: list[float] = []

    async def call() -> None:
        await bucket.acquire()
        done.append(clock.monotonic())

    start = clock.monotonic()
    tasks = [asyncio.create_task(call()) for _ in range(20)]
    await clock.settle()
    assert len(done) == 10  # the burst goes through at once
    await clock.advance(1.0)
    assert len(done) == 15  # then 5 per second
    await clock.advance(1.0)
    assert len(done) == 20
    assert max(done) - start == 2.0
    await asyncio.gather(*tasks)


async def test_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 3, clock)
    for _ in range(3):
        assert bucket.reserve() == 0
    await clock.advance(100)
    assert [bucket.reserve() for _ in range(4)] == [0, 0, 0, 1.0]


def test_defaults_and_unlimited() -> None:
    b = TokenBucket(0, 0)
    assert (b.qps, b.burst) == (5.0, 10)
    u = TokenBucket(-1, 1)
    assert u.unlimited and all(u.reserve() == 0 for _ in range(1000))


async def test_try_take_never_waits() -> None:
    clock = FakeClock()
    b = TokenBucket(0.5, 2, clock)
    assert b.try_take() and b.try_take() and not b.try_take()
    await clock.advance(2.0)
    assert b.try_take() and not b.try_take()
