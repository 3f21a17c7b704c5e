"""A keyed work queue with client-go semantics, per-key exponential back-off and metrics.

Semantics (those of client-go's rate-limiting work queue):

* a key is queued at most once (adding a queued key is a no-op);
* a key is never handed to two workers at once; a key added while a worker holds it is queued
  again when that worker calls :meth:`WorkQueue.done`;
* :meth:`WorkQueue.add_rate_limited` re-adds a key after ``start * 2**failures`` seconds, capped at
  ``maximum`` (``--retry-interval-start`` / ``--retry-interval-max``); :meth:`WorkQueue.forget`
  resets the count after a success;
* a handler may return :class:`After`: the key's back-off is reset and the key comes back after
  that many seconds (a poll, a known wait), without counting as a failure;
* :meth:`WorkQueue.shutdown` stops handing out keys; :meth:`WorkQueue.drain` waits until the keys
  being processed are done. Keys still queued are dropped: controllers are level-triggered, and
  the next process re-lists everything.

Metrics, by queue ``name``: ``workqueue_depth``, ``workqueue_adds_total``,
``workqueue_retries_total``, ``workqueue_queue_duration_seconds`` and
``workqueue_work_duration_seconds``, registered once per
:class:`~csi_sidecars.runtime.metrics.Registry` passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from csi_sidecars.kube.clock import REAL_CLOCK, Clock
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.runtime.metrics import Counter, Gauge, Histogram, Registry

log = rlog.get_logger("workqueue")

# client-go: prometheus.ExponentialBuckets(10e-9, 10, 10)
DURATION_BUCKETS = tuple(1e-8 * 10**i for i in range(10))


@dataclass(frozen=True, slots=True)
class After:
    """A handler's result: done for now, look at the key again in ``seconds``."""

    seconds: float


Result = bool | None | After
"""What a handler returns: None/True success, False retry with back-off, After(s) re-add later."""

Handler = Callable[[str], Awaitable[Result]]


