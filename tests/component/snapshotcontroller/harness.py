"""The whole snapshot-controller role against the in-memory kube fake.

:class:`Env` runs ``run_controller`` (``needs_driver=False``) with the role's real setup on a
:class:`~csi_sidecars.kube.fake.FakeKube` and plays the csi-snapshotter sidecar's part where a
test needs it (status of a cut snapshot, removing the content finalizer after a deletion).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.controller import ControllerContext, ControllerOptions, run_controller
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import EVENTS, JsonDict
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    VOLUME_SNAPSHOT_CONTENTS,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller.controller import Config, SnapshotController, make_setup
from tests.support.poll import poll
from tests.unit.snapshotcontroller.reactor import KINDS

__all__ = ["Env", "poll", "running"]

WRITES = ("create", "replace", "patch", "delete")


@dataclass
class Env:
    """A running controller on a fake API server."""

    kube: FakeKube
    stop: asyncio.Event
    task: asyncio.Task[int]
    controllers: list[SnapshotController] = field(default_factory=list)

    @property
    def controller(self) -> SnapshotController:
        return self.controllers[0]

    def get(self, kind: str, name: str, ns: str | None = "default") -> JsonDict | None:
        res = KINDS[kind]
        return self.kube.peek(res, name, ns if res.namespaced else None)

    async def add(self, *objs: JsonDict) -> None:
        for obj in objs:
            await self.kube.create(KINDS[obj["kind"]], obj, obj["metadata"].get("namespace"))

    def reasons(self, name: str | None = None) -> list[str]:
        """Reasons of the Events recorded (on the object ``name``)."""
        return [
            e["reason"]
            for e in self.kube.objects(EVENTS)
            if name is None or e["involvedObject"]["name"] == name
        ]

    def idle(self) -> bool:
        """Every queue and start-up backlog empty and no key being processed."""
        if not self.controllers:
            return False
        c = self.controller
        return c.backlog_size() == 0 and all(len(q) == 0 and not q.processing for q, _ in c.work)

    async def cut(self, content: str, *, ready: bool = True, size: int = 1024) -> None:
        """The sidecar's CreateSnapshot answer, written to the content's status."""
        status = {
            "snapshotHandle": f"backend-{content}",
            "readyToUse": ready,
            "creationTime": 1767225600 * 1_000_000_000,
            "restoreSize": size,
        }
        await self.kube.patch(
            VOLUME_SNAPSHOT_CONTENTS, content, {"status": status}, subresource="status"
        )

    async def sidecar_delete(self, content: str) -> None:
        """The sidecar deleted the backend snapshot and lets the content go."""
        obj = self.kube.peek(VOLUME_SNAPSHOT_CONTENTS, content)
        assert obj is not None
        assert ANN_VOLUME_SNAPSHOT_BEING_CREATED not in obj["metadata"].get("annotations", {})
        fins = [f for f in obj["metadata"].get("finalizers", []) if f != VSC_FINALIZER]
        await self.kube.patch(VOLUME_SNAPSHOT_CONTENTS, content, {"metadata": {"finalizers": fins}})

    def writes(self) -> list[str]:
        return [f"{a.verb} {a.resource}" for a in self.kube.actions if a.verb in WRITES]


@contextlib.asynccontextmanager
async def running(
    kube: FakeKube | None = None, config: Config | None = None, *, http: str = ""
) -> AsyncIterator[Env]:
    """Run the role until the block ends (then stop it and expect exit code 0)."""
    kube = kube or FakeKube()
    stop = asyncio.Event()
    controllers: list[SnapshotController] = []
    setup = make_setup(config or Config(workers=2, retry_start=0.05, retry_max=0.5, groups=True))

    async def capture(ctx: ControllerContext) -> Any:
        lead = await setup(ctx)
        controllers.append(lead.__self__)  # type: ignore[attr-defined]
        return lead

    options = ControllerOptions(
        role=names.ROLE,
        event_component=names.EVENT_COMPONENT,
        http_endpoint=http,
        needs_driver=False,
    )
    task = asyncio.create_task(
        run_controller(
            options,
            KubeOptions(),
            stop,
            lock_name=lambda _: names.LEASE_NAME,
            setup=capture,
            port=kube,
        )
    )
    env = Env(kube, stop, task, controllers)
    try:
        await poll(lambda: bool(controllers) or task.done(), what="setup")
        yield env
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 30)
    assert code == 0
