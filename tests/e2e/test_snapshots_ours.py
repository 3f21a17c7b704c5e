"""Both snapshot roles of ours together on the testbed: no Go component in the snapshot path.

Our ``snapshot-controller`` and our ``snapshotter`` (group gate on, leader election), our
provisioner for the claims and the playground driver: dynamic snapshots, the default class,
pre-provisioned contents, Delete and Retain, a group snapshot by a selector with
``matchExpressions``, and a snapshot of a missing claim. Every test ends with the driver holding
no snapshot that no content accounts for, and no object stuck in deletion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.csi.connection import connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane
from csi_sidecars.playground.process import poll_until
from tests.e2e.provisioner_support import events_of
from tests.e2e.snapshots_support import (
    BEING_CREATED,
    BEING_DELETED,
    DEFAULT_GROUP_CLASS,
    VGSCLASSES,
    VGSCS,
    VS_FINALIZERS,
    VSC_FINALIZER,
    VSCLASSES,
    VSCS,
    SnapshotBed,
    groups_path,
    snapshot_class,
    snapshots_path,
    start_bed,
    static_content,
    stop_bed,
    terminating,
    volume_snapshot,
    wait_claim_released,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bed(control_plane: ControlPlane) -> AsyncIterator[SnapshotBed]:
    bed = await start_bed(control_plane, "snapours")
    await bed.start_controller("python")
    await bed.start_snapshotter("python", "--extra-create-metadata")
    try:
        yield bed
    finally:
        for proc in (bed.controller, bed.snapshotter):
            if proc is not None and not proc.running:
                print(f"----- {proc.name} exited {proc.returncode} -----\n{proc.log_tail(80)}")
        await stop_bed(bed)


async def settle(bed: SnapshotBed, namespace: str) -> None:
    """Both roles still run; nothing of the test is stuck in deletion; nothing leaked."""
    assert bed.controller is not None and bed.controller.running, bed.controller
    assert bed.snapshotter is not None and bed.snapshotter.running, bed.snapshotter
    paths = [snapshots_path(namespace), VSCS, groups_path(namespace), VGSCS]

    async def nothing_terminating() -> bool:
        return not await terminating(bed.api, paths)

    try:
        await poll_until(nothing_terminating, 30, "no object in deletion")
    except TimeoutError:
        raise AssertionError(f"stuck: {await terminating(bed.api, paths)}") from None
    await bed.assert_no_leak()


async def test_dynamic_snapshot_then_delete(bed: SnapshotBed, api: RawApi, namespace: str) -> None:
    cls = await snapshot_class(api, bed.driver.name, parameters={"tier": "gold"})
    try:
        await bed.claim(namespace, "data")
        handle = await bed.volume_handle(namespace, "data")
        await api.create(snapshots_path(namespace), volume_snapshot("s1", claim="data", cls=cls))
        vs = await wait_ready(api, namespace, "s1")
        uid = vs["metadata"]["uid"]
        content_name = f"snapcontent-{uid}"
        assert vs["status"]["boundVolumeSnapshotContentName"] == content_name
        assert vs["status"]["restoreSize"] == "1Mi"
        assert vs["status"]["creationTime"]
        assert set(vs["metadata"]["finalizers"]) >= VS_FINALIZERS
        # Ready follows the content's status write; the being-created annotation goes in the
        # snapshotter's next write.
        content = await api.wait_for(
            f"{VSCS}/{content_name}",
            lambda o: BEING_CREATED not in (o["metadata"].get("annotations") or {}),
            timeout=30,
            what=f"the being-created annotation removed from {content_name}",
        )
        assert content["spec"]["volumeSnapshotRef"]["uid"] == uid
        assert content["spec"]["source"] == {"volumeHandle": handle}
        assert content["spec"]["deletionPolicy"] == "Delete"
        assert content["spec"]["sourceVolumeMode"] == "Filesystem"
        assert VSC_FINALIZER in content["metadata"]["finalizers"]
        backend = bed.backend()[content["status"]["snapshotHandle"]]
        assert backend.name == f"snapshot-{uid}"
        assert backend.source_volume_id == handle
        assert backend.parameters == {
            "tier": "gold",
            "csi.storage.k8s.io/volumesnapshot/name": "s1",
            "csi.storage.k8s.io/volumesnapshot/namespace": namespace,
            "csi.storage.k8s.io/volumesnapshotcontent/name": content_name,
        }
        assert content["status"]["restoreSize"] == 1 << 20
        for reason in ("CreatingSnapshot", "SnapshotCreated", "SnapshotReady"):
            assert await events_of(api, namespace, "s1", reason), reason
        await wait_claim_released(api, namespace, "data")

        await api.delete(f"{snapshots_path(namespace)}/s1")
        await api.wait_deleted(f"{snapshots_path(namespace)}/s1", 60)
        await api.wait_deleted(f"{VSCS}/{content_name}", 60)
        assert backend.snapshot_id not in bed.backend()
        await settle(bed, namespace)
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")


async def test_default_class_is_filled_in(bed: SnapshotBed, api: RawApi, namespace: str) -> None:
    other = await snapshot_class(api, "other.csi.example.com", default=True)
    cls = await snapshot_class(api, bed.driver.name, default=True)
    try:
        await bed.claim(namespace, "data")
        await api.create(snapshots_path(namespace), volume_snapshot("d1", claim="data"))
        vs = await wait_ready(api, namespace, "d1")
        # the default class of the claim's driver, not the other driver's
        assert vs["spec"]["volumeSnapshotClassName"] == cls
        content = await api.get(f"{VSCS}/{vs['status']['boundVolumeSnapshotContentName']}")
        assert content["spec"]["volumeSnapshotClassName"] == cls
        await api.delete(f"{snapshots_path(namespace)}/d1")
        await api.wait_deleted(f"{snapshots_path(namespace)}/d1", 60)
        await settle(bed, namespace)
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")
        await api.delete(f"{VSCLASSES}/{other}")


async def test_retain_keeps_the_content_and_the_backend_snapshot(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = await snapshot_class(api, bed.driver.name, policy="Retain")
    try:
        await bed.claim(namespace, "data")
        await api.create(snapshots_path(namespace), volume_snapshot("kept", claim="data", cls=cls))
        vs = await wait_ready(api, namespace, "kept")
        content_name = vs["status"]["boundVolumeSnapshotContentName"]
        # a Retain content: the snapshot gets no bound-protection finalizer
        assert (
            "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
            not in (vs["metadata"]["finalizers"])
        )
        handle = (await api.get(f"{VSCS}/{content_name}"))["status"]["snapshotHandle"]
        await api.delete(f"{snapshots_path(namespace)}/kept")
        await api.wait_deleted(f"{snapshots_path(namespace)}/kept", 60)
        content = await api.get(f"{VSCS}/{content_name}")
        assert content["metadata"]["annotations"][BEING_DELETED] == "yes"
        assert not content["metadata"].get("deletionTimestamp")
        assert handle in bed.backend()
        # Deleting the retained content keeps the backend snapshot (Retain) ...
        await api.delete(f"{VSCS}/{content_name}")
        await api.wait_deleted(f"{VSCS}/{content_name}", 60)
        assert handle in bed.backend()
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")
    # ... which is the point of Retain; remove it by hand so the leak check holds.
    conn = await connect(str(bed.driver.socket), timeout=10)
    try:
        await conn.controller.DeleteSnapshot(
            csi_pb2.DeleteSnapshotRequest(snapshot_id=handle), timeout=10
        )
    finally:
        await conn.close()
    await settle(bed, namespace)


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
async def test_pre_provisioned_content(
    bed: SnapshotBed, api: RawApi, namespace: str, policy: str
) -> None:
    await bed.claim(namespace, "src")
    conn = await connect(str(bed.driver.socket), timeout=10)
    try:
        made = await conn.controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(
                name=f"backup-{namespace}",
                source_volume_id=await bed.volume_handle(namespace, "src"),
            ),
            timeout=10,
        )
        handle = made.snapshot.snapshot_id
        name = f"static-{namespace}"
        await api.create(
            VSCS, static_content(name, bed.driver.name, handle, namespace, "imp", policy)
        )
        await api.create(snapshots_path(namespace), volume_snapshot("imp", content=name))
        vs = await wait_ready(api, namespace, "imp")
        assert vs["status"]["boundVolumeSnapshotContentName"] == name
        assert vs["status"]["restoreSize"] == "1Mi"
        content = await api.get(f"{VSCS}/{name}")
        assert content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
        assert content["status"]["snapshotHandle"] == handle
        assert content["status"]["readyToUse"] is True
        assert "volumeSnapshotClassName" not in vs["spec"]

        await api.delete(f"{snapshots_path(namespace)}/imp")
        await api.wait_deleted(f"{snapshots_path(namespace)}/imp", 60)
        if policy == "Delete":
            await api.wait_deleted(f"{VSCS}/{name}", 60)
            assert handle not in bed.backend()
        else:
            content = await api.get(f"{VSCS}/{name}")
            assert content["metadata"]["annotations"][BEING_DELETED] == "yes"
            assert handle in bed.backend()
            await api.delete(f"{VSCS}/{name}")
            await api.wait_deleted(f"{VSCS}/{name}", 60)
            assert handle in bed.backend()
            await conn.controller.DeleteSnapshot(
                csi_pb2.DeleteSnapshotRequest(snapshot_id=handle), timeout=10
            )
    finally:
        await conn.close()
    await settle(bed, namespace)


async def test_group_snapshot_by_selector_with_match_expressions(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = f"vgsclass-{namespace}"
    await api.create(
        VGSCLASSES,
        {
            "apiVersion": "groupsnapshot.storage.k8s.io/v1",
            "kind": "VolumeGroupSnapshotClass",
            "metadata": {"name": cls, "annotations": {DEFAULT_GROUP_CLASS: "true"}},
            "driver": bed.driver.name,
            "deletionPolicy": "Delete",
        },
    )
    try:
        for name, labels in (
            ("db-0", {"app": "db", "tier": "data"}),
            ("db-1", {"app": "db", "tier": "data"}),
            ("db-log", {"app": "db", "tier": "log"}),
            ("web", {"app": "web", "tier": "data"}),
        ):
            await bed.claim(namespace, name, labels)
        handles = {n: await bed.volume_handle(namespace, n) for n in ("db-0", "db-1")}
        selector = {
            "matchLabels": {"app": "db"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["log"]}],
        }
        await api.create(
            groups_path(namespace),
            {
                "apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot",
                "metadata": {"name": "g"},
                "spec": {"source": {"selector": selector}},
            },
        )
        group = await api.wait_for(
            f"{groups_path(namespace)}/g",
            lambda o: (o.get("status") or {}).get("readyToUse") is True,
            timeout=90,
            what="the group snapshot ready",
        )
        uid = group["metadata"]["uid"]
        assert group["spec"]["volumeGroupSnapshotClassName"] == cls
        content_name = group["status"]["boundVolumeGroupSnapshotContentName"]
        assert content_name == f"groupsnapcontent-{uid}"
        content = await api.get(f"{VGSCS}/{content_name}")
        assert sorted(content["spec"]["source"]["volumeHandles"]) == sorted(handles.values())
        infos = content["status"]["volumeSnapshotInfoList"]
        assert sorted(i["volumeHandle"] for i in infos) == sorted(handles.values())
        [backend_group] = bed.backend_groups().values()
        assert backend_group.name == f"groupsnapshot-{uid}"
        assert sorted(backend_group.source_volume_ids) == sorted(handles.values())

        members = (await api.get(snapshots_path(namespace)))["items"]
        assert sorted(m["spec"]["source"]["persistentVolumeClaimName"] for m in members) == [
            "db-0",
            "db-1",
        ]
        member_contents = []
        for m in members:
            assert m["metadata"]["ownerReferences"][0]["name"] == "g"
            ready = await wait_ready(api, namespace, m["metadata"]["name"])
            assert ready["status"]["volumeGroupSnapshotName"] == "g"
            mc = await api.get(f"{VSCS}/{ready['status']['boundVolumeSnapshotContentName']}")
            assert mc["status"]["snapshotHandle"] in backend_group.snapshot_ids
            member_contents.append(mc["metadata"]["name"])
        assert await events_of(api, namespace, "g", "GroupSnapshotReady")

        # a member alone cannot go while its group exists
        await api.delete(f"{snapshots_path(namespace)}/{members[0]['metadata']['name']}")
        await poll_until(
            lambda: events_of(
                api, namespace, members[0]["metadata"]["name"], "SnapshotDeletePending"
            ),
            30,
            "SnapshotDeletePending on the member",
        )
        assert await api.get(f"{VSCS}/{member_contents[0]}")

        await api.delete(f"{groups_path(namespace)}/g")
        await api.wait_deleted(f"{groups_path(namespace)}/g", 90)
        for m in members:
            await api.wait_deleted(f"{snapshots_path(namespace)}/{m['metadata']['name']}", 60)
        for name in member_contents:
            await api.wait_deleted(f"{VSCS}/{name}", 60)
        await api.wait_deleted(f"{VGSCS}/{content_name}", 60)

        async def backend_empty() -> bool:
            left = set(bed.backend()) & set(backend_group.snapshot_ids)
            return not bed.backend_groups() and not left

        await poll_until(backend_empty, 60, "the group snapshot deleted on the driver")
        await settle(bed, namespace)
    finally:
        await api.delete(f"{VGSCLASSES}/{cls}")


async def test_snapshot_of_a_missing_claim_is_an_error_on_the_object(
    bed: SnapshotBed, api: RawApi, namespace: str
) -> None:
    cls = await snapshot_class(api, bed.driver.name)
    try:
        await api.create(
            snapshots_path(namespace), volume_snapshot("orphan", claim="no-such-claim", cls=cls)
        )
        vs: Any = await api.wait_for(
            f"{snapshots_path(namespace)}/orphan",
            lambda o: bool((o.get("status") or {}).get("error")),
            timeout=30,
            what="an error on the snapshot",
        )
        assert "no-such-claim" in vs["status"]["error"]["message"]
        assert vs["status"]["readyToUse"] is False
        assert await events_of(api, namespace, "orphan", "SnapshotContentCreationFailed")
        names = {c["metadata"]["name"] for c in await bed.contents()}
        assert f"snapcontent-{vs['metadata']['uid']}" not in names
        # The claim turns up later: the snapshot is taken after all.
        await bed.claim(namespace, "no-such-claim")
        vs = await wait_ready(api, namespace, "orphan")
        assert not vs["status"].get("error")
        await api.delete(f"{snapshots_path(namespace)}/orphan")
        await api.wait_deleted(f"{snapshots_path(namespace)}/orphan", 60)
        await settle(bed, namespace)
    finally:
        await api.delete(f"{VSCLASSES}/{cls}")
