"""The workload: claims arriving at a seeded rate, each living a seeded life, concurrently.

A claim (Immediate or WaitForFirstConsumer, in one of several namespaces and classes) may get a
pod; it is deleted early (while it provisions), lives a while and is deleted, or is kept to the
end. Along the way it may be expanded, moved to another VolumeAttributesClass and snapshotted;
a snapshot is deleted early (while it is cut), kept, deleted, or restored into a new claim.
Every step a feature needs is skipped when its roles do not take part, but every actor draws
all its choices first, so one seed gives the same claims whatever roles run.

Each object made goes into the ledger (:class:`~chaos.model.Tracked`) with the end state it
should reach; deletes record when they were acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.playground import objects
from csi_sidecars.playground.apiclient import ApiError

from .api import Api, Unavailable
from .gather import CLASSES, LABEL, NAMESPACES, SNAPSHOT_CLASS, VACS
from .model import POD, PVC, SNAPSHOT, Tracked, collection, path_of, status

MI = 1 << 20
PLURAL = {PVC: "claims", POD: "pods", SNAPSHOT: "snapshots"}
WAIT_BOUND = 45.0
WAIT_READY = 30.0


@dataclass
class Stats:
    """What the workload did (for the report)."""

    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, what: str) -> None:
        """Count one ``what``."""
        self.counts[what] = self.counts.get(what, 0) + 1


@dataclass(frozen=True)
class Plan:
    """Every choice of one claim's life, drawn up front from its own random stream."""

    namespace: str
    sc: str
    wffc: bool
    with_pod: bool
    fate: str
    early: float
    life: float
    expand: bool
    vac: str | None
    snap: bool
    snap_fate: str
    snap_early: float
    restore_pod: bool
    claim_first: bool
    gaps: tuple[float, ...]

    @classmethod
    def draw(cls, seed: int, index: int) -> Plan:
        """The plan of claim ``index`` under ``seed``."""
        r = random.Random(f"{seed}:claim:{index}")
        sc = r.choice(CLASSES)
        return cls(
            namespace=r.choice(NAMESPACES),
            sc=sc.name,
            wffc=sc.wffc,
            with_pod=sc.wffc or r.random() < 0.5,
            fate=r.choices(["early", "short", "keep"], weights=[2, 5, 3])[0],
            early=r.uniform(0.0, 1.5),
            life=r.uniform(5.0, 40.0),
            expand=r.random() < 0.35,
            vac=r.choice(VACS) if r.random() < 0.3 else None,
            snap=r.random() < 0.45,
            snap_fate=r.choices(["early", "keep", "delete", "restore"], weights=[2, 3, 2, 3])[0],
            snap_early=r.uniform(0.0, 1.0),
            # A WaitForFirstConsumer restore binds only for a pod, like its source.
            restore_pod=r.random() < 0.5 or sc.wffc,
            claim_first=r.random() < 0.5,
            gaps=tuple(r.uniform(0.5, 6.0) for _ in range(6)),
        )


class Workload:
    """Runs the actors and keeps the ledger.

    Args:
        api: the retrying client.
        seed: the run's seed.
        features: the workload features that take part.
        rate: claims per second.
        max_live: at most this many actors at once.
    """

    def __init__(
        self, api: Api, seed: int, features: list[str], rate: float, max_live: int = 40
    ) -> None:
        self.api = api
        self.seed = seed
        self.features = set(features)
        self.rate = rate
        self.max_live = max_live
        self.ledger: list[Tracked] = []
        self.stats = Stats()
        self.hurry = asyncio.Event()
        self._actors: set[asyncio.Task[None]] = set()

    async def run(self, until: float) -> None:
        """Start actors until wall time ``until``, then hurry them and wait for them all."""
        rng = random.Random(f"{self.seed}:arrivals")
        slots = asyncio.Semaphore(self.max_live)
        index = 0
        while time.time() < until:
            await asyncio.sleep(min(rng.expovariate(self.rate), max(0.0, until - time.time())))
            if time.time() >= until:
                break
            try:
                await asyncio.wait_for(slots.acquire(), max(0.01, until - time.time()))
            except TimeoutError:
                break
            task = asyncio.create_task(self._actor(index))
            self._actors.add(task)
            task.add_done_callback(self._actors.discard)
            task.add_done_callback(lambda _: slots.release())
            index += 1
        self.hurry.set()
        await asyncio.gather(*list(self._actors), return_exceptions=True)

    async def _actor(self, index: int) -> None:
        try:
            await Claim(self, index, Plan.draw(self.seed, index)).live()
        except (Unavailable, ApiError) as exc:
            self.stats.errors.append(f"claim {index}: {exc}")

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less once the chaos window is over."""
        if self.hurry.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hurry.wait(), seconds)

    def labels(self) -> dict[str, str]:
        """The label every object of the run carries."""
        return {LABEL: str(self.seed)}

    async def create(self, kind: str, t: Tracked, body: dict[str, Any]) -> Tracked:
        """Create ``body`` and put it in the ledger."""
        body.setdefault("metadata", {})["labels"] = self.labels()
        made = await self.api.create(collection(kind, t.namespace), body)
        t.uid = str(made.get("metadata", {}).get("uid", ""))
        t.created_at = time.time()
        self.ledger.append(t)
        self.stats.add(PLURAL[kind])
        if t.note in ("early-delete", "restore"):
            self.stats.add(f"{t.note} {PLURAL[kind]}")
        return t

    async def delete(self, t: Tracked) -> None:
        """Delete a ledger object (pods with grace period 0: no kubelet confirms their end)."""
        t.deleted_at = await self.api.delete(
            path_of(t.kind, t.namespace, t.name), force=t.kind == POD
        )
        self.stats.add(f"deleted {PLURAL[t.kind]}")

    async def wait(self, t: Tracked, cond: Any, timeout: float) -> dict[str, Any] | None:
        """Poll the object until ``cond(obj)`` holds; None at the deadline or when gone."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            obj = await self.api.get(path_of(t.kind, t.namespace, t.name))
            if obj is None:
                return None
            if cond(obj):
                return dict(obj)
            await asyncio.sleep(1.0)
        return None


