"""Modification end to end: classes through ControllerModifyVolume on the playground driver."""

from __future__ import annotations

from pathlib import Path

import grpc

from csi_sidecars.resizer import names as n
from tests.component.resizer.harness import GIB, poll, resizer


def params(env: object, claim: str = "claim1") -> dict[str, str]:
    drv = env.drv  # type: ignore[attr-defined]
    handle = env.handles[claim]  # type: ignore[attr-defined]
    return dict(drv.state.data.volumes[handle].mutable_parameters)


async def test_class_change_goes_to_the_driver_and_both_objects(tmp_path: Path) -> None:
    async with resizer(tmp_path) as env:
        await env.vac("gold", iops="3000", throughput="200")
        await env.claim()
        await env.set_class("gold")
        st = await poll(
            lambda: (s := env.status()).get("currentVolumeAttributesClassName") == "gold" and s,
            what="current class",
        )
        assert "modifyVolumeStatus" not in st and st.get("conditions") == []
        assert env.pv()["spec"]["volumeAttributesClassName"] == "gold"
        assert params(env) == {"iops": "3000", "throughput": "200"}
        await poll(lambda: n.VOLUME_MODIFY_SUCCESS in env.reasons(), what="event")
        assert env.reasons() == [n.VOLUME_MODIFY, n.VOLUME_MODIFY_SUCCESS]


async def test_infeasible_class_then_rollback(tmp_path: Path) -> None:
    async with resizer(tmp_path, retry_max=30.0) as env:
        await env.vac("gold", iops="3000")
        await env.vac("bad", color="red")  # not an accepted mutable parameter
        await env.claim(vac="gold")
        await env.set_class("bad")
        st = await poll(
            lambda: (
                (s := env.status()).get("modifyVolumeStatus", {}).get("status")
                == n.MODIFY_INFEASIBLE
                and s
            ),
            what="infeasible",
        )
        assert st["modifyVolumeStatus"]["targetVolumeAttributesClassName"] == "bad"
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds[n.MODIFY_VOLUME_ERROR]["reason"] == "InvalidArgument"
        assert (
            conds[n.MODIFYING_VOLUME]["message"]
            == 'Modifying volume to "bad" failed. Waiting for retry.'
        )
        assert st["currentVolumeAttributesClassName"] == "gold"
        calls = len(env.drv.calls_of("ControllerModifyVolume"))
        await env.set_class("gold")  # roll back to the current class
        st = await poll(
            lambda: "modifyVolumeStatus" not in (s := env.status()) and s, what="rolled back"
        )
        assert st["currentVolumeAttributesClassName"] == "gold"
        assert st.get("conditions") == []
        assert len(env.drv.calls_of("ControllerModifyVolume")) == calls + 1
        assert env.pv()["spec"]["volumeAttributesClassName"] == "gold"


async def test_rollback_to_no_class_cancels(tmp_path: Path) -> None:
    async with resizer(tmp_path, retry_max=30.0) as env:
        await env.vac("bad", color="red")
        await env.claim()
        await env.set_class("bad")
        await poll(
            lambda: env.status().get("modifyVolumeStatus", {}).get("status") == n.MODIFY_INFEASIBLE,
            what="infeasible",
        )
        await env.set_class(None)
        await poll(lambda: n.VOLUME_MODIFY_CANCELLED in env.reasons(), what="cancelled event")
        st = env.status()
        assert n.MODIFYING_VOLUME not in [c["type"] for c in st.get("conditions", [])]


async def test_missing_class_is_pending_until_it_is_created(tmp_path: Path) -> None:
    async with resizer(tmp_path, retry_start=30.0, retry_max=60.0) as env:
        await env.claim()
        await env.set_class("later")
        await poll(
            lambda: env.status().get("modifyVolumeStatus") == {"status": n.MODIFY_PENDING},
            what="pending",
        )
        warning = env.events(n.VOLUME_MODIFY_FAILED)[0]
        assert warning["message"] == 'VAC "later" does not exist.'
        await env.vac("later", iops="10")  # no resync, no back-off: the class re-queues the claim
        await poll(
            lambda: env.status().get("currentVolumeAttributesClassName") == "later", what="applied"
        )
        assert params(env) == {"iops": "10"}


async def test_modifications_of_one_claim_are_serialised(tmp_path: Path) -> None:
    async with resizer(tmp_path, timeout=0.3, retry_start=0.1) as env:
        await env.vac("gold", iops="3000")
        await env.vac("silver", iops="1000")
        env.drv.faults.add("ControllerModifyVolume", delay=1.0, times=1)
        await env.claim()
        await env.set_class("gold")
        await poll(
            lambda: any(
                c["type"] == n.MODIFY_VOLUME_ERROR and c["reason"] == "DeadlineExceeded"
                for c in env.status().get("conditions", [])
            ),
            what="timeout recorded",
        )
        await env.set_class("silver")  # while gold is uncertain
        await poll(
            lambda: env.status().get("currentVolumeAttributesClassName") == "silver", what="silver"
        )
        sent = [dict(r.mutable_parameters) for r in env.drv.calls_of("ControllerModifyVolume")]
        assert sent[0] == {"iops": "3000"}
        first_silver = sent.index({"iops": "1000"})
        assert sent[1:first_silver] and all(p == {"iops": "3000"} for p in sent[:first_silver])
        assert params(env) == {"iops": "1000"}
        assert env.pv()["spec"]["volumeAttributesClassName"] == "silver"


async def test_unimplemented_modification_is_not_retried(tmp_path: Path) -> None:
    async with resizer(tmp_path) as env:
        await env.vac("gold", iops="3000")
        env.drv.faults.add("ControllerModifyVolume", code=grpc.StatusCode.UNIMPLEMENTED)
        await env.claim()
        await env.set_class("gold")
        await poll(lambda: env.events(n.VOLUME_MODIFY_FAILED), what="warning")
        # An expansion of the same claim runs the claim's sync again: no second modify call.
        await env.request("2Gi")
        await poll(lambda: env.pv()["spec"]["capacity"]["storage"] == "2Gi", what="expanded")
        assert len(env.drv.calls_of("ControllerModifyVolume")) == 1
        assert env.capacity() == 2 * GIB


async def test_expansion_and_modification_of_one_claim(tmp_path: Path) -> None:
    async with resizer(tmp_path) as env:
        await env.vac("gold", iops="3000")
        await env.claim()
        await env.request("2Gi")
        await env.set_class("gold")
        await poll(
            lambda: (
                env.status().get("currentVolumeAttributesClassName") == "gold"
                and env.pv()["spec"]["capacity"]["storage"] == "2Gi"
            ),
            what="both",
        )
        assert params(env) == {"iops": "3000"} and env.capacity() == 2 * GIB


async def test_infeasible_modification_is_tried_again_after_the_hold(tmp_path: Path) -> None:
    async with resizer(tmp_path, retry_max=0.5) as env:
        await env.vac("gold", iops="3000")
        env.drv.faults.add("ControllerModifyVolume", code=grpc.StatusCode.INVALID_ARGUMENT, times=1)
        await env.claim()
        await env.set_class("gold")
        await poll(
            lambda: env.status().get("modifyVolumeStatus", {}).get("status") == n.MODIFY_INFEASIBLE,
            what="infeasible",
        )
        await poll(
            lambda: env.status().get("currentVolumeAttributesClassName") == "gold",
            what="retried after --retry-interval-max",
        )
        assert len(env.drv.calls_of("ControllerModifyVolume")) == 2
