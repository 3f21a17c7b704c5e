"""New work first: objects that look settled when first listed wait behind everything else.

At start-up every cached snapshot and content is synced once, as in Go, to check it. Queued in
list order, a snapshot created while the controller was down (or just after it started) waited
behind all of them: with 10,000 settled snapshots it was cut seconds later, with 15,000 in Go
minutes later (external-snapshotter #1148). Here an object that looks settled when it is first
listed goes to a :class:`Backlog` instead; the backlog is fed into the queue only while the
queue is short, so new and unsettled objects are handled first, and every object is still
looked at once.
"""

from __future__ import annotations

import asyncio
from collections import deque

from csi_sidecars.kube.workqueue import WorkQueue

#: How often the feeder looks at the queue while it is busy or the backlog is empty (seconds).
POLL = 0.01
IDLE_POLL = 0.2


class Backlog:
    """Keys that may wait until ``queue`` has little else to do.

    Args:
        queue: the work queue the keys go to.
        low_water: top the queue up only while fewer keys than this are queued or processed.
    """

    def __init__(self, queue: WorkQueue, low_water: int) -> None:
        self.queue = queue
        self.low_water = max(1, low_water)
        self._keys: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._keys)

    def defer(self, key: str) -> None:
        """Queue ``key`` once the queue is short."""
        self._keys.append(key)

    def top_up(self) -> int:
        """Move keys into the queue while it holds fewer than ``2 * low_water``; how many."""
        busy = len(self.queue) + len(self.queue.processing)
        if busy >= self.low_water:
            return 0
        moved = 0
        while self._keys and busy + moved < 2 * self.low_water:
            self.queue.add(self._keys.popleft())
            moved += 1
        return moved

    async def feed(self) -> None:
        """Top the queue up until it shuts down (then the remaining keys are dropped, as the
        queue drops its own: the next process lists everything again)."""
        while not self.queue.shutting_down:
            self.top_up()
            await asyncio.sleep(POLL if self._keys else IDLE_POLL)
        self._keys.clear()
