"""Lease leader election with the Go sidecars' flags, defaults and semantics.

Matches csi-lib-utils ``leaderelection``: a ``coordination.k8s.io/v1`` Lease whose name is
sanitised (``[^a-zA-Z0-9-]`` becomes ``-``; a trailing ``-`` gets an ``X``), the hostname as
identity, namespace from ``--leader-election-namespace``, then ``POD_NAMESPACE``, then the service
account namespace file, then ``default``; lease duration 15 s, renew deadline 10 s, retry period
5 s; ``--leader-election-labels`` on the Lease; a lost lease stops the process with exit code 1.
Expiry is judged by the local clock from when the Lease record was last seen to change, as
client-go does, never by comparing remote timestamps.

Better than Go: on a graceful stop the lease is released (holder cleared, duration 1 s) so a
successor takes over at once instead of waiting out the lease; ``release_on_cancel=False`` turns
that off. The elector should get a client of its own (see
:func:`csi_sidecars.kube.options.KubeOptions.leader_election_client`) so the main client's
throttling cannot delay renewals.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from csi_sidecars.kube.clock import REAL_CLOCK, Clock
from csi_sidecars.kube.labels import parse_pairs
from csi_sidecars.kube.objects import sanitize_name
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import LEASES, ApiError, JsonDict
from csi_sidecars.runtime import logging as rlog

if TYPE_CHECKING:
    from csi_sidecars.runtime.http import Request, Response

log = rlog.get_logger("leaderelection")

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 5.0
HEALTH_CHECK_TIMEOUT = 20.0
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
JITTER_FACTOR = 1.2
EXPIRY_MARGIN = 0.05


class LeaderElectionLost(RuntimeError):
    """The lease could not be renewed within the renew deadline."""


def default_identity() -> str:
    """The hostname, sanitised."""
    return sanitize_name(socket.gethostname())


def lease_namespace(
    flag: str = "",
    environ: Mapping[str, str] | None = None,
    sa_namespace_file: str = SA_NAMESPACE_FILE,
) -> str:
    """The Lease namespace: the flag, ``POD_NAMESPACE``, the service account's, ``default``."""
    if flag:
        return flag
    env = os.environ if environ is None else environ
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        with open(sa_namespace_file, encoding="utf-8") as f:
            ns = f.read().strip()
        if ns:
            return ns
    except OSError:
        pass
    return "default"


def parse_labels(text: str) -> dict[str, str]:
    """Parse ``--leader-election-labels`` (``k1:v1,k2:v2``).

    Raises:
        ValueError: for an entry without ``:``.
    """
    return parse_pairs(text, ":", what="leader election label")


def micro_time(seconds: float) -> str:
    """A Kubernetes MicroTime string for a Unix time."""
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _exit_process() -> None:
    log.error("Leader election lost, exiting")
    sys.stderr.flush()
    os._exit(1)


@dataclass(slots=True)
class LeaderElectionConfig:
    """What to elect on and how fast."""

    lock_name: str
    namespace: str = "default"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    labels: dict[str, str] = field(default_factory=dict)
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        self.lock_name = sanitize_name(self.lock_name)
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")


EventSink = Callable[[JsonDict, str, str, str], None]


