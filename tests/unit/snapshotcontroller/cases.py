"""A table row of the reactor-style tests and the check that runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.kube.workqueue import After
from csi_sidecars.snapshotcontroller.plans import Settings
from tests.unit.snapshotcontroller.reactor import (
    Decision,
    Injection,
    assert_objects,
    reasons,
    sync,
    world,
)

Obj = dict[str, Any]


@dataclass
class Case:
    """Initial objects -> one sync of ``key`` -> expected objects (per kind) and events.

    ``expected`` lists the complete state of each kind it names; kinds it does not name are not
    compared. ``result`` is the work queue's answer (True done, False retry, After(s) poll).
    ``unseen`` objects (kind, name) are in the API server but not yet in the caches.
    """

    name: str
    initial: list[Obj]
    key: str
    expected: dict[str, list[Obj]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    result: bool | After | None = True
    errors: list[Injection] = field(default_factory=list)
    settings: Settings | None = None
    messages: list[str] = field(default_factory=list)
    unseen: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.name


async def check(case: Case, decision: Decision, kind: str) -> None:
    """Run ``case`` through ``decision`` for objects of ``kind``."""
    w = await world(case.initial, settings=case.settings, errors=case.errors, unseen=case.unseen)
    got = await sync(w, decision, kind, case.key)
    for k, objs in case.expected.items():
        assert_objects(w, k, objs)
    assert reasons(w) == case.events
    if case.messages:
        assert [m for _, _, m in w.events.seen] == case.messages
    if case.result is not None:
        assert got == case.result
