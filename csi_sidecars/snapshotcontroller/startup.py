"""Waiting for the snapshot API at start-up (Go's ``ensureCustomResourceDefinitionsExist``).

The snapshot CRDs are not part of Kubernetes; a controller started before them would fail every
list. :func:`probe_crds` asks each kind for one object until all answer, with Go's back-off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import Resource
from csi_sidecars.kube.snapshots import (
    VOLUME_GROUP_SNAPSHOT_CLASSES,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from csi_sidecars.runtime import logging as rlog
from csi_sidecars.snapshotcontroller import names

log = rlog.get_logger(names.ROLE)

CRD_BACKOFF_START = 0.1
CRD_BACKOFF_FACTOR = 1.5
SNAPSHOT_CRDS = (VOLUME_SNAPSHOTS, VOLUME_SNAPSHOT_CLASSES, VOLUME_SNAPSHOT_CONTENTS)
GROUP_CRDS = (VOLUME_GROUP_SNAPSHOTS, VOLUME_GROUP_SNAPSHOT_CLASSES, VOLUME_GROUP_SNAPSHOT_CONTENTS)


async def probe_crds(
    port: KubePort,
    resources: tuple[Resource, ...],
    limit: float,
    stop: asyncio.Event | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> str | None:
    """Wait until every resource answers ``List(limit=1)``; None, or the last error.

    Go's ``ensureCustomResourceDefinitionsExist``: back-off from 100 ms by 1.5, for at least a
    second and at most ``limit`` seconds in total.
    """
    deadline = asyncio.get_running_loop().time() + max(limit, 1.0)
    delay = CRD_BACKOFF_START
    while True:
        error = None
        for res in resources:
            try:
                await port.list(res, limit=1)
            except Exception as exc:  # ApiError 404 while the CRD is missing; network errors
                error = f"Failed to list v1 {res.plural} with error={exc}"
                break
        if error is None:
            return None
        log.info("Snapshot API not ready", error=error)
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0 or (stop and stop.is_set()):
            return error
        await sleep(min(delay, remaining))
        delay *= CRD_BACKOFF_FACTOR