class LeaderElector:
    """Acquires and renews one Lease, running the leader's work while it holds it."""

    def __init__(
        self,
        port: KubePort,
        config: LeaderElectionConfig,
        *,
        clock: Clock = REAL_CLOCK,
        on_stopped_leading: Callable[[], None] | None = _exit_process,
        event_sink: EventSink | None = None,
    ) -> None:
        """Create an elector.

        Args:
            port: a Kubernetes port of the elector's own (not throttled by the role's work).
            config: lock and timings.
            clock: time source.
            on_stopped_leading: called when the lease is lost; exits 1 by default.
            event_sink: ``(object, type, reason, message)`` for LeaderElection events.
        """
        self.port = port
        self.config = config
        self._clock = clock
        self._on_stopped_leading = on_stopped_leading
        self._event_sink = event_sink
        self._observed_spec: JsonDict | None = None
        self._observed_time = 0.0
        self._lease: JsonDict | None = None

    @property
    def holder(self) -> str:
        """The holder identity last observed ("" when none)."""
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    def is_leader(self) -> bool:
        """Whether the last observed record names this identity."""
        return self.holder == self.config.identity

    # -- one attempt ---------------------------------------------------------------------

    def _desired(self, now: float, acquire: str, transitions: int) -> JsonDict:
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "acquireTime": acquire,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One acquire-or-renew attempt; True when this identity holds the lease after it."""
        cfg = self.config
        wall = self._clock.wall()
        try:
            lease = await self.port.get(LEASES, cfg.lock_name, cfg.namespace)
        except ApiError as exc:
            if not exc.not_found:
                log.warning("Error retrieving lease lock", lease=cfg.lock_name, error=str(exc))
                return False
            body: JsonDict = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.lock_name, "namespace": cfg.namespace},
                "spec": self._desired(wall, micro_time(wall), 0),
            }
            if cfg.labels:
                body["metadata"]["labels"] = dict(cfg.labels)
            try:
                created = await self.port.create(LEASES, body, cfg.namespace)
            except ApiError as cexc:
                log.warning("Error creating lease lock", lease=cfg.lock_name, error=str(cexc))
                return False
            self._observe(created)
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_time = self._clock.monotonic()
        self._lease = lease
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if (
            holder
            and holder != cfg.identity
            and self._observed_time + duration > self._clock.monotonic()
        ):
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == cfg.identity:
            desired = self._desired(wall, spec.get("acquireTime") or micro_time(wall), transitions)
        else:
            desired = self._desired(wall, micro_time(wall), transitions + 1)
        lease["spec"] = desired
        if cfg.labels:
            labels = lease["metadata"].setdefault("labels", {})
            labels.update(cfg.labels)
        try:
            updated = await self.port.replace(LEASES, lease, cfg.namespace)
        except ApiError as exc:
            log.warning("Failed to update lease", lease=cfg.lock_name, error=str(exc))
            return False
        if holder != cfg.identity:
            log.info("Successfully acquired lease", lease=f"{cfg.namespace}/{cfg.lock_name}")
            self._event(updated, "became leader")
        self._observe(updated)
        return True

    def _expires_in(self) -> float | None:
        """Seconds until another holder's lease expires as we observed it, or None."""
        spec = self._observed_spec or {}
        holder = spec.get("holderIdentity") or ""
        if not holder or holder == self.config.identity:
            return None
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return self._observed_time + duration - self._clock.monotonic()

    def _observe(self, lease: JsonDict) -> None:
        self._lease = lease
        self._observed_spec = lease.get("spec") or {}
        self._observed_time = self._clock.monotonic()

    def _event(self, lease: JsonDict, what: str) -> None:
        if self._event_sink is not None:
            self._event_sink(lease, "Normal", "LeaderElection", f"{self.config.identity} {what}")

    async def _attempt(self, budget: float) -> bool:
        try:
            async with asyncio.timeout(max(budget, 0.5)):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            log.warning("Lease request timed out", lease=self.config.lock_name)
            return False
        except Exception as exc:
            log.warning("Lease request failed", lease=self.config.lock_name, error=repr(exc))
            return False

    async def release(self) -> bool:
        """Give the lease up if held: clear the holder and shorten it to one second."""
        if not self.is_leader() or self._lease is None:
            return True
        lease = dict(self._lease)
        wall = self._clock.wall()
        lease["spec"] = {
            "leaseDurationSeconds": 1,
            "acquireTime": micro_time(wall),
            "renewTime": micro_time(wall),
            "leaseTransitions": int((self._observed_spec or {}).get("leaseTransitions") or 0),
        }
        try:
            async with asyncio.timeout(self.config.renew_deadline):
                updated = await self.port.replace(LEASES, lease, self.config.namespace)
        except (ApiError, TimeoutError, OSError) as exc:
            log.warning("Failed to release lease", lease=self.config.lock_name, error=str(exc))
            return False
        self._observe(updated)
        log.info("Released lease", lease=f"{self.config.namespace}/{self.config.lock_name}")
        return True

    # -- loops ---------------------------------------------------------------------------

    async def _sleep_or_stop(self, seconds: float, stop: asyncio.Event) -> bool:
        """Sleep; True when ``stop`` was set meanwhile."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        return stop.is_set()

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Try until acquired (True) or ``stop`` is set (False)."""
        cfg = self.config
        log.info("Attempting to acquire leader lease", lease=f"{cfg.namespace}/{cfg.lock_name}")
        while not stop.is_set():
            if await self._attempt(cfg.renew_deadline):
                return True
            if self.holder and rlog.v(4):
                log.info("Lease is held by another candidate", leader=self.holder)
            delay = cfg.retry_period * (1.0 + random.random() * JITTER_FACTOR)
            # Better than client-go: when the holder's lease will expire (by our observation)
            # before the next jittered retry, try again right at expiry instead of a retry
            # period later. This shaves up to one retry period off a handover after a crash.
            remaining = self._expires_in()
            if remaining is not None and 0 <= remaining < delay:
                delay = remaining + EXPIRY_MARGIN
            if await self._sleep_or_stop(delay, stop):
                return False
        return False

    async def _renew_loop(self) -> None:
        """Renew every retry period; return when a renew deadline passes without success."""
        cfg = self.config
        while True:
            deadline = self._clock.monotonic() + cfg.renew_deadline
            while True:
                if await self._attempt(deadline - self._clock.monotonic()):
                    break
                if self._clock.monotonic() + cfg.retry_period > deadline:
                    return
                await self._clock.sleep(cfg.retry_period)
                if self._clock.monotonic() >= deadline:
                    return
            await self._clock.sleep(cfg.retry_period)

    async def run(self, lead: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> None:
        """Acquire the lease, run ``lead()`` while holding it, and renew.

        Returns when ``stop`` is set (after releasing the lease, unless disabled) or when
        ``lead`` returns. When the lease is lost, ``lead`` is cancelled, ``on_stopped_leading`` is
        called (the default exits the process with code 1) and LeaderElectionLost is raised.

        Raises:
            LeaderElectionLost: the lease could not be renewed.
        """
        if not await self.acquire(stop):
            return
        lead_task = asyncio.ensure_future(lead())
        renew_task = asyncio.ensure_future(self._renew_loop())
        stop_task = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {lead_task, renew_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (lead_task, renew_task, stop_task):
                task.cancel()
            for task in (lead_task, renew_task, stop_task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if renew_task.done() and not renew_task.cancelled() and not stop.is_set():
            log.error("Failed to renew lease", lease=self.config.lock_name)
            self._observed_spec = None
            if self._on_stopped_leading is not None:
                self._on_stopped_leading()
            raise LeaderElectionLost(f"lost lease {self.config.namespace}/{self.config.lock_name}")
        if self.config.release_on_cancel:
            await self.release()
        if lead_task.done() and not lead_task.cancelled() and lead_task.exception() is not None:
            raise lead_task.exception()  # type: ignore[misc]

    # -- health --------------------------------------------------------------------------

    def check(self, max_tolerable_expired: float = HEALTH_CHECK_TIMEOUT) -> str | None:
        """None when healthy; else the error: a leader that has not renewed for too long."""
        if not self.is_leader():
            return None
        if self._clock.monotonic() - self._observed_time > (
            self.config.lease_duration + max_tolerable_expired
        ):
            return f"failed election to renew leadership on lease {self.config.lock_name}"
        return None

    async def healthz_handler(self, _: Request) -> Response:
        """``/healthz/leader-election``: 200 ``ok``, or 500 with the error."""
        from csi_sidecars.runtime.http import Response

        err = self.check()
        if err is None:
            return Response(text="ok")
        return Response(500, f"internal server error: {err}")
