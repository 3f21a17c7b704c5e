"""The start-up wait for the snapshot CRDs (Go's ensureCustomResourceDefinitionsExist)."""

from __future__ import annotations

import asyncio
from typing import Any

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS
from csi_sidecars.snapshotcontroller.startup import SNAPSHOT_CRDS, probe_crds


async def test_waits_with_growing_delays_until_the_crds_answer() -> None:
    kube = FakeKube()
    kube.inject(
        "list", ApiError(404, "NotFound", "nope"), resource=VOLUME_SNAPSHOT_CONTENTS, times=3
    )
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    assert await probe_crds(kube, SNAPSHOT_CRDS, 30.0, sleep=sleep) is None
    assert [round(d, 3) for d in delays] == [0.1, 0.15, 0.225]
    lists = [a for a in kube.actions if a.verb == "list"]
    assert all(a.resource in {r.plural for r in SNAPSHOT_CRDS} for a in lists)


async def test_gives_up_after_the_limit_with_the_error() -> None:
    kube = FakeKube()
    kube.inject(
        "list",
        ApiError(404, "NotFound", "the server could not find the requested resource"),
        resource=VOLUME_SNAPSHOTS,
        times=10_000,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    error: Any = await probe_crds(kube, SNAPSHOT_CRDS, 0.2)
    assert error is not None and "volumesnapshots" in error and "could not find" in error
    # at least one second, as in Go, and not much more
    assert 0.9 <= loop.time() - started < 3.0
