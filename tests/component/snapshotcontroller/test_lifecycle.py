"""The snapshot-controller role end to end on the fake API server (the sidecar is played)."""

from __future__ import annotations

import aiohttp

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import (
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    ANN_VOLUME_SNAPSHOT_BEING_DELETED,
    PVC_FINALIZER,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_AS_SOURCE_FINALIZER,
    VS_BOUND_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller.controller import Config, make_setup
from tests.component.snapshotcontroller.harness import poll, running
from tests.support.net import free_port
from tests.unit.snapshotcontroller.fixtures import pv, pvc, vs, vsclass

CONTENT = "snapcontent-u1"


async def test_dynamic_snapshot_create_ready_delete() -> None:
    http = f"127.0.0.1:{free_port()}"
    async with running(http=http) as env:

        def snap_fins() -> list[str]:
            return (env.get("VolumeSnapshot", "s") or {}).get("metadata", {}).get("finalizers", [])

        await env.add(
            vsclass("gold", default=True), pvc("c", pv="p"), pv("p", "c"), vs("s", "u1", claim="c")
        )
        content = await poll(lambda: env.get("VolumeSnapshotContent", CONTENT), what="content")
        assert content["metadata"]["finalizers"] == [VSC_FINALIZER]
        assert content["spec"]["volumeSnapshotClassName"] == "gold"
        snap = await poll(
            lambda: (s := env.get("VolumeSnapshot", "s")) and s.get("status") and s, what="bound"
        )
        assert snap["spec"]["volumeSnapshotClassName"] == "gold"  # the default class
        assert snap["status"]["boundVolumeSnapshotContentName"] == CONTENT
        claim = env.get("PersistentVolumeClaim", "c")
        assert claim is not None and PVC_FINALIZER in claim["metadata"]["finalizers"]
        # the sidecar cut the snapshot
        await env.cut(CONTENT)
        await poll(
            lambda: (
                (env.get("VolumeSnapshot", "s") or {}).get("status", {}).get("readyToUse") is True
            ),
            what="ready",
        )
        snap = env.get("VolumeSnapshot", "s")
        assert snap is not None and snap["status"]["restoreSize"] == "1Ki"
        assert snap["status"]["creationTime"] == "2026-01-01T00:00:00Z"
        await poll(
            lambda: sorted(snap_fins()) == sorted([VS_AS_SOURCE_FINALIZER, VS_BOUND_FINALIZER]),
            what="fins",
        )
        # no snapshot in flight any more: the claim is free again
        await poll(
            lambda: (
                PVC_FINALIZER
                not in (env.get("PersistentVolumeClaim", "c") or {})
                .get("metadata", {})
                .get("finalizers", [])
            ),
            what="claim released",
        )
        await poll(
            lambda: (
                {"CreatingSnapshot", "SnapshotCreated", "SnapshotReady"} <= set(env.reasons("s"))
            ),
            what="events",
        )
        # delete: the content is marked and deleted, the snapshot waits for it
        await env.kube.delete(VOLUME_SNAPSHOTS, "s", "default")
        await poll(
            lambda: (
                (env.get("VolumeSnapshotContent", CONTENT) or {})
                .get("metadata", {})
                .get("deletionTimestamp")
            ),
            what="content deleting",
        )
        content = env.get("VolumeSnapshotContent", CONTENT)
        assert content is not None
        assert content["metadata"]["annotations"][ANN_VOLUME_SNAPSHOT_BEING_DELETED] == "yes"
        assert env.get("VolumeSnapshot", "s") is not None
        await env.sidecar_delete(CONTENT)
        await poll(lambda: env.get("VolumeSnapshot", "s") is None, what="snapshot gone")
        async with aiohttp.ClientSession() as s, s.get(f"http://{http}/metrics") as resp:
            text = await resp.text()
        for op in ("CreateSnapshot", "CreateSnapshotAndReady", "DeleteSnapshot"):
            assert (
                'snapshot_controller_operation_total_seconds_count{driver_name="hostpath.csi.k8s.io",'
                f'operation_name="{op}",operation_status="success",snapshot_type="dynamic"}} 1.0'
            ) in text
        assert "snapshot_controller_operations_in_flight 0.0" in text
        assert 'workqueue_adds_total{name="snapshot-controller-snapshot"}' in text


async def test_delete_while_creating_never_leaks_1388() -> None:
    """The snapshot is deleted while CreateSnapshot is in flight (being-created set): the
    content stays until the sidecar has finished creating and deleted it."""
    async with running() as env:
        await env.add(
            vsclass("gold"), pvc("c", pv="p"), pv("p", "c"), vs("s", "u1", claim="c", cls="gold")
        )
        await poll(lambda: env.get("VolumeSnapshotContent", CONTENT), what="content")
        await env.kube.patch(
            VOLUME_SNAPSHOT_CONTENTS,
            CONTENT,
            {"metadata": {"annotations": {ANN_VOLUME_SNAPSHOT_BEING_CREATED: "yes"}}},
        )
        await env.kube.delete(VOLUME_SNAPSHOTS, "s", "default")
        await poll(
            lambda: (
                (env.get("VolumeSnapshotContent", CONTENT) or {})
                .get("metadata", {})
                .get("deletionTimestamp")
            ),
            what="content deleting",
        )
        content = env.get("VolumeSnapshotContent", CONTENT)
        assert content is not None
        anns = content["metadata"]["annotations"]
        assert anns[ANN_VOLUME_SNAPSHOT_BEING_CREATED] == "yes"  # kept: the sidecar's to remove
        assert anns[ANN_VOLUME_SNAPSHOT_BEING_DELETED] == "yes"
        # the claim stays protected while the cut may be running
        claim = env.get("PersistentVolumeClaim", "c")
        assert claim is not None and PVC_FINALIZER in claim["metadata"]["finalizers"]
        # the sidecar's create finishes; only then does it delete
        await env.cut(CONTENT)
        await env.kube.patch(
            VOLUME_SNAPSHOT_CONTENTS,
            CONTENT,
            {"metadata": {"annotations": {ANN_VOLUME_SNAPSHOT_BEING_CREATED: None}}},
        )
        await env.sidecar_delete(CONTENT)
        await poll(lambda: env.get("VolumeSnapshot", "s") is None, what="snapshot gone")
        await poll(
            lambda: (
                PVC_FINALIZER
                not in (env.get("PersistentVolumeClaim", "c") or {})
                .get("metadata", {})
                .get("finalizers", [])
            ),
            what="claim released",
        )


async def test_retain_keeps_the_content() -> None:
    async with running() as env:
        await env.add(
            vsclass("keep", policy="Retain"),
            pvc("c", pv="p"),
            pv("p", "c"),
            vs("s", "u1", claim="c", cls="keep"),
        )
        await poll(lambda: env.get("VolumeSnapshotContent", CONTENT), what="content")
        await env.cut(CONTENT)
        await poll(
            lambda: (
                (env.get("VolumeSnapshot", "s") or {}).get("status", {}).get("readyToUse") is True
            ),
            what="ready",
        )
        await env.kube.delete(VOLUME_SNAPSHOTS, "s", "default")
        await poll(lambda: env.get("VolumeSnapshot", "s") is None, what="snapshot gone")
        content = env.get("VolumeSnapshotContent", CONTENT)
        assert content is not None and not content["metadata"].get("deletionTimestamp")
        assert content["metadata"]["annotations"][ANN_VOLUME_SNAPSHOT_BEING_DELETED] == "yes"


async def test_snapshot_of_a_missing_claim_is_an_error_on_the_object() -> None:
    async with running() as env:
        await env.add(vsclass("gold"), vs("s", "u1", claim="nope", cls="gold"))
        snap = await poll(
            lambda: (s := env.get("VolumeSnapshot", "s")) and s.get("status") and s,
            what="error status",
        )
        assert "failed to retrieve PVC nope" in snap["status"]["error"]["message"]
        assert snap["status"]["readyToUse"] is False
        await poll(lambda: "SnapshotContentCreationFailed" in env.reasons("s"), what="event")
        assert env.get("VolumeSnapshotContent", CONTENT) is None
        # the controller keeps serving other snapshots
        await env.add(pvc("c", pv="p"), pv("p", "c"), vs("t", "u2", claim="c", cls="gold"))
        await poll(lambda: env.get("VolumeSnapshotContent", "snapcontent-u2"), what="other content")


async def test_missing_snapshot_crds_exit_1() -> None:
    kube = FakeKube()
    kube.inject(
        "list",
        ApiError(404, "NotFound", "the server could not find the requested resource"),
        resource=VOLUME_SNAPSHOTS,
        times=1000,
    )
    from csi_sidecars.controller import ControllerOptions, run_controller
    from csi_sidecars.kube.options import KubeOptions

    code = await run_controller(
        ControllerOptions(
            role="snapshot-controller", event_component="snapshot-controller", needs_driver=False
        ),
        KubeOptions(),
        __import__("asyncio").Event(),
        lock_name=lambda _: "l",
        setup=make_setup(Config(retry_crd_max=0.5)),
        port=kube,
    )
    assert code == 1


async def test_missing_group_crds_only_disable_groups() -> None:
    kube = FakeKube()
    kube.inject(
        "list", ApiError(404, "NotFound", "not found"), resource=VOLUME_GROUP_SNAPSHOTS, times=1000
    )
    async with running(kube, Config(workers=1, retry_crd_max=0.3, groups=True)) as env:
        assert env.controller.config.groups is False
        assert VOLUME_GROUP_SNAPSHOTS.plural not in env.controller.informers
