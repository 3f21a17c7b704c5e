"""Start-up with 30,000 VolumeSnapshots: no time-out, no writes, and resyncs cost nothing.

Go re-syncs every snapshot and content at every resync and, for each, lists every snapshot of
the namespace to decide the claim's protection: minutes of delay at 15,000 snapshots
(external-snapshotter #1148). Here the lists are paged, the protection is an index lookup per
claim, and a settled object is not even queued at resync.
"""

from __future__ import annotations

import asyncio
import time

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES
from csi_sidecars.kube.snapshots import (
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
)
from csi_sidecars.snapshotcontroller.controller import Config
from tests.component.snapshotcontroller.harness import poll, running
from tests.unit.snapshotcontroller.fixtures import CREATED, CREATED_NS, pv, pvc, vs, vsc, vsclass

SNAPSHOTS = 30_000
CLAIMS = 300
#: Generous for a shared 2-core machine; Go takes minutes at half this size.
DEADLINE = 240.0


async def test_30000_ready_snapshots_start_without_writes_or_resync_churn() -> None:
    kube = FakeKube()
    await kube.create(VOLUME_SNAPSHOT_CLASSES, vsclass("gold"))
    for c in range(CLAIMS):
        await kube.create(PERSISTENT_VOLUME_CLAIMS, pvc(f"c{c}", pv=f"p{c}"), "default")
        await kube.create(PERSISTENT_VOLUMES, pv(f"p{c}", f"c{c}"))
    for i in range(SNAPSHOTS):
        uid = f"u{i}"
        await kube.create(
            VOLUME_SNAPSHOT_CONTENTS,
            vsc(
                f"snapcontent-{uid}",
                f"s{i}",
                uid,
                handle=f"vol-p{i % CLAIMS}",
                cls="gold",
                ready=True,
                created=CREATED_NS,
                size=1024,
            ),
        )
        await kube.create(
            VOLUME_SNAPSHOTS,
            vs(
                f"s{i}",
                uid,
                claim=f"c{i % CLAIMS}",
                cls="gold",
                bound=f"snapcontent-{uid}",
                ready=True,
                created=CREATED,
                size="1Ki",
                finalizers=[VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER],
            ),
            "default",
        )
    kube.actions.clear()
    kube.compact()  # no history to replay: the informers must list
    started = time.monotonic()
    async with running(kube, Config(workers=10, groups=False)) as env:
        c = env.controller
        await poll(lambda: all(i.has_synced() for i in c.informers.values()), DEADLINE, "sync")
        snapshots = c.snapshots
        await poll(env.idle, DEADLINE, "first pass")
        took = time.monotonic() - started
        assert env.writes() == []
        # every snapshot was looked at once, every content once
        adds = c.ctx.registry.get_sample_value(
            "workqueue_adds_total", {"name": "snapshot-controller-snapshot"}
        )
        assert adds == SNAPSHOTS
        lists = [a for a in kube.actions if a.verb == "list" and a.resource == "volumesnapshots"]
        assert len(lists) >= SNAPSHOTS // 500  # paged
        # a full resync queues nothing: every object is settled
        for inf in c.informers.values():
            inf.resync()
        assert len(snapshots) == 0 and len(c.contents) == 0 and len(c.claims) == 0
        await asyncio.sleep(0)
    print(f"\n30k start-up: first pass done in {took:.1f}s")
    assert took < DEADLINE


BACKLOG = 5_000
FINALIZERS = [VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]


async def test_a_new_snapshot_is_cut_before_the_settled_ones_are_rechecked() -> None:
    """At start-up the settled objects are checked after the new work (#1148): a snapshot listed
    after 5,000 settled ones gets its content while most of them still wait."""
    kube = FakeKube()
    await kube.create(VOLUME_SNAPSHOT_CLASSES, vsclass("gold"))
    await kube.create(PERSISTENT_VOLUME_CLAIMS, pvc("c0", pv="p0"), "default")
    await kube.create(PERSISTENT_VOLUMES, pv("p0", "c0"))
    for i in range(BACKLOG):
        uid = f"u{i}"
        await kube.create(
            VOLUME_SNAPSHOT_CONTENTS,
            vsc(f"snapcontent-{uid}", f"s{i}", uid, handle="vol-p0", cls="gold", ready=True,
                created=CREATED_NS, size=1024),
        )  # fmt: skip
        await kube.create(
            VOLUME_SNAPSHOTS,
            vs(f"s{i}", uid, claim="c0", cls="gold", bound=f"snapcontent-{uid}", ready=True,
               created=CREATED, size="1Ki", finalizers=FINALIZERS),
            "default",
        )  # fmt: skip
    # listed last: Go (and a plain queue) would look at it after every settled snapshot
    await kube.create(VOLUME_SNAPSHOTS, vs("zz-new", "unew", claim="c0", cls="gold"), "default")
    kube.actions.clear()
    kube.compact()
    async with running(kube, Config(workers=10, groups=False)) as env:
        c = env.controller

        def adds() -> float:
            value = c.ctx.registry.get_sample_value(
                "workqueue_adds_total", {"name": "snapshot-controller-snapshot"}
            )
            return value or 0.0

        await poll(
            lambda: env.get("VolumeSnapshotContent", "snapcontent-unew"), DEADLINE, "the content"
        )
        looked_at = adds()
        await poll(env.idle, DEADLINE, "first pass")
        # every settled snapshot was still looked at once (the new one at each of its changes),
        # without a write for the settled ones
        assert BACKLOG + 1 <= adds() <= BACKLOG + 10
        written = {
            a.name
            for a in kube.actions
            if a.verb in ("create", "replace", "patch", "delete") and a.resource != "events"
        }
        assert written - {None} <= {"snapcontent-unew", "zz-new", "c0"}
    print(f"\nthe new snapshot was handled after {looked_at:.0f} of {BACKLOG + 1} snapshots")
    assert looked_at < BACKLOG / 2
