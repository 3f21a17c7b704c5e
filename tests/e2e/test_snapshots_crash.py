"""SIGKILL of both snapshot roles, at random moments, in the middle of a burst of snapshots.

Our snapshot-controller and our snapshotter (leader election with short leases, so a restarted
process first waits for the dead leader's Lease) handle 20 snapshots of one claim while the
driver answers CreateSnapshot slowly and reports new snapshots not ready for a while. Both roles
are killed with SIGKILL several times, each at a random moment, and restarted; half the
snapshots are deleted meanwhile. Afterwards: the kept snapshots are ready, the deleted ones and
their contents are gone, the driver holds exactly one snapshot per kept content (no leak, no
duplicate), no finalizer is left behind, and deleting the rest empties the driver.

The random moments come from a seed printed with the test's output
(``CSI_SIDECARS_CRASH_SEED`` replays one).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import ManagedProcess, poll_until
from tests.e2e.snapshots_support import (
    BEING_CREATED,
    SHORT_LEASE,
    VS_FINALIZERS,
    VSC_FINALIZER,
    VSCLASSES,
    VSCS,
    SnapshotBed,
    snapshot_class,
    snapshots_path,
    start_bed,
    stop_bed,
    terminating,
    volume_snapshot,
    wait_claim_released,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

COUNT = 20
KILLS = 3


@pytest_asyncio.fixture(loop_scope="session")
async def bed(control_plane: ControlPlane) -> AsyncIterator[SnapshotBed]:
    bed = await start_bed(control_plane, "snapcrash", "--snapshot-ready-delay=2")
    try:
        yield bed
    finally:
        for proc in (bed.controller, bed.snapshotter):
            if proc is not None:
                print(f"----- {proc.name} -----\n{proc.log_tail(60)}")
        await stop_bed(bed)


async def kill_and_restart(proc: ManagedProcess, at: float, down: float) -> None:
    """SIGKILL ``proc`` after ``at`` seconds, start it again ``down`` seconds later."""
    await asyncio.sleep(at)
    assert proc.running, f"{proc.name} exited on its own: {proc.returncode}\n{proc.log_tail()}"
    proc.signal(signal.SIGKILL)
    assert await proc.wait(10) == -signal.SIGKILL
    await asyncio.sleep(down)
    await proc.start()


async def creating(bed: SnapshotBed) -> list[str]:
    """Contents whose CreateSnapshot may be in flight (the being-created annotation)."""
    return [
        c["metadata"]["name"]
        for c in await bed.contents()
        if BEING_CREATED in (c["metadata"].get("annotations") or {})
    ]


class Progress:
    """How far the burst got: contents, backend handles recorded, ready snapshots, snapshots
    gone. The score grows only while the roles work (whatever part of the work it is)."""

    def __init__(self, bed: SnapshotBed, path: str) -> None:
        self.bed = bed
        self.path = path
        self.mark = 0

    async def score(self) -> tuple[int, bool]:
        """The score, and whether nothing is left to do."""
        contents = await self.bed.contents()
        snaps = (await self.bed.api.get(self.path))["items"]
        ready = sum(1 for s in snaps if (s.get("status") or {}).get("readyToUse"))
        handles = sum(1 for c in contents if (c.get("status") or {}).get("snapshotHandle"))
        idle = ready == len(snaps) and not any(
            s["metadata"].get("deletionTimestamp") for s in snaps
        )
        return len(contents) + handles + ready + (COUNT - len(snaps)), idle

    async def reset(self) -> None:
        """Remember the current score."""
        self.mark, _ = await self.score()

    async def moved(self) -> bool:
        """Whether the score grew since :meth:`reset` (or there is no work left)."""
        score, idle = await self.score()
        return score > self.mark or idle


async def test_sigkill_both_roles_mid_burst(bed: SnapshotBed, api: RawApi, namespace: str) -> None:
    seed = int(os.environ.get("CSI_SIDECARS_CRASH_SEED", time.time_ns() % 1_000_000))
    print(f"CSI_SIDECARS_CRASH_SEED={seed}")
    rnd = random.Random(seed)
    # Slow creations and deletions (calls in flight at the kills); new snapshots are not
    # ready at once (readiness polling).
    bed.driver.faults(
        [{"method": "CreateSnapshot", "delay": 1.0}, {"method": "DeleteSnapshot", "delay": 1.0}]
    )
    controller = await bed.start_controller("python", *SHORT_LEASE)
    snapshotter = await bed.start_snapshotter("python", *SHORT_LEASE)
    cls = await snapshot_class(api, bed.driver.name)
    path = snapshots_path(namespace)
    try:
        await bed.claim(namespace, "burst")
        names = [f"b-{i:02d}" for i in range(COUNT)]
        await asyncio.gather(
            *(api.create(path, volume_snapshot(n, claim="burst", cls=cls)) for n in names)
        )
        deleted = rnd.sample(names, COUNT // 2)
        kept = sorted(set(names) - set(deleted))
        batches = [deleted[i::KILLS] for i in range(KILLS)]
        progress = Progress(bed, path)
        for batch in batches:
            # Kill while the (restarted) leaders are at work: wait for progress first.
            await poll_until(progress.moved, 60, "the roles at work")
            in_flight = len(await creating(bed))
            deleting = len(await terminating(api, [VSCS]))
            kills = [
                kill_and_restart(controller, rnd.uniform(0.0, 1.5), rnd.uniform(0.0, 1.0)),
                kill_and_restart(snapshotter, rnd.uniform(0.0, 1.5), rnd.uniform(0.0, 1.0)),
            ]
            deletes = [api.delete(f"{path}/{n}") for n in batch]
            await asyncio.gather(*kills, *deletes)
            print(f"kill round: shortly before, {in_flight} creates, {deleting} deletions on")
            await progress.reset()
        bed.driver.faults([])

        async def converged() -> bool:
            items = {s["metadata"]["name"]: s for s in (await api.get(path))["items"]}
            if sorted(items) != kept or not all(
                (s.get("status") or {}).get("readyToUse") for s in items.values()
            ):
                return False
            # A snapshot is ready once its content's status is written; the snapshotter
            # drops the being-created annotation in a later write, and the contents of
            # deleted snapshots go after their snapshots.
            contents = await bed.contents()
            want = {f"snapcontent-{s['metadata']['uid']}" for s in items.values()}
            return {c["metadata"]["name"] for c in contents} == want and not any(
                BEING_CREATED in (c["metadata"].get("annotations") or {})
                or c["metadata"].get("deletionTimestamp")
                for c in contents
            )

        try:
            await poll_until(converged, 180, "kept snapshots ready, deleted ones gone")
        except TimeoutError:
            left = (await api.get(path))["items"]
            report = {s["metadata"]["name"]: s.get("status") for s in left}
            contents_left = {c["metadata"]["name"]: c["metadata"] for c in await bed.contents()}
            raise AssertionError(f"not converged: {report}; contents: {contents_left}") from None

        snaps = {s["metadata"]["name"]: s for s in (await api.get(path))["items"]}
        contents = {c["metadata"]["name"]: c for c in await bed.contents()}
        assert sorted(contents) == sorted(
            f"snapcontent-{s['metadata']['uid']}" for s in snaps.values()
        )
        handles = {c["status"]["snapshotHandle"] for c in contents.values()}
        assert len(handles) == len(kept)
        assert set(bed.backend()) == handles, "the driver holds snapshots of no content"
        for s in snaps.values():
            assert set(s["metadata"]["finalizers"]) == VS_FINALIZERS, s["metadata"]
        for c in contents.values():
            assert c["metadata"]["finalizers"] == [VSC_FINALIZER]
            assert BEING_CREATED not in (c["metadata"].get("annotations") or {})
        assert not await terminating(api, [path, VSCS])
        await wait_claim_released(api, namespace, "burst")

        await asyncio.gather(*(api.delete(f"{path}/{n}") for n in kept))

        async def all_gone() -> bool:
            return not (await api.get(path))["items"] and not await bed.contents()

        await poll_until(all_gone, 90, "every snapshot and content gone")
        assert bed.backend() == {}
        assert controller.running and snapshotter.running
    finally:
        bed.driver.faults([])
        await api.delete(f"{VSCLASSES}/{cls}")
