"""Deletion, attachments, finalizers, cloning protection and the no-leak intent across a crash."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc

from csi_sidecars.kube.resources import (
    LEASES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    SECRETS,
    VOLUME_ATTACHMENTS,
    JsonDict,
)
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.journal import decode_records, journal_name
from tests.component.provisioner.harness import DRIVER, NS, Env, environment, poll


async def test_delete_not_found_counts_as_deleted(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        pvc = await env.add_claim("data")
        await env.start()
        pv = await env.bind("data")
        env.driver.faults.add("DeleteVolume", code=grpc.StatusCode.NOT_FOUND, times=1)
        await env.release(pv["metadata"]["name"])
        await poll(lambda: env.pv_of(pvc) is None, what="PV deleted")
        await env.flush_events()
        assert not env.events.of(pv["metadata"]["name"], "VolumeFailedDelete")


async def test_delete_failure_is_an_event_and_a_retry(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        pvc = await env.add_claim("data")
        await env.start()
        pv = await env.bind("data")
        env.driver.faults.add(
            "DeleteVolume", code=grpc.StatusCode.INTERNAL, message="busy", times=1
        )
        await env.release(pv["metadata"]["name"])
        await poll(lambda: env.pv_of(pvc) is None, what="PV deleted")
        await env.flush_events()
        failed = env.events.of(pv["metadata"]["name"], "VolumeFailedDelete")
        assert [e[3] for e in failed] == ["rpc error: code = Internal desc = busy"]
        assert not env.volumes()


async def test_attachment_blocks_deletion_until_it_is_gone(tmp_path: Path) -> None:
    async with environment(tmp_path, enable_attach=True) as env:
        await env.add_class()
        pvc = await env.add_claim("data")
        await env.start()
        pv = await env.bind("data")
        pv_name = pv["metadata"]["name"]
        va = {
            "metadata": {"name": "va-1"},
            "spec": {"attacher": DRIVER, "nodeName": "node-1",
                     "source": {"persistentVolumeName": pv_name}},
        }  # fmt: skip
        await env.kube.create(VOLUME_ATTACHMENTS, va)
        await env.release(pv_name)
        failed = await poll(lambda: env.events.of(pv_name, "VolumeFailedDelete"), what="event")
        assert failed[0][3] == f"persistentvolume {pv_name} is still attached to node node-1"
        assert not env.driver.calls_of("DeleteVolume")
        await env.kube.delete(VOLUME_ATTACHMENTS, "va-1")
        await poll(lambda: env.pv_of(pvc) is None, what="PV deleted")
        assert not env.volumes()


async def test_retain_policy_drops_our_finalizer(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        pv = {
            "metadata": {"name": "static", "finalizers": [strings.PV_FINALIZER, "other/keep"],
                         "annotations": {strings.ANN_PROVISIONED_BY: DRIVER}},
            "spec": {"csi": {"driver": DRIVER, "volumeHandle": "v1"},
                     "persistentVolumeReclaimPolicy": "Retain", "capacity": {"storage": "1Gi"}},
        }  # fmt: skip
        await env.kube.create(PERSISTENT_VOLUMES, pv)
        await env.start()

        def dropped() -> bool:
            cur = env.pv("static")
            return cur is not None and cur["metadata"]["finalizers"] == ["other/keep"]

        await poll(dropped, what="finalizer removed")


async def test_clone_protection_lasts_while_a_clone_is_pending(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        await env.add_claim("origin")
        await env.start()
        source_pv = await env.bind("origin")
        env.driver.faults.add("CreateVolume", code=grpc.StatusCode.UNAVAILABLE, times=3)
        clone = await env.add_claim(
            "copy", dataSource={"kind": "PersistentVolumeClaim", "name": "origin"}
        )
        await poll(lambda: env.pv_of(clone), what="clone PV")
        request = env.driver.calls_of("CreateVolume")[-1]
        assert (
            request.volume_content_source.volume.volume_id
            == (source_pv["spec"]["csi"]["volumeHandle"])
        )
        origin = env.pvc("origin")
        assert origin is not None
        assert strings.CLONE_SOURCE_FINALIZER in origin["metadata"]["finalizers"]
        await env.kube.delete(PERSISTENT_VOLUME_CLAIMS, "origin", NS)
        # The clone is still Pending: the source stays.
        await env.idle()
        assert env.pvc("origin") is not None
        await env.bind("copy")
        await poll(lambda: env.pvc("origin") is None, what="source released")


async def _crash_mid_create(env: Env, reclaim: str) -> JsonDict:
    # First call: the driver creates the volume but the reply is lost; the retry hangs.
    env.driver.faults.add("CreateVolume", code=grpc.StatusCode.UNAVAILABLE, when="after", times=1)
    env.driver.faults.add("CreateVolume", delay=30, after=1, times=1)
    await env.add_class(reclaimPolicy=reclaim)
    pvc = await env.add_claim("doomed")
    await env.start()
    await env.driver.wait_for_calls("CreateVolume", 2, finished=False)
    lease = env.kube.peek(LEASES, journal_name(DRIVER), NS)
    records, _ = decode_records(lease)
    assert [r.claim_name for r in records.values()] == ["doomed"]
    await env.crash()
    # The volume exists, no PV does: without the record this would leak.
    assert len(env.volumes()) == 1 and env.pv_of(pvc) is None
    await env.kube.delete(PERSISTENT_VOLUME_CLAIMS, "doomed", NS)
    assert env.pvc("doomed") is None  # no finalizer of ours holds it
    ctrl = await env.start()
    await poll(lambda: ctrl.journal.loaded and not ctrl.journal.records(), what="record dropped")
    await env.idle()
    return pvc


async def test_claim_deleted_during_a_crash_mid_create_leaks_nothing(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        pvc = await _crash_mid_create(env, "Delete")
        assert not env.volumes()
        assert env.pv_of(pvc) is None
        assert len(env.driver.calls_of("DeleteVolume")) == 1


async def test_retained_volume_of_a_deleted_claim_is_adopted(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        pvc = await _crash_mid_create(env, "Retain")
        pv = env.pv_of(pvc)
        assert pv is not None
        assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert list(env.volumes()) == [pv["spec"]["csi"]["volumeHandle"]]
        assert not env.driver.calls_of("DeleteVolume")


async def test_malformed_deletion_secret_blocks_delete_volume_with_an_event(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        good = base64.b64encode(b"admin").decode()
        secret = {"metadata": {"name": "creds", "namespace": NS}, "data": {"user": good}}
        await env.kube.create(SECRETS, secret, NS)
        await env.add_class(
            parameters={
                "csi.storage.k8s.io/provisioner-secret-name": "creds",
                "csi.storage.k8s.io/provisioner-secret-namespace": NS,
            }
        )
        pvc = await env.add_claim("data")
        await env.start()
        pv = await env.bind("data")
        pv_name = pv["metadata"]["name"]
        stored = env.kube.peek(SECRETS, "creds", NS)
        assert stored is not None
        stored["data"]["user"] = "???"
        await env.kube.replace(SECRETS, stored, NS)
        await env.release(pv_name)
        failed = await poll(lambda: env.events.of(pv_name, "VolumeFailedDelete"), what="event")
        assert f"{NS}/creds" in failed[0][3] and "admin" not in failed[0][3]
        assert not env.driver.calls_of("DeleteVolume")
        fixed = env.kube.peek(SECRETS, "creds", NS)
        assert fixed is not None
        fixed["data"]["user"] = good
        await env.kube.replace(SECRETS, fixed, NS)
        await poll(lambda: env.pv_of(pvc) is None, what="PV deleted")
        assert dict(env.driver.calls_of("DeleteVolume")[0].secrets) == {"user": "admin"}
