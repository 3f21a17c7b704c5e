"""15,000 existing snapshots do not delay a new one (external-snapshotter #1148).

Go queues every content at start-up and at every resync, so a new snapshot waits behind
thousands of no-op syncs. Here ready contents with nothing to do are never queued.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.fake import FakeKube
from tests.component.snapshotter.harness import (
    create_content,
    dynamic_content,
    poll,
    running,
    snapshot_class,
)

EXISTING = 15_000


def ready_content(i: int) -> dict[str, object]:
    body = dynamic_content(f"old-{i:05d}", f"vol-{i}")
    body["status"] = {"snapshotHandle": f"sid-{i}", "readyToUse": True, "creationTime": 1}
    return body


async def test_existing_snapshots_do_not_delay_a_new_one(tmp_path: Path) -> None:
    kube = FakeKube()
    await kube.create(api.VOLUME_SNAPSHOT_CLASSES, snapshot_class())
    for i in range(EXISTING):
        await create_content(kube, ready_content(i))
    async with running(tmp_path, kube=kube, resync_period=1.0) as env:
        await poll(  # listed, now watching: the 15,000 went through the handlers
            lambda: bool(kube.actions_of("watch", api.VOLUME_SNAPSHOT_CONTENTS)), what="watching"
        )
        vol = await env.volume("new-vol")
        started = time.monotonic()
        await create_content(kube, dynamic_content("new", vol))
        await poll(lambda: env.ready("new"), timeout=10, what="new snapshot ready")
        took = time.monotonic() - started
        await asyncio.sleep(1.5)  # at least one resync of all 15,001 contents
        adds = env.queue_adds()
    # Only the new content was ever queued (Go: 15,001 at start plus 15,001 per resync).
    print(f"new snapshot ready after {took:.3f}s, queue adds {adds}")
    assert adds <= 5, adds
    assert took < 3.0, took
    assert env.drv.calls_of("CreateSnapshot")[0].name.startswith("snapshot-")
    assert len(env.drv.calls_of("CreateSnapshot")) == 1