class Claim:
    """One claim's life (see the module docstring)."""

    def __init__(self, wl: Workload, index: int, plan: Plan) -> None:
        self.wl = wl
        self.i = index
        self.p = plan
        self.made: list[Tracked] = []

    def _has(self, feature: str) -> bool:
        return feature in self.wl.features

    async def _claim(self, name: str, size: int, note: str, source: str | None = None) -> Tracked:
        body = objects.pvc(name, self.p.sc, size=f"{size // MI}Mi")
        if source is not None:
            body["spec"]["dataSource"] = {
                "apiGroup": "snapshot.storage.k8s.io",
                "kind": "VolumeSnapshot",
                "name": source,
            }
        t = Tracked(PVC, self.p.namespace, name, want={"bound": True}, note=note)
        return await self.wl.create(PVC, t, body)

    async def _pod(self, name: str, claim: str, note: str) -> Tracked:
        t = Tracked(
            POD,
            self.p.namespace,
            name,
            want={"attached": self._has("attach")},
            claims=[claim],
            note=note,
        )
        return await self.wl.create(POD, t, objects.pod(name, [claim]))

    async def live(self) -> None:
        """Run the plan."""
        p, wl = self.p, self.wl
        note = "early-delete" if p.fate == "early" else ("kept" if p.fate == "keep" else "")
        claim = await self._claim(f"c{self.i:04d}", MI, note or ("wffc" if p.wffc else "claim"))
        pod = await self._pod(f"p{self.i:04d}", claim.name, note or "pod") if p.with_pod else None
        if p.fate == "early":
            await asyncio.sleep(p.early)
            await self._delete_pair(claim, pod)
            return
        bound = await wl.wait(claim, lambda o: status(o).get("phase") == "Bound", WAIT_BOUND)
        extra: list[Tracked] = []
        if bound is not None:
            await self._change(claim)
            if p.snap and self._has("snapshot"):
                extra = await self._snapshot(claim)
        if p.fate == "keep":
            return
        await wl.pause(p.life)
        for t in reversed(extra):
            if t.deleted_at is None:
                await wl.delete(t)
        await self._delete_pair(claim, pod)

    async def _change(self, claim: Tracked) -> None:
        p, wl = self.p, self.wl
        if p.expand and self._has("expand"):
            await wl.pause(p.gaps[0])
            size = 2 * MI + (self.i % 3) * MI
            path = path_of(PVC, claim.namespace, claim.name)
            body = {"spec": {"resources": {"requests": {"storage": f"{size // MI}Mi"}}}}
            if await wl.api.patch(path, body) is not None:
                claim.want["size"] = size
                wl.stats.add("expansions")
        if p.vac is not None and self._has("modify"):
            await wl.pause(p.gaps[1])
            path = path_of(PVC, claim.namespace, claim.name)
            if await wl.api.patch(path, {"spec": {"volumeAttributesClassName": p.vac}}) is not None:
                claim.want["vac"] = p.vac
                wl.stats.add("class changes")

    async def _snapshot(self, claim: Tracked) -> list[Tracked]:
        p, wl = self.p, self.wl
        await wl.pause(p.gaps[2])
        name = f"s{self.i:04d}"
        body = {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name},
            "spec": {
                "volumeSnapshotClassName": SNAPSHOT_CLASS,
                "source": {"persistentVolumeClaimName": claim.name},
            },
        }
        snap = Tracked(
            SNAPSHOT, claim.namespace, name, want={"ready": True}, note=f"snapshot-{p.snap_fate}"
        )
        await wl.create(SNAPSHOT, snap, body)
        if p.snap_fate == "early":
            await asyncio.sleep(p.snap_early)
            await wl.delete(snap)
            return [snap]
        if p.snap_fate == "delete":
            await wl.pause(p.gaps[3])
            await wl.delete(snap)
            return [snap]
        if p.snap_fate != "restore" or not self._has("restore"):
            return [snap]
        ready = await wl.wait(snap, lambda o: bool(status(o).get("readyToUse")), WAIT_READY)
        if ready is None:
            return [snap]
        await wl.pause(p.gaps[4])
        restored = await self._claim(f"r{self.i:04d}", 4 * MI, "restore", source=name)
        made = [snap, restored]
        if p.restore_pod:
            made.append(await self._pod(f"rp{self.i:04d}", restored.name, "restore-pod"))
        return made

    async def _delete_pair(self, claim: Tracked, pod: Tracked | None) -> None:
        """Delete the claim and its pod, in the plan's order."""
        first, second = (claim, pod) if self.p.claim_first else (pod, claim)
        if first is not None:
            await self.wl.delete(first)
        await asyncio.sleep(self.p.gaps[5] / 4)
        if second is not None:
            await self.wl.delete(second)
