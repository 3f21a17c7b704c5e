"""Expansion end to end on the kube fake and the playground driver."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import grpc

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PODS, SECRETS
from csi_sidecars.resizer import names as n
from tests.component.resizer.harness import DRIVER, GIB, NS, poll, resizer


async def test_online_expansion_needs_the_node_step(tmp_path: Path) -> None:
    async with resizer(tmp_path) as env:
        await env.claim()
        await env.request("2Gi")
        await poll(lambda: env.status().get("allocatedResourceStatuses"), what="status")
        st = await poll(
            lambda: (
                (s := env.status())["allocatedResourceStatuses"]["storage"] == n.NODE_RESIZE_PENDING
                and s
            ),
            what="NodeResizePending",
        )
        assert st["allocatedResources"] == {"storage": "2Gi"}
        assert st["capacity"] == {"storage": "1Gi"}  # the node step finishes it
        assert [c["type"] for c in st["conditions"]] == [n.RESIZING, n.FS_RESIZE_PENDING]
        pv = env.pv()
        assert pv["spec"]["capacity"] == {"storage": "2Gi"}
        # AnnotateFsResize is off by default (alpha in v2.2.0): no pre-resize annotation
        assert n.PRE_RESIZE_CAPACITY not in (pv["metadata"].get("annotations") or {})
        assert env.capacity() == 2 * GIB
        await poll(lambda: n.FS_RESIZE_REQUIRED in env.reasons(), what="event")
        assert env.reasons() == [n.VOLUME_RESIZING, n.FS_RESIZE_REQUIRED]
        event = env.events(n.VOLUME_RESIZING)[0]
        assert event["source"]["component"] == f"external-resizer {DRIVER}"
        (req,) = env.drv.calls_of("ControllerExpandVolume")
        assert req.capacity_range.required_bytes == 2 * GIB
        assert req.volume_capability.mount.fs_type == "ext4"


async def test_controller_only_expansion_finishes(tmp_path: Path) -> None:
    async with resizer(tmp_path, driver={"disable_node_expansion": True}) as env:
        await env.claim()
        await env.request("3Gi")
        st = await poll(
            lambda: (s := env.status())["capacity"]["storage"] == "3Gi" and s, what="capacity"
        )
        assert "allocatedResourceStatuses" not in st
        assert st["allocatedResources"] == {"storage": "3Gi"}
        assert st.get("conditions") == []
        assert env.pvc()["metadata"]["annotations"] == {n.NODE_EXPANSION_NOT_REQUIRED: "true"}
        assert "annotations" not in env.pv()["metadata"]
        await poll(lambda: n.VOLUME_RESIZE_SUCCESS in env.reasons(), what="event")


async def test_node_only_driver_makes_no_controller_call(tmp_path: Path) -> None:
    async with resizer(tmp_path, driver={"disable_controller_expansion": True}) as env:
        await env.claim()
        await env.request("2Gi")
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="PV")
        st = await poll(
            lambda: (
                (s := env.status()).get("allocatedResourceStatuses")
                == {"storage": n.NODE_RESIZE_PENDING}
                and s
            ),
            what="NodeResizePending",
        )
        assert st["allocatedResources"] == {"storage": "2Gi"}
        assert env.drv.calls_of("ControllerExpandVolume") == []
        assert env.capacity() == GIB


async def test_driver_without_expansion_or_modification_is_a_clear_start_up_error(
    tmp_path: Path,
) -> None:
    options = {
        "disable_controller_expansion": True,
        "disable_node_expansion": True,
        "enable_controller_modify_volume": False,
    }
    async with resizer(tmp_path, driver=options, expect_exit=1) as env:
        code = await asyncio.wait_for(env.task, 10)
        assert code == 1


async def test_infeasible_size_then_recovery_by_lowering_the_request(tmp_path: Path) -> None:
    async with resizer(tmp_path) as env:
        await env.claim()
        await env.request("10Gi")  # the driver's maximum is 8Gi: OUT_OF_RANGE
        st = await poll(
            lambda: (
                (s := env.status()).get("allocatedResourceStatuses", {}).get("storage")
                == n.CONTROLLER_RESIZE_INFEASIBLE
                and s
            ),
            what="infeasible",
        )
        assert st["allocatedResources"] == {"storage": "10Gi"}
        error = next(c for c in st["conditions"] if c["type"] == n.CONTROLLER_RESIZE_ERROR)
        assert error["message"].startswith("failed to expand pvc with rpc error: code = OutOfRange")
        failed = await poll(lambda: env.events(n.VOLUME_RESIZE_FAILED), what="warning")
        assert failed[0]["type"] == "Warning"
        calls = len(env.drv.calls_of("ControllerExpandVolume"))
        await env.request("3Gi")
        st = await poll(
            lambda: (
                (s := env.status())["allocatedResourceStatuses"]["storage"] == n.NODE_RESIZE_PENDING
                and s
            ),
            what="recovered",
        )
        assert st["allocatedResources"] == {"storage": "3Gi"}
        assert env.pv()["spec"]["capacity"] == {"storage": "3Gi"}
        assert [c["type"] for c in st["conditions"]] == [n.RESIZING, n.FS_RESIZE_PENDING]
        sizes = [
            r.capacity_range.required_bytes for r in env.drv.calls_of("ControllerExpandVolume")
        ]
        assert sizes[calls:] == [3 * GIB]
        assert set(sizes[:calls]) == {10 * GIB}


async def test_capacity_zero_reply_is_an_error_never_written(tmp_path: Path) -> None:
    async with resizer(tmp_path, retry_start=0.2) as env:
        rule = env.drv.faults.add("ControllerExpandVolume", reply={"capacityBytes": "0"}, times=2)
        await env.claim()
        await env.request("2Gi")
        await poll(lambda: rule.fired == 2, what="two zero replies")
        warnings = await poll(lambda: env.events(n.VOLUME_RESIZE_FAILED), what="warning")
        assert "capacity of 0 bytes" in warnings[0]["message"]
        st = await poll(
            lambda: (
                (s := env.status())["allocatedResourceStatuses"]["storage"] == n.NODE_RESIZE_PENDING
                and s
            ),
            what="retried",
        )
        assert env.pv()["spec"]["capacity"] == {"storage": "2Gi"}
        patches = [
            act.body
            for act in env.kube.actions
            if act.verb == "patch" and act.resource == "persistentvolumes"
        ]
        assert all(p["spec"]["capacity"]["storage"] != "0" for p in patches)
        assert len(patches) == 1 and st["allocatedResources"] == {"storage": "2Gi"}


async def test_timed_out_expansion_is_retried_and_confirmed(tmp_path: Path) -> None:
    async with resizer(tmp_path, timeout=0.3, retry_start=0.1) as env:
        # The first call times out; the retry meets the driver still at the old size (its
        # first operation has not finished): Go takes that reply as success (#474, #226).
        env.drv.faults.add("ControllerExpandVolume", delay=1.0, times=1)
        env.drv.faults.add(
            "ControllerExpandVolume", reply={"capacityBytes": str(GIB)}, after=1, times=1
        )
        await env.claim()
        await env.request("2Gi")
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="confirmed")
        calls = env.drv.calls_of("ControllerExpandVolume")
        assert len(calls) == 3
        assert {c.capacity_range.required_bytes for c in calls} == {2 * GIB}
        await poll(lambda: n.FS_RESIZE_REQUIRED in env.reasons(), what="node step event")
        failed = [e["message"] for e in env.events(n.VOLUME_RESIZE_FAILED)]
        assert any("context deadline exceeded" in m for m in failed)
        assert any(f"capacity of {GIB} bytes" in m for m in failed)
        assert not env.events(n.VOLUME_RESIZE_SUCCESS)
        pv_writes = [
            a for a in env.kube.actions if a.verb == "patch" and a.resource == "persistentvolumes"
        ]
        assert len(pv_writes) == 1  # only from the confirmed reply
        assert env.status()["allocatedResourceStatuses"] == {"storage": n.NODE_RESIZE_PENDING}


async def test_unimplemented_is_not_retried(tmp_path: Path) -> None:
    async with resizer(tmp_path, workers=1) as env:
        env.drv.faults.add(
            "ControllerExpandVolume",
            code=grpc.StatusCode.UNIMPLEMENTED,
            match={"capacity_range": {"required_bytes": str(2 * GIB)}},
        )
        await env.claim()
        await env.claim("claim2")
        await env.request("2Gi")
        await poll(lambda: env.events(n.VOLUME_RESIZE_FAILED), what="warning")
        conds = await poll(lambda: env.status().get("conditions"), what="condition")
        assert n.CONTROLLER_RESIZE_ERROR in [c["type"] for c in conds]
        # Re-queue claim1 (a resizer annotation change does), then claim2 behind it: once claim2
        # is expanded, claim1 has been looked at again; Go would have called the driver again.
        await env.kube.patch(
            PERSISTENT_VOLUME_CLAIMS,
            "claim1",
            {"metadata": {"annotations": {n.RESIZER_ANNOTATION: "x"}}},
            NS,
        )
        await env.request("3Gi", "claim2")
        await poll(
            lambda: env.pv("pv-claim2")["spec"]["capacity"]["storage"] == "3Gi", what="claim2"
        )
        handle = env.handles["claim1"]
        assert (
            len([c for c in env.drv.calls_of("ControllerExpandVolume") if c.volume_id == handle])
            == 1
        )


async def test_offline_driver_waits_for_the_pod_to_go_listing_one_namespace(
    tmp_path: Path,
) -> None:
    kube = FakeKube()
    pod = {
        "metadata": {"name": "app", "namespace": NS},
        "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "claim1"}}]},
        "status": {"phase": "Running"},
    }
    await kube.create(PODS, pod, NS)
    async with resizer(tmp_path, kube=kube, retry_start=0.1, retry_max=0.2) as env:
        env.drv.faults.add(
            "ControllerExpandVolume", code=grpc.StatusCode.FAILED_PRECONDITION, times=1
        )
        await env.claim()
        await env.request("2Gi")
        blocked = await poll(
            lambda: [e for e in env.events(n.VOLUME_RESIZE_FAILED) if "in-use" in e["message"]],
            what="in-use warning",
        )
        assert "only supports offline expansion" in blocked[0]["message"]
        assert len(env.drv.calls_of("ControllerExpandVolume")) == 1
        await kube.delete(PODS, "app", NS)
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="expanded")
        assert len(env.drv.calls_of("ControllerExpandVolume")) == 2
        pod_calls = [act for act in kube.actions if act.resource == "pods"]
        ours = [act for act in pod_calls if act.verb not in ("create", "delete")]
        assert ours and all(act.verb == "list" and act.namespace == NS for act in ours)


async def test_controller_expand_secret_goes_to_the_driver(tmp_path: Path) -> None:
    kube = FakeKube()
    secret = {
        "metadata": {"name": "expand", "namespace": "secrets"},
        "data": {"token": base64.b64encode(b"hunter2").decode()},
    }
    await kube.create(SECRETS, secret, "secrets")
    async with resizer(tmp_path, kube=kube) as env:
        await env.claim(controllerExpandSecretRef={"name": "expand", "namespace": "secrets"})
        await env.request("2Gi")
        await poll(lambda: env.drv.calls_of("ControllerExpandVolume"), what="call")
        assert dict(env.drv.calls_of("ControllerExpandVolume")[0].secrets) == {"token": "hunter2"}
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="expanded")
        assert all("hunter2" not in e["message"] for e in env.events())


async def test_metrics_have_go_names_and_labels(tmp_path: Path) -> None:
    from csi_sidecars.runtime.metrics import render

    async with resizer(tmp_path) as env:
        await env.claim()
        await env.request("2Gi")
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="expanded")
        text = render(env.metrics.registry).decode()
        assert (
            'csi_sidecar_operations_seconds_count{driver_name="resize.csi.test",'
            'grpc_status_code="OK",method_name="/csi.v1.Controller/ControllerExpandVolume"}'
        ) in text
        assert f'workqueue_adds_total{{name="{DRIVER}-pvc"}}' in text
