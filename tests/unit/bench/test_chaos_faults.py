"""The fault injector against a fake testbed: seeded kinds, targets, windows and their end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.faults import Injector
from bench.chaos.roles import Casting


@dataclass
class FakeProcess:
    signals: list[int] = field(default_factory=list)

    def signal(self, signum: int) -> None:
        self.signals.append(signum)


@dataclass
class FakeProxy:
    modes: list[str] = field(default_factory=list)

    def drop(self) -> None:
        self.modes.append("drop")

    def stall(self) -> None:
        self.modes.append("stall")

    def heal(self) -> None:
        self.modes.append("heal")


@dataclass
class FakeReplica:
    role: str
    hostname: str
    process: FakeProcess = field(default_factory=FakeProcess)
    proxy: FakeProxy = field(default_factory=FakeProxy)

    @property
    def name(self) -> str:
        return self.hostname


class FakeTestbed:
    def __init__(self) -> None:
        self.casting = Casting({"provisioner": "ours", "attacher": "ours"})
        self.replicas = [
            FakeReplica(role, f"chaos-{role}-{i}") for role in self.casting.roles for i in (0, 1)
        ]
        self.rules: list[list[Any]] = []
        self.held: list[float] = []
        self.released = False

    async def leaders(self) -> dict[str, str]:
        return {"provisioner": "chaos-provisioner-1", "attacher": "chaos-attacher-0"}

    def write_faults(self, rules: list[Any]) -> None:
        self.rules.append(list(rules))

    def hold(self, rep: FakeReplica, seconds: float) -> None:
        self.held.append(seconds)

    def release_holds(self) -> None:
        self.released = True


async def _run(seed: int, kinds: list[str]) -> tuple[Injector, FakeTestbed]:
    tb = FakeTestbed()
    inj = Injector(tb, seed, 0.01, ["provision", "attach"], kinds)  # type: ignore[arg-type]
    await inj.run(time.time() + 0.4)
    return inj, tb


async def test_a_seed_gives_the_same_faults() -> None:
    kinds = ["sigkill", "sigterm", "partition", "driver-errors", "driver-slow", "driver-deadline"]
    first, _ = await _run(5, kinds)
    second, _ = await _run(5, kinds)
    other, _ = await _run(6, kinds)
    a = [(h.kind, h.what) for h in first.history]
    b = [(h.kind, h.what) for h in second.history]
    assert len(a) >= 10
    n = min(len(a), len(b))
    assert a[:n] == b[:n]
    assert a[:n] != [(h.kind, h.what) for h in other.history][:n]
    assert set(first.counts) <= set(kinds) and sum(first.counts.values()) == len(a)


async def test_kills_pick_leaders_and_standbys_and_may_hold_them_down() -> None:
    inj, tb = await _run(7, ["sigkill", "sigterm"])
    signalled = {r.hostname for r in tb.replicas if r.process.signals}
    assert "chaos-provisioner-1" in signalled  # the provisioner's leader
    assert any("(leader)" in h.what for h in inj.history)
    assert any("(standby)" in h.what for h in inj.history)
    assert all(sig in (9, 15) for r in tb.replicas for sig in r.process.signals)
    assert len(tb.held) == len(inj.history) and any(seconds > 0 for seconds in tb.held)


async def test_driver_faults_are_windows_of_rules_dropped_at_the_end() -> None:
    inj, tb = await _run(8, ["driver-errors", "driver-slow", "driver-deadline"])
    rules = [rule for snapshot in tb.rules for rule in snapshot]
    methods = {
        "CreateVolume",
        "DeleteVolume",
        "ControllerPublishVolume",
        "ControllerUnpublishVolume",
    }
    assert rules and {r["method"] for r in rules} <= methods
    assert any(r.get("when") == "after" and r["code"] == "DEADLINE_EXCEEDED" for r in rules)
    assert any("delay" in r for r in rules)
    await inj.stop()
    assert tb.rules[-1] == [] and tb.released


async def test_partitions_heal_when_the_chaos_ends() -> None:
    inj, tb = await _run(9, ["partition"])
    cut = [r for r in tb.replicas if set(r.proxy.modes) & {"drop", "stall"}]
    assert cut
    await inj.stop()
    assert all(r.proxy.modes[-1] == "heal" for r in tb.replicas)
