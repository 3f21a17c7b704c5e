"""The start-up backlog: settled keys enter the queue only while it is short, none is lost."""

from __future__ import annotations

import asyncio

from csi_sidecars.kube.workqueue import WorkQueue
from csi_sidecars.snapshotcontroller.backlog import Backlog


def test_top_up_fills_a_short_queue_to_twice_the_low_water_mark() -> None:
    q = WorkQueue("t")
    backlog = Backlog(q, low_water=4)
    for i in range(20):
        backlog.defer(f"k{i}")
    assert backlog.top_up() == 8
    assert len(q) == 8 and len(backlog) == 12
    # busy (8 >= 4): nothing more until the workers catch up
    assert backlog.top_up() == 0
    q.add("new")  # new work goes straight to the queue, ahead of the rest of the backlog
    assert len(q) == 9


async def test_feed_moves_every_key_and_stops_with_the_queue() -> None:
    q = WorkQueue("t")
    backlog = Backlog(q, low_water=2)
    keys = [f"k{i}" for i in range(50)]
    for key in keys:
        backlog.defer(key)
    seen: list[str] = []
    all_seen = asyncio.Event()

    async def handler(key: str) -> None:
        seen.append(key)
        if len(seen) == len(keys):
            all_seen.set()

    workers = asyncio.create_task(q.run(handler, workers=2))
    feeder = asyncio.create_task(backlog.feed())
    async with asyncio.timeout(10):
        await all_seen.wait()
    assert seen == keys  # in order, each once
    q.shutdown()
    async with asyncio.timeout(5):
        await feeder
    workers.cancel()
