"""Client-side token bucket: ``--kube-api-qps`` and ``--kube-api-burst``.

client-go throttles every request of a client with a token bucket that starts full (``burst``
tokens) and refills at ``qps`` per second. :class:`TokenBucket` does the same; waiters reserve a
token in arrival order and sleep until it is theirs, so a burst of callers is spread out at
exactly ``qps`` after the first ``burst`` go through. ``qps < 0`` disables throttling.
"""

from __future__ import annotations

from csi_sidecars.kube.clock import REAL_CLOCK, Clock

DEFAULT_QPS = 5.0
DEFAULT_BURST = 10


class TokenBucket:
    """A token bucket with reservation semantics."""

    def __init__(self, qps: float, burst: int, clock: Clock = REAL_CLOCK) -> None:
        """Create a bucket.

        Args:
            qps: tokens per second; 0 means the client-go default (5); negative disables.
            burst: bucket size; 0 means the client-go default (10).
            clock: time source.
        """
        if qps == 0:
            qps = DEFAULT_QPS
        if burst <= 0:
            burst = DEFAULT_BURST
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.monotonic()

    @property
    def unlimited(self) -> bool:
        """Whether throttling is off."""
        return self.qps < 0

    def reserve(self) -> float:
        """Take a token now; return how long the caller must wait before using it."""
        if self.unlimited:
            return 0.0
        now = self._clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    async def acquire(self) -> None:
        """Wait for a token."""
        delay = self.reserve()
        if delay > 0:
            await self._clock.sleep(delay)

    def try_take(self) -> bool:
        """Take a token if one is there now; never waits."""
        if self.unlimited:
            return True
        now = self._clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