class WorkQueueMetrics:
    """The work queue metric families of one registry."""

    def __init__(self, registry: Registry) -> None:
        """Register the families in ``registry``."""
        self.depth = Gauge(
            "workqueue_depth", "Current depth of workqueue", ["name"], registry=registry
        )
        self.adds = Counter(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            ["name"],
            registry=registry,
        )
        self.retries = Counter(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            ["name"],
            registry=registry,
        )
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            ["name"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            ["name"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )


_METRICS: weakref.WeakKeyDictionary[Registry, WorkQueueMetrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: Registry) -> WorkQueueMetrics:
    """The (shared) work queue metrics of ``registry``."""
    found = _METRICS.get(registry)
    if found is None:
        found = _METRICS[registry] = WorkQueueMetrics(registry)
    return found


class ExponentialBackoff:
    """Per-key failure counting: delay = start * 2**failures, capped at maximum."""

    def __init__(self, start: float = 1.0, maximum: float = 300.0) -> None:
        """Create a back-off with the given first and largest delay (seconds)."""
        self.start = start
        self.maximum = maximum
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """The delay before retrying ``key``; counts one more failure."""
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp > 62:
            return self.maximum
        return float(min(self.maximum, self.start * (2**exp)))

    def forget(self, key: str) -> None:
        """Reset ``key``'s failures."""
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        """How many failures ``key`` has had since the last forget."""
        return self._failures.get(key, 0)


class WorkQueue:
    """The keyed, rate-limited work queue."""

    def __init__(
        self,
        name: str,
        *,
        backoff: ExponentialBackoff | None = None,
        registry: Registry | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        """Create a queue.

        Args:
            name: the queue name (the ``name`` label of the metrics).
            backoff: per-key back-off for :meth:`add_rate_limited`.
            registry: where to register metrics; None for no metrics.
            clock: time source.
        """
        self.name = name
        self.backoff = backoff or ExponentialBackoff()
        self._clock = clock
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: dict[str, float] = {}
        self._queued_at: dict[str, float] = {}
        #: workers waiting in :meth:`get`; each queued key wakes exactly one (an Event would wake
        #: every idle worker for every key: 100 workers made each add cost 100 task switches)
        self._getters: deque[asyncio.Future[None]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._shutting_down = False
        self._delayed: list[tuple[float, int, str]] = []
        self._delayed_at: dict[str, float] = {}
        self._seq = itertools.count()
        self._delay_changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        m = metrics_for(registry) if registry is not None else None
        self._m_depth = m.depth.labels(name) if m else None
        self._m_adds = m.adds.labels(name) if m else None
        self._m_retries = m.retries.labels(name) if m else None
        self._m_queue = m.queue_duration.labels(name) if m else None
        self._m_work = m.work_duration.labels(name) if m else None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._shutting_down

    @property
    def processing(self) -> frozenset[str]:
        """Keys handed out and not yet done."""
        return frozenset(self._processing)

    def _push(self, key: str) -> None:
        self._queue.append(key)
        self._queued_at.setdefault(key, self._clock.monotonic())
        if self._m_depth is not None:
            self._m_depth.set(len(self._queue))
        self._wake_one()

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            waiter = getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is already queued."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self._m_adds is not None:
            self._m_adds.inc()
        if key in self._processing:
            return
        self._push(key)

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (an earlier pending time wins)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready = self._clock.monotonic() + delay
        current = self._delayed_at.get(key)
        if current is not None and current <= ready:
            return
        self._delayed_at[key] = ready
        heapq.heappush(self._delayed, (ready, next(self._seq), key))
        self._delay_changed.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._pump_delayed())

    def add_rate_limited(self, key: str) -> None:
        """Queue ``key`` after its back-off delay."""
        if self._m_retries is not None:
            self._m_retries.inc()
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: str) -> None:
        """Reset ``key``'s back-off (after a success)."""
        self.backoff.forget(key)

    def num_requeues(self, key: str) -> int:
        """Failures of ``key`` since the last forget."""
        return self.backoff.num_requeues(key)

    async def get(self) -> str | None:
        """The next key, or None once the queue is shut down."""
        while True:
            if self._shutting_down:
                return None
            if self._queue:
                key = self._queue.popleft()
                now = self._clock.monotonic()
                if self._m_depth is not None:
                    self._m_depth.set(len(self._queue))
                queued = self._queued_at.pop(key, now)
                if self._m_queue is not None:
                    self._m_queue.observe(now - queued)
                self._dirty.discard(key)
                self._processing[key] = now
                self._idle.clear()
                return key
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # A cancelled worker must not swallow the wake-up meant for a queued key.
                if waiter.done() and not waiter.cancelled() and self._queue:
                    self._wake_one()
                raise

    def done(self, key: str) -> None:
        """Mark ``key`` processed; re-queue it when it was added meanwhile."""
        started = self._processing.pop(key, None)
        if started is not None and self._m_work is not None:
            self._m_work.observe(self._clock.monotonic() - started)
        if key in self._dirty and not self._shutting_down:
            self._push(key)
        if not self._processing:
            self._idle.set()

    def shutdown(self) -> None:
        """Stop handing out keys and accepting new ones."""
        self._shutting_down = True
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._delay_changed.set()
        if self._pump is not None:
            self._pump.cancel()

    async def drain(self) -> None:
        """Wait until every key handed out is done."""
        await self._idle.wait()

    async def _pump_delayed(self) -> None:
        while not self._shutting_down:
            now = self._clock.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                ready, _, key = heapq.heappop(self._delayed)
                if self._delayed_at.get(key) == ready:
                    del self._delayed_at[key]
                    self.add(key)
            self._delay_changed.clear()
            changed = asyncio.ensure_future(self._delay_changed.wait())
            waiters: set[asyncio.Future[Any]] = {changed}
            if self._delayed:
                waiters.add(asyncio.ensure_future(self._clock.sleep(self._delayed[0][0] - now)))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def run(self, handler: Handler, workers: int = 1) -> None:
        """Process keys with ``workers`` concurrent workers until :meth:`shutdown`.

        ``handler(key)`` returning None or True is a success (the key's back-off is reset);
        returning False or raising re-queues the key with back-off; returning :class:`After`
        resets the back-off and re-adds the key after the given delay. When the queue shuts down,
        the workers finish their current keys and this returns.
        """

        async def worker() -> None:
            while True:
                key = await self.get()
                if key is None:
                    return
                try:
                    ok = await handler(key)
                except asyncio.CancelledError:
                    self.done(key)
                    raise
                except Exception as exc:
                    log.error(
                        "Processing failed, will retry", queue=self.name, key=key, error=repr(exc)
                    )
                    ok = False
                if ok is False:
                    self.add_rate_limited(key)
                else:
                    self.forget(key)
                    if isinstance(ok, After):
                        self.add_after(key, ok.seconds)
                self.done(key)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, workers)):
                tg.create_task(worker())

    async def close(self) -> None:
        """Shut down and wait for the delay pump to stop."""
        self.shutdown()
        if self._pump is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
