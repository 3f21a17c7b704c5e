"""Seeded faults: what can go wrong, when it goes wrong, and how each one is injected.

Faults arrive as a Poisson process (mean gap ``interval`` seconds) from the stream
``<seed>:faults``, which also picks each one's kind by weight; its target and parameters come
from the stream ``<seed>:fault:<n>``. A seed replays the same faults at the same moments (what
the processes do in between differs, which is the point). Kinds:

* ``sigkill`` / ``sigterm``: one replica of one role, the leader or a standby;
* ``partition``: one replica cut off from the API server by its proxy (``drop`` resets the
  connections, ``stall`` blackholes them) for a while;
* ``apiserver-restart``; ``etcd-compaction`` (watches then get 410 Gone; half the time the API
  server restarts too, so its watch cache forgets the old revisions at once);
* ``driver-restart`` (SIGKILL or SIGTERM; every sidecar loses its connection and exits);
* ``driver-errors`` (a method fails with a retryable or a final code for a while),
  ``driver-deadline`` (DEADLINE_EXCEEDED after the work was done), ``driver-slow`` (calls take
  longer than the sidecars' timeout, sometimes), ``probe-not-ready`` (Probe answers not ready
  while a replica restarts).

Driver faults are windows of rules in the driver's faults file, dropped when they expire and
all at once when the chaos window ends; partitions heal then too.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .testbed import Replica, Testbed

WEIGHTS: dict[str, float] = {
    "sigkill": 3.0,
    "sigterm": 2.0,
    "partition": 1.5,
    "apiserver-restart": 0.7,
    "etcd-compaction": 0.7,
    "driver-restart": 0.7,
    "driver-errors": 1.5,
    "driver-deadline": 1.5,
    "driver-slow": 1.5,
    "probe-not-ready": 0.5,
}

#: Driver methods worth failing, per workload feature.
METHODS: dict[str, tuple[str, ...]] = {
    "provision": ("CreateVolume", "DeleteVolume"),
    "attach": ("ControllerPublishVolume", "ControllerUnpublishVolume"),
    "snapshot": ("CreateSnapshot", "DeleteSnapshot"),
    "expand": ("ControllerExpandVolume",),
    "modify": ("ControllerModifyVolume",),
}
ERROR_CODES = ("UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "ABORTED")


@dataclass
class Injected:
    """One fault as it happened (for the log and the report)."""

    at: float
    kind: str
    what: str


@dataclass
class Injector:
    """Injects the seeded faults into a testbed.

    Args:
        tb: the testbed.
        seed: the run's seed.
        interval: mean seconds between faults.
        features: the workload features that take part (which driver methods to fail).
        kinds: the fault kinds allowed (default: all).
    """

    tb: Testbed
    seed: int
    interval: float
    features: list[str]
    kinds: list[str] = field(default_factory=lambda: list(WEIGHTS))
    counts: Counter[str] = field(default_factory=Counter)
    history: list[Injected] = field(default_factory=list)
    _windows: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _healers: set[asyncio.Task[None]] = field(default_factory=set)
    _verbose: bool = False

    def methods(self) -> list[str]:
        """The mutating driver methods of the features that take part."""
        return [m for f in self.features for m in METHODS.get(f, ())]

    async def run(self, until: float, verbose: bool = False) -> None:
        """Inject faults until wall time ``until``."""
        self._verbose = verbose
        rng = random.Random(f"{self.seed}:faults")
        kinds = [k for k in WEIGHTS if k in self.kinds]
        weights = [WEIGHTS[k] for k in kinds]
        # Moments are offsets from the start, whatever the injections take, so every target
        # gets the same faults (a fault that falls due during a slow one follows it at once).
        moment = time.time()
        while True:
            moment += rng.expovariate(1 / self.interval)
            if moment >= until:
                while time.time() < until:
                    self._expire()
                    await asyncio.sleep(min(0.5, max(0.0, until - time.time())))
                return
            while time.time() < moment:
                self._expire()
                await asyncio.sleep(min(0.5, max(0.0, moment - time.time())))
            kind = rng.choices(kinds, weights)[0]
            # Each fault draws its target and parameters from a stream of its own, so the
            # kinds and moments of the faults stay the same whatever roles take part.
            what = await self._inject(kind, random.Random(f"{self.seed}:fault:{len(self.history)}"))
            self.counts[kind] += 1
            self.history.append(Injected(time.time(), kind, what))
            if self._verbose:
                print(f"fault {kind}: {what}", flush=True)

    async def _inject(self, kind: str, rng: random.Random) -> str:
        if kind in ("sigkill", "sigterm", "partition", "probe-not-ready"):
            rep, leader = await self._pick(rng)
            role = f"{rep.name} ({'leader' if leader else 'standby'})"
            if kind == "partition":
                mode, seconds = rng.choice(("drop", "stall")), rng.uniform(5.0, 20.0)
                (rep.proxy.drop if mode == "drop" else rep.proxy.stall)()
                self._heal_later(rep, seconds)
                return f"{mode} {role} for {seconds:.0f}s"
            if kind == "probe-not-ready":
                seconds = rng.uniform(5.0, 15.0)
                self._window(seconds, {"method": "Probe", "reply": {"ready": False}})
                rep.process.signal(signal.SIGKILL)
                return f"Probe not ready for {seconds:.0f}s while {role} restarts"
            # Down for a while, sometimes longer than the Lease: the standby must take over.
            down = rng.choice((0.0, 0.0, rng.uniform(2.0, 15.0)))
            self.tb.hold(rep, down)
            rep.process.signal(signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
            return f"{role}, down {down:.0f}s" if down else role
        if kind == "apiserver-restart":
            await self.tb.cp.stop_apiserver()
            await self.tb.cp.start_apiserver()
            return "kube-apiserver stopped and started"
        if kind == "etcd-compaction":
            restart = rng.random() < 0.5
            revision = await self.tb.cp.compact_etcd(restart_apiserver=restart)
            return f"compacted at revision {revision}{' + API server restart' if restart else ''}"
        if kind == "driver-restart":
            hard = rng.random() < 0.5
            await self.tb.restart_driver(hard)
            return "SIGKILL and start" if hard else "SIGTERM and start"
        methods = self.methods() or ["CreateVolume"]
        method = rng.choice(methods)
        seconds = rng.uniform(3.0, 12.0)
        if kind == "driver-errors":
            code = rng.choice(ERROR_CODES)
            self._window(seconds, {"method": method, "code": code, "message": "chaos"})
            return f"{method} fails with {code} for {seconds:.0f}s"
        if kind == "driver-deadline":
            rule = {"method": method, "code": "DEADLINE_EXCEEDED", "when": "after"}
            self._window(seconds, rule)
            return f"{method} answers DEADLINE_EXCEEDED after acting for {seconds:.0f}s"
        delay = rng.uniform(1.0, 8.0)
        self._window(seconds, {"method": method, "delay": round(delay, 2)})
        return f"{method} takes {delay:.1f}s for {seconds:.0f}s"

    async def _pick(self, rng: random.Random) -> tuple[Replica, bool]:
        """A replica: a random role, its leader 60% of the time (when it has one)."""
        role = rng.choice(self.tb.casting.roles)
        want_leader = rng.random() < 0.6
        index = rng.randrange(len(self.tb.replicas))
        try:
            leaders = await self.tb.leaders()
        except Exception:
            leaders = {}
        mine = [r for r in self.tb.replicas if r.role == role]
        leader = [r for r in mine if r.hostname == leaders.get(role)]
        standby = [r for r in mine if r.hostname != leaders.get(role)]
        pool = leader if (want_leader and leader) or not standby else standby
        return pool[index % len(pool)], pool is leader

    def _window(self, seconds: float, rule: dict[str, Any]) -> None:
        self._windows.append((time.monotonic() + seconds, rule))
        self.tb.write_faults([r for _, r in self._windows])

    def _expire(self) -> None:
        now = time.monotonic()
        live = [(t, r) for t, r in self._windows if t > now]
        if len(live) != len(self._windows):
            self._windows = live
            self.tb.write_faults([r for _, r in live])

    def _heal_later(self, rep: Replica, seconds: float) -> None:
        async def heal() -> None:
            await asyncio.sleep(seconds)
            rep.proxy.heal()

        task = asyncio.create_task(heal())
        self._healers.add(task)
        task.add_done_callback(self._healers.discard)

    async def stop(self) -> None:
        """End every fault now: no rules left, every proxy healed."""
        self._windows.clear()
        self.tb.write_faults([])
        for task in list(self._healers):
            task.cancel()
        await asyncio.gather(*self._healers, return_exceptions=True)
        for rep in self.tb.replicas:
            rep.proxy.heal()
        self.tb.release_holds()
