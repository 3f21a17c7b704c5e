"""Provisioning through the controller: fake kube, in-process playground driver."""

from __future__ import annotations

import base64
from pathlib import Path

import grpc

from csi_sidecars.kube.resources import (
    LEASES,
    PERSISTENT_VOLUME_CLAIMS,
    SECRETS,
)
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.journal import journal_name
from tests.component.provisioner.harness import DRIVER, NS, environment, poll


async def test_immediate_claim_gets_its_pv_and_the_record_is_dropped(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        pvc = await env.add_claim("data", storage="2Gi")
        await env.start()
        pv = await poll(lambda: env.pv_of(pvc), what="PV")
        uid = pvc["metadata"]["uid"]
        assert pv["metadata"]["name"] == f"pvc-{uid}"
        assert pv["metadata"]["finalizers"] == [strings.PV_FINALIZER]
        assert pv["metadata"]["annotations"][strings.ANN_PROVISIONED_BY] == DRIVER
        assert pv["spec"]["capacity"] == {"storage": "2Gi"}
        assert pv["spec"]["claimRef"]["uid"] == uid
        assert pv["spec"]["csi"]["driver"] == DRIVER
        attrs = pv["spec"]["csi"]["volumeAttributes"]
        assert attrs[strings.PROVISIONER_IDENTITY_KEY] == env.identity
        assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        volumes = env.volumes()
        assert [v.name for v in volumes.values()] == [f"pvc-{uid}"]
        assert pv["spec"]["csi"]["volumeHandle"] in volumes

        ctrl = env.ctrl
        assert ctrl is not None
        lease = env.kube.peek(LEASES, journal_name(DRIVER), NS)
        assert lease is not None  # the record was written before CreateVolume ...
        await env.idle()
        await poll(lambda: not ctrl.journal.records(), what="record dropped")
        # ... and no PVC write was needed for it.
        assert not env.kube.actions_of("replace", PERSISTENT_VOLUME_CLAIMS)
        current = env.pvc("data")
        assert current is not None
        ours = [f for f in current["metadata"].get("finalizers") or [] if "csi-sidecars" in f]
        assert not ours and not any("csi-sidecars" in a for a in current["metadata"]["annotations"])
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
        await env.flush_events()
        failed = env.events.of("data", "ProvisioningFailed")
        assert [e[3] for e in failed] == ["rpc error: code = Internal desc = disk on fire"] * 2
        assert len(env.driver.calls_of("CreateVolume")) == 3


async def test_resource_exhausted_on_the_selected_node_gives_the_node_back(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        env.driver.faults.add("CreateVolume", code=grpc.StatusCode.RESOURCE_EXHAUSTED, times=1)
        await env.add_class(volumeBindingMode="WaitForFirstConsumer")
        await env.add_claim("late", annotations={strings.ANN_SELECTED_NODE: "node-1"})
        await env.start()

        def node_dropped() -> bool:
            cur = env.pvc("late")
            return (
                cur is not None and strings.ANN_SELECTED_NODE not in cur["metadata"]["annotations"]
            )

        await poll(node_dropped, what="selected-node removed")
        await env.flush_events()
        failed = env.events.of("late", "ProvisioningFailed")
        assert failed[0][3].startswith("rpc error: code = ResourceExhausted")
        request = env.driver.calls_of("CreateVolume")[0]
        assert [dict(t.segments) for t in request.accessibility_requirements.requisite] == [
            {"topology.hostpath.csi/node": "node-1"}
        ]


async def test_invalid_argument_is_retried_slowly(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        rule = env.driver.faults.add("CreateVolume", code=grpc.StatusCode.INVALID_ARGUMENT)
        await env.add_class()
        pvc = await env.add_claim("odd")
        await env.start(retry_max=1.5)  # the slow retry waits --retry-interval-max
        failed = await poll(lambda: env.events.of("odd", "ProvisioningFailed"), what="failure")
        assert failed[0][3] == (
            "Volume provisioning failed with infeasible error. Retries will be delayed. "
            "rpc error: code = InvalidArgument desc = injected fault"
        )
        env.driver.faults.rules.remove(rule)
        await poll(lambda: env.pv_of(pvc), what="PV")
        calls = [c for c in env.driver.calls if c.method == "CreateVolume"]
        assert len(calls) == 2
        assert calls[1].started - calls[0].started >= 1.4


async def test_short_capacity_is_cleaned_up_and_retried(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        env.driver.faults.add("CreateVolume", reply={"volume": {"capacityBytes": "1024"}}, times=1)
        await env.add_class()
        pvc = await env.add_claim("small", storage="1Mi")
        await env.start()
        pv = await poll(lambda: env.pv_of(pvc), what="PV")
        await env.flush_events()
        failed = env.events.of("small", "ProvisioningFailed")
        assert failed[0][3] == "created volume capacity 1024 less than requested capacity 1048576"
        deleted = env.driver.calls_of("DeleteVolume")
        assert len(deleted) == 1
        # The retry created the volume again under the same name; exactly one exists.
        assert list(env.volumes()) == [pv["spec"]["csi"]["volumeHandle"]]


async def test_empty_volume_id_is_an_event_not_a_crash(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        env.driver.faults.add("CreateVolume", reply={"volume": {"volumeId": ""}}, times=1)
        await env.add_class()
        pvc = await env.add_claim("odd")
        await env.start()
        await poll(lambda: env.pv_of(pvc), what="PV")
        await env.flush_events()
        failed = env.events.of("odd", "ProvisioningFailed")
        assert failed[0][3].endswith("succeeded but returned an empty volume_id")


async def test_claim_with_selector_fails_and_unknown_class_waits(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.add_class()
        await env.add_claim("picky", selector={"matchLabels": {"a": "b"}})
        late = await env.add_claim("early", sc="later")
        await env.start()
        failed = await poll(lambda: env.events.of("picky", "ProvisioningFailed"), what="event")
        assert failed[0][3] == "claim Selector is not supported"
        await env.flush_events()
        # Go's sequence: Provisioning before every attempt, then the refusal.
        first = [(e[1], e[2]) for e in env.events.of("picky")][:2]
        assert first == [("Normal", "Provisioning"), ("Warning", "ProvisioningFailed")]
        assert not env.events.of("early")
        await env.add_class("later")
        await poll(lambda: env.pv_of(late), what="PV once the class exists")
        assert not [v for v in env.volumes().values() if v.name.endswith("picky")]


async def test_secrets_reach_create_and_delete(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.kube.create(
            SECRETS,
            {"metadata": {"name": "creds", "namespace": "default"},
             "data": {"user": base64.b64encode(b"admin").decode()}},
        )  # fmt: skip
        await env.add_class(
            parameters={
                "csi.storage.k8s.io/provisioner-secret-name": "creds",
                "csi.storage.k8s.io/provisioner-secret-namespace": "${pvc.namespace}",
            }
        )
        pvc = await env.add_claim("data")
        await env.start()
        await env.bind("data")
        pv = await poll(lambda: env.pv_of(pvc), what="PV")
        assert dict(env.driver.calls_of("CreateVolume")[0].secrets) == {"user": "admin"}
        await env.release(pv["metadata"]["name"])
        await poll(lambda: env.pv_of(pvc) is None, what="PV deleted")
        assert dict(env.driver.calls_of("DeleteVolume")[0].secrets) == {"user": "admin"}
        assert not env.volumes()


async def test_retries_send_the_same_topology_even_when_nodes_change(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        rule = env.driver.faults.add("CreateVolume", code=grpc.StatusCode.UNAVAILABLE)
        await env.add_class()
        pvc = await env.add_claim("data")
        await env.start()
        await env.driver.wait_for_calls("CreateVolume", 1)
        await env.add_node("node-2")
        calls = len(env.driver.calls_of("CreateVolume"))
        await env.driver.wait_for_calls("CreateVolume", calls + 2)
        env.driver.faults.rules.remove(rule)
        await poll(lambda: env.pv_of(pvc), what="PV")
        requests = env.driver.calls_of("CreateVolume")
        assert len({r.SerializeToString(deterministic=True) for r in requests}) == 1
        # A new claim sees both nodes.
        other = await env.add_claim("other")
        await poll(lambda: env.pv_of(other), what="second PV")
        fresh = env.driver.calls_of("CreateVolume")[-1]
        assert len(fresh.accessibility_requirements.requisite) == 2


async def test_malformed_secret_is_an_event_naming_it_not_a_silent_replacement(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        good = base64.b64encode(b"admin").decode()
        await env.kube.create(
            SECRETS,
            {"metadata": {"name": "creds", "namespace": "default"},
             "data": {"user": good, "password": "not base64!"}},
        )  # fmt: skip
        await env.add_class(
            parameters={
                "csi.storage.k8s.io/provisioner-secret-name": "creds",
                "csi.storage.k8s.io/provisioner-secret-namespace": "default",
            }
        )
        pvc = await env.add_claim("data")
        await env.start()
        failed = await poll(lambda: env.events.of("data", "ProvisioningFailed"), what="event")
        message = failed[0][3]
        assert "default/creds" in message and "'password'" in message
        assert "admin" not in message and "not base64" not in message
        assert not env.driver.calls_of("CreateVolume")  # nothing sent with half the secrets
        # Fixed Secret: the back-off retry provisions with the right data.
        secret = env.kube.peek(SECRETS, "creds", "default")
        assert secret is not None
        secret["data"]["password"] = base64.b64encode(b"pw").decode()
        await env.kube.replace(SECRETS, secret, "default")
        await poll(lambda: env.pv_of(pvc), what="PV")
        assert dict(env.driver.calls_of("CreateVolume")[0].secrets) == {
            "user": "admin",
            "password": "pw",
        }
