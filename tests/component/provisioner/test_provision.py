"""Provisioning through the controller: fake kube, in-process playground driver."""

from __future__ import annotations

from pathlib import Path

import grpc

from csi_sidecars.provisioner import keys
from tests.component.provisioner.harness import DRIVER, IDENTITY, environment, poll


async def test_immediate_claim_gets_its_pv_and_the_intent_is_released(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        pvc = await env.add_claim("data", storage="2Gi")
        await env.start()
        pv = await poll(lambda: env.pv_of(pvc), what="PV")
        uid = pvc["metadata"]["uid"]
        assert pv["metadata"]["name"] == f"pvc-{uid}"
        assert pv["metadata"]["finalizers"] == [keys.PV_FINALIZER]
        assert pv["metadata"]["annotations"][keys.ANN_PROVISIONED_BY] == DRIVER
        assert pv["spec"]["capacity"] == {"storage": "2Gi"}
        assert pv["spec"]["claimRef"]["uid"] == uid
        assert pv["spec"]["csi"]["driver"] == DRIVER
        attrs = pv["spec"]["csi"]["volumeAttributes"]
        assert attrs[keys.PROVISIONER_IDENTITY_KEY] == IDENTITY
        assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        volumes = env.volumes()
        assert [v.name for v in volumes.values()] == [f"pvc-{uid}"]
        assert pv["spec"]["csi"]["volumeHandle"] in volumes

        def released() -> bool:
            cur = env.pvc("data")
            assert cur is not None
            return keys.INTENT_FINALIZER not in (cur["metadata"].get("finalizers") or []) and (
                keys.ANN_CREATE_INTENT not in cur["metadata"]["annotations"]
            )

        await poll(released, what="intent released")
        await env.idle()
        reasons = [e[2] for e in env.events.of("data")]
        assert reasons == ["Provisioning", "ProvisioningSucceeded"]
        assert len(env.driver.calls_of("CreateVolume")) == 1


async def test_driver_failing_then_succeeding(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        env.driver.faults.add(
            "CreateVolume", code=grpc.StatusCode.INTERNAL, message="disk on fire", times=2
        )
        await env.add_class()
        pvc = await env.add_claim("data")
        await env.start()
        await poll(lambda: env.pv_of(pvc), what="PV")
        failed = env.events.of("data", "ProvisioningFailed")
        assert [e[3] for e in failed] == ["rpc error: code = Internal desc = disk on fire"] * 2
        assert len(env.driver.calls_of("CreateVolume")) == 3
