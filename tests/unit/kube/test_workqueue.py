"""Work queue semantics and back-off, driven by a fake clock (no real sleeps)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.workqueue import After, ExponentialBackoff, Result, WorkQueue
from csi_sidecars.runtime.metrics import Registry


def sample(registry: Registry, name: str, queue: str = "q") -> float:
    value = registry.get_sample_value(name, {"name": queue})
    return 0.0 if value is None else value


async def test_add_deduplicates_queued_keys() -> None:
    q = WorkQueue("q")
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0


async def test_key_added_while_processing_runs_again_after_done() -> None:
    q = WorkQueue("q")
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    # Not handed out while still processing.
    assert len(q) == 0
    assert q.processing == {"a"}
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_key_never_processed_by_two_workers() -> None:
    q = WorkQueue("q")
    running: set[str] = set()
    overlaps = 0
    calls = 0
    gate = asyncio.Event()
    third = asyncio.Event()

    async def handler(key: str) -> None:
        nonlocal overlaps, calls
        if key in running:
            overlaps += 1
        running.add(key)
        calls += 1
        if calls == 3:
            third.set()
        await gate.wait()
        running.discard(key)

    task = asyncio.create_task(q.run(handler, workers=4))
    q.add("a")
    for _ in range(10):
        await asyncio.sleep(0)
    q.add("a")  # while a worker holds it
    q.add("b")
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == {"a", "b"}
    gate.set()
    await asyncio.wait_for(third.wait(), 5)
    q.shutdown()
    await asyncio.wait_for(task, 5)
    assert overlaps == 0
    assert calls == 3  # a, b, and a again


async def test_exponential_backoff_values_and_cap() -> None:
    b = ExponentialBackoff(start=1.0, maximum=300.0)
    delays = [b.when("k") for _ in range(12)]
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[-1] == 300.0
    assert b.num_requeues("k") == 12
    assert b.when("other") == 1.0
    b.forget("k")
    assert b.num_requeues("k") == 0
    assert b.when("k") == 1.0
    huge = ExponentialBackoff(0.1, 5.0)
    for _ in range(200):
        assert huge.when("x") <= 5.0


async def test_rate_limited_add_waits_for_backoff_on_fake_clock() -> None:
    clock = FakeClock()
    q = WorkQueue("q", backoff=ExponentialBackoff(2.0, 60.0), clock=clock)
    q.add_rate_limited("a")  # 2 s
    await clock.advance(1.9)
    assert len(q) == 0
    await clock.advance(0.2)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    q.add_rate_limited("a")  # 4 s
    await clock.advance(3.9)
    assert len(q) == 0
    await clock.advance(0.2)
    assert len(q) == 1
    await q.close()


async def test_add_after_earlier_time_wins_and_dedups() -> None:
    clock = FakeClock()
    q = WorkQueue("q", clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 3)
    q.add_after("a", 8)
    await clock.advance(3.5)
    assert len(q) == 1
    await clock.advance(10)
    assert len(q) == 1  # the later entries do not add it again
    await q.close()


async def test_failing_handler_retries_with_backoff_then_forgets_on_success() -> None:
    clock = FakeClock()
    q = WorkQueue("q", backoff=ExponentialBackoff(1.0, 100.0), clock=clock)
    attempts: list[float] = []

    async def handler(key: str) -> bool:
        attempts.append(clock.monotonic())
        if len(attempts) < 4:
            raise RuntimeError("boom")
        return True

    task = asyncio.create_task(q.run(handler, workers=2))
    q.add("a")
    await clock.settle()
    for _ in range(10):
        await clock.advance(1.0)
    assert len(attempts) == 4
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps == [1.0, 2.0, 4.0]
    assert q.num_requeues("a") == 0
    q.shutdown()
    await asyncio.wait_for(task, 5)


async def test_handler_returning_false_requeues() -> None:
    clock = FakeClock()
    q = WorkQueue("q", backoff=ExponentialBackoff(5.0, 100.0), clock=clock)
    calls = 0

    async def handler(key: str) -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    task = asyncio.create_task(q.run(handler))
    q.add("a")
    await clock.settle()
    assert calls == 1
    assert q.num_requeues("a") == 1
    await clock.advance(5.0)
    assert calls == 2
    assert q.num_requeues("a") == 0
    q.shutdown()
    await asyncio.wait_for(task, 5)


async def test_handler_returning_after_requeues_later_without_backoff() -> None:
    clock = FakeClock()
    q = WorkQueue("q", backoff=ExponentialBackoff(1.0, 100.0), clock=clock)
    seen: list[float] = []

    async def handler(key: str) -> Result:
        seen.append(clock.monotonic())
        if len(seen) == 1:
            return False  # one failure: back-off count 1
        return After(30.0) if len(seen) < 4 else True

    task = asyncio.create_task(q.run(handler))
    q.add("a")
    await clock.settle()
    await clock.advance(1.0)
    assert len(seen) == 2
    assert q.num_requeues("a") == 0  # After resets the back-off
    await clock.advance(29.0)
    assert len(seen) == 2
    await clock.advance(1.0)
    assert len(seen) == 3
    await clock.advance(30.0)
    assert len(seen) == 4
    await clock.advance(100.0)
    assert len(seen) == 4  # done: not re-added
    q.shutdown()
    await asyncio.wait_for(task, 5)


async def test_shutdown_drains_in_flight_work_and_drops_queued() -> None:
    q = WorkQueue("q")
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(key: str) -> None:
        started.set()
        await release.wait()
        finished.append(key)

    task = asyncio.create_task(q.run(handler, workers=1))
    q.add("a")
    q.add("b")
    await asyncio.wait_for(started.wait(), 5)
    q.shutdown()
    q.add("c")  # ignored after shutdown
    drain = asyncio.create_task(q.drain())
    await asyncio.sleep(0)
    assert not drain.done()
    release.set()
    await asyncio.wait_for(drain, 5)
    await asyncio.wait_for(task, 5)
    assert finished == ["a"]
    assert await q.get() is None


async def test_get_blocks_until_add() -> None:
    q = WorkQueue("q")
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 5) == "x"


async def test_metrics_by_queue_name_in_given_registry() -> None:
    registry = Registry()
    clock = FakeClock()
    q = WorkQueue("q", registry=registry, clock=clock)
    other = WorkQueue("other", registry=registry, clock=clock)
    q.add("a")
    q.add("a")
    q.add("b")
    other.add("z")
    assert sample(registry, "workqueue_adds_total") == 2
    assert sample(registry, "workqueue_depth") == 2
    assert sample(registry, "workqueue_depth", "other") == 1
    await clock.advance(0.5)
    key = await q.get()
    assert key == "a"
    assert sample(registry, "workqueue_depth") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == pytest.approx(0.5)
    await clock.advance(2.0)
    q.done(key)
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1
    assert sample(registry, "workqueue_work_duration_seconds_sum") == pytest.approx(2.0)
    q.add_rate_limited("a")
    assert sample(registry, "workqueue_retries_total") == 1
    await q.close()
    await other.close()


async def test_one_key_wakes_one_idle_worker() -> None:
    q = WorkQueue("q")
    resumed = 0

    async def getter() -> str | None:
        nonlocal resumed
        key = await q.get()
        resumed += 1
        return key

    getters = [asyncio.ensure_future(getter()) for _ in range(20)]
    await asyncio.sleep(0)
    q.add("a")
    for _ in range(5):
        await asyncio.sleep(0)
    done = [g for g in getters if g.done()]
    assert [g.result() for g in done] == ["a"]
    # The other workers were never woken: their waits are the ones they started with.
    assert resumed == 1
    assert len(q._getters) == 19
    assert all(not w.done() for w in q._getters)
    q.shutdown()
    assert await asyncio.gather(*getters) == ["a", *([None] * 19)]


async def test_a_cancelled_worker_passes_its_wake_up_on() -> None:
    q = WorkQueue("q")
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.add("a")  # wakes the first getter ...
    first.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"
    assert first.cancelled()
