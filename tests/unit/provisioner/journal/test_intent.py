"""The no-leak intent record: decision table and crash-point simulation."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner.decide.pv import build_pv, check_create_response
from csi_sidecars.provisioner.decide.request import (
    build_create_request,
    plan_provision,
    request_digest,
    request_to_json,
)
from csi_sidecars.provisioner.decide.secrets import SecretRef
from csi_sidecars.provisioner.decide.topology import TopologyRequirement
from csi_sidecars.provisioner.journal import intent as it
from csi_sidecars.provisioner.journal.intent import CleanupAction, IntentAction
from tests.unit.provisioner.objs import DRIVER, UID, options, pvc, sc

S = grpc.StatusCode


def rebuilt(claim: dict[str, Any] | None = None, cls: dict[str, Any] | None = None,
            **kw: Any) -> csi_pb2.CreateVolumeRequest:  # fmt: skip
    claim = claim or pvc()
    plan = plan_provision(claim, cls or sc(), options(**kw))
    return build_create_request(plan, secrets_data={"token": "s3cret"})


def record_of(claim: dict[str, Any] | None = None, **kw: Any) -> it.Intent:
    claim = claim or pvc()
    return it.make_intent(claim, rebuilt(claim, **kw), sc())


def deleting(claim: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(claim)
    out["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return out


def test_record_has_no_secrets_and_roundtrips() -> None:
    record = it.make_intent(pvc(), rebuilt(), sc(), SecretRef("prov", "kube-system"))
    data = it.intent_to_json(record)
    assert "s3cret" not in json.dumps(data)
    back, why = it.intent_from_json(json.loads(json.dumps(data)))
    assert why == "" and back is not None
    assert back.volume_name == f"pvc-{UID}" and back.pvc_uid == UID
    assert back.reclaim_policy == "Delete" and back.storage_class == "fast"
    assert back.digest == request_digest(rebuilt())
    assert back.secret == SecretRef("prov", "kube-system")
    assert back.claim_key == f"{pvc()['metadata']['namespace']}/{pvc()['metadata']['name']}"
    assert back.access_modes == ("ReadWriteOnce",)
    stand_in = back.claim()
    assert stand_in["metadata"]["uid"] == UID and stand_in["spec"]["accessModes"]


def test_unusable_records_are_refused() -> None:
    data = it.intent_to_json(record_of())
    assert it.intent_from_json({**data, "v": 9})[0] is None
    assert it.intent_from_json({**data, "digest": "sha256:0"})[0] is None
    victim = "pvc-ffffffff-0000-0000-0000-000000000000"
    req = rebuilt()
    req.name = victim
    req.ClearField("secrets")
    tampered = {**data, "volumeName": victim, "request": request_to_json(req),
                "digest": request_digest(req)}  # fmt: skip
    assert "not derived from the UID" in it.intent_from_json(tampered)[1]


REC = record_of()
CHANGED = rebuilt(cls=sc(parameters={"type": "gold"}))
NEW_PREFIX = rebuilt(volume_name_prefix="vol")
OTHER_UID = pvc(uid="0badf00d-0000-0000-0000-000000000000")

Row = tuple[
    str, dict[str, Any] | None, it.Intent | None, csi_pb2.CreateVolumeRequest | None, bool,
    IntentAction, str,
]  # fmt: skip
DECIDE: list[Row] = [
    ("live: nothing recorded", pvc(), None, rebuilt(), False, IntentAction.RECORD, "rebuilt"),
    ("live: record current", pvc(), REC, rebuilt(), False, IntentAction.CREATE, "rebuilt"),
    ("live: request changed", pvc(), REC, CHANGED, False, IntentAction.RECORD, "changed"),
    ("live: class missing", pvc(), REC, None, False, IntentAction.NONE, ""),
    ("live: flags changed the name", pvc(), REC, NEW_PREFIX, False, IntentAction.CLEANUP_CREATE,
     "recorded"),
    ("PV saved, record left", pvc(), REC, rebuilt(), True, IntentAction.RELEASE, ""),
    ("PV saved, claim gone", None, REC, None, True, IntentAction.RELEASE, ""),
    ("PV saved, clean", pvc(), None, rebuilt(), True, IntentAction.NONE, ""),
    ("deleting: record", deleting(pvc()), REC, rebuilt(), False, IntentAction.CLEANUP_CREATE,
     "recorded"),
    ("gone: record", None, REC, None, False, IntentAction.CLEANUP_CREATE, "recorded"),
    ("gone: record, flags changed", None, REC, CHANGED, False, IntentAction.CLEANUP_CREATE,
     "recorded"),
    ("same name, new UID: old record", OTHER_UID, REC, rebuilt(OTHER_UID), False,
     IntentAction.CLEANUP_CREATE, "recorded"),
    ("deleting: nothing recorded", deleting(pvc()), None, rebuilt(), False, IntentAction.NONE,
     ""),
    ("gone: nothing recorded", None, None, None, False, IntentAction.NONE, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("claim", "record", "req", "pv_exists", "action", "which"),
    [c[1:] for c in DECIDE],
    ids=[c[0] for c in DECIDE],
)
def test_decide(
    claim: dict[str, Any] | None,
    record: it.Intent | None,
    req: csi_pb2.CreateVolumeRequest | None,
    pv_exists: bool,
    action: IntentAction,
    which: str,
) -> None:
    d = it.decide(claim, record=record, rebuilt=req, pv_exists=pv_exists)
    assert d.action == action, d.reason
    expected = {"rebuilt": rebuilt(), "changed": CHANGED, "recorded": rebuilt()}.get(which)
    if expected is None:
        assert d.request is None
    else:
        assert d.request is not None
        assert request_digest(d.request) == request_digest(expected)


@pytest.mark.parametrize(
    ("deleting_", "volume_id", "code", "policy", "action"),
    [
        (True, "v1", None, "Delete", CleanupAction.DELETE_VOLUME),
        (True, "v1", None, "", CleanupAction.DELETE_VOLUME),
        (True, "v1", None, "Retain", CleanupAction.ADOPT),
        (False, "v1", None, "Retain", CleanupAction.DELETE_VOLUME),
        (True, None, S.DEADLINE_EXCEEDED, "Delete", CleanupAction.RETRY),
        (True, None, S.UNAVAILABLE, "Delete", CleanupAction.RETRY),
        (True, None, S.ABORTED, "Delete", CleanupAction.RETRY),
        (True, None, None, "Delete", CleanupAction.RETRY),
        (True, None, S.INVALID_ARGUMENT, "Delete", CleanupAction.RELEASE),
        (True, None, S.RESOURCE_EXHAUSTED, "Delete", CleanupAction.RELEASE),
        (False, None, S.INTERNAL, "Delete", CleanupAction.RECORD),
        (True, None, S.ALREADY_EXISTS, "Delete", CleanupAction.RELEASE),
        (False, None, S.ALREADY_EXISTS, "Delete", CleanupAction.RECORD),
    ],
)
def test_after_cleanup_create(
    deleting_: bool, volume_id: str | None, code: Any, policy: str, action: CleanupAction
) -> None:
    d = it.after_cleanup_create(
        pvc_deleting=deleting_, volume_id=volume_id, code=code, reclaim_policy=policy,
        volume_name="pvc-1",
    )  # fmt: skip
    assert d.action == action
    if action in (CleanupAction.DELETE_VOLUME, CleanupAction.ADOPT):
        assert d.volume_id == volume_id
    if code == S.ALREADY_EXISTS:
        assert d.event is not None and "pvc-1" in d.event.message


@pytest.mark.parametrize(
    ("deleting_", "code", "action"),
    [
        (True, S.OK, CleanupAction.RELEASE),
        (True, S.NOT_FOUND, CleanupAction.RELEASE),
        (False, S.OK, CleanupAction.RECORD),
        (True, S.INTERNAL, CleanupAction.RETRY),
        (True, None, CleanupAction.RETRY),
    ],
)
def test_after_cleanup_delete(deleting_: bool, code: Any, action: CleanupAction) -> None:
    assert it.after_cleanup_delete(pvc_deleting=deleting_, code=code).action == action


def test_cleanup_reclaim_policy() -> None:
    record = dataclasses.replace(record_of(), reclaim_policy="Retain")
    assert it.cleanup_reclaim_policy(record, sc(reclaimPolicy="Delete")) == "Delete"
    assert it.cleanup_reclaim_policy(record, None) == "Retain"
    assert it.cleanup_reclaim_policy(None, None) == "Delete"


@pytest.mark.parametrize(
    ("name", "expected_name", "ok"),
    [
        (f"pvc-{UID}", "", True),
        (f"anything-{UID}", "", True),
        ("vol-" + UID.replace("-", "")[:8], "", True),
        ("vol-" + UID.replace("-", "")[:4], "", False),
        ("vol-" + UID.replace("-", "")[:4], "vol-" + UID.replace("-", "")[:4], True),
        ("pvc-ffffffff", "", False),
        (UID, "", False),
        ("", "", False),
    ],
)
def test_name_belongs_to_uid(name: str, expected_name: str, ok: bool) -> None:
    assert it.name_belongs_to_uid(name, UID, expected_name) is ok


def test_pinned_requirement() -> None:
    zone = "topology.hostpath.csi/zone"
    sel = {"volume.kubernetes.io/storage-provisioner": DRIVER,
           "volume.kubernetes.io/selected-node": "n1"}  # fmt: skip
    claim = pvc(annotations=sel)
    plan = plan_provision(claim, sc(), options())
    requirement = TopologyRequirement(
        ((("z", "a"),), (("z", "b"),)), ((("z", "a"),), (("z", "b"),))
    )
    req = build_create_request(plan, requirement=requirement)
    record = it.make_intent(claim, req, sc())
    pin = it.pinned_requirement
    assert pin(record, claim, allowed_topologies=None, strict=False) == requirement
    assert pin(record, claim, allowed_topologies=None, strict=True) is None
    only_c = [{"matchLabelExpressions": [{"key": "z", "values": ["c"]}]}]
    assert pin(record, claim, allowed_topologies=only_c, strict=False) is None
    moved = copy.deepcopy(claim)
    moved["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] = "n2"
    assert pin(record, moved, allowed_topologies=None, strict=False) is None
    assert pin(None, claim, allowed_topologies=None, strict=False) is None
    del zone


def test_plan_from_request() -> None:
    plan = it.plan_from_request(rebuilt(cls=sc(parameters={"csi.storage.k8s.io/fstype": "xfs"})))
    assert plan.name == f"pvc-{UID}" and plan.fs_type == "xfs" and not plan.block
    assert plan.required_bytes == 1 << 30


# --- crash-point simulation ---------------------------------------------------------------


class World:
    """API objects (what survives a restart: claim, PV, journal) and the driver's volumes."""

    def __init__(self, policy: str = "Delete") -> None:
        self.sc: dict[str, Any] | None = sc(reclaimPolicy=policy)
        self.pvc: dict[str, Any] | None = pvc()
        self.pv: dict[str, Any] | None = None
        self.journal: dict[str, it.Intent] = {}
        self.volumes: dict[str, str] = {}  # name -> id

    def create_volume(self, req: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        vol_id = self.volumes.setdefault(req.name, f"id-{req.name}")
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(
                volume_id=vol_id, capacity_bytes=req.capacity_range.required_bytes
            )
        )

    def delete_claim(self) -> None:
        assert self.pvc is not None
        self.pvc = None  # no finalizer of ours: the claim is simply gone

    def pv_of(self, pvc_uid: str) -> bool:
        return self.pv is not None and self.pv["spec"]["claimRef"]["uid"] == pvc_uid

    def leaked(self) -> set[str]:
        owned = {self.pv["spec"]["csi"]["volumeHandle"]} if self.pv else set()
        return set(self.volumes.values()) - owned


def executor(world: World) -> Iterator[str]:
    """One provisioner pass, yielding after every externally visible effect."""
    claim = world.pvc
    for record in list(world.journal.values()):  # records of claims that are gone
        if claim is not None and claim["metadata"]["uid"] == record.pvc_uid:
            continue
        d = it.decide(claim, record=record, rebuilt=None, pv_exists=world.pv_of(record.pvc_uid))
        if d.action == IntentAction.CLEANUP_CREATE:
            assert d.request is not None
            resp = world.create_volume(d.request)
            yield "cleanup created"
            c = it.after_cleanup_create(
                pvc_deleting=True, volume_id=resp.volume.volume_id, code=None,
                reclaim_policy=it.cleanup_reclaim_policy(record, world.sc),
                volume_name=d.request.name,
            )  # fmt: skip
            if c.action == CleanupAction.DELETE_VOLUME:
                world.volumes = {k: v for k, v in world.volumes.items() if v != c.volume_id}
                yield "cleanup deleted"
            elif c.action == CleanupAction.ADOPT:
                plan = it.plan_from_request(d.request)
                world.pv = build_pv(plan, record.claim(), world.sc or sc(), resp.volume,
                                    plan.required_bytes, driver=DRIVER, identity="id",
                                    supports_topology=False)  # fmt: skip
                yield "adopted"
        del world.journal[record.pvc_uid]
        yield "dropped"
    if claim is None:
        return
    req = None
    if world.sc is not None:
        plan = plan_provision(claim, world.sc, options())
        req = build_create_request(plan)
    record = world.journal.get(UID)
    d = it.decide(claim, record=record, rebuilt=req, pv_exists=world.pv is not None)
    if d.action == IntentAction.RECORD:
        assert d.request is not None
        world.journal[UID] = it.make_intent(claim, d.request, world.sc)
        yield "recorded"
        d = it.decide(claim, record=world.journal[UID], rebuilt=req, pv_exists=False)
    if d.action == IntentAction.CREATE:
        assert d.request is not None and world.sc is not None
        resp = world.create_volume(d.request)
        yield "created"
        plan = plan_provision(claim, world.sc, options())
        capacity = check_create_response(plan, claim, resp)
        world.pv = build_pv(plan, claim, world.sc, resp.volume, capacity, driver=DRIVER,
                            identity="id", supports_topology=False)  # fmt: skip
        yield "pv saved"
        d = it.decide(claim, record=world.journal.get(UID), rebuilt=req, pv_exists=True)
    if d.action == IntentAction.RELEASE:
        del world.journal[UID]
        yield "dropped"


EFFECTS = ["recorded", "created", "pv saved", "dropped"]


def run(world: World, crash_after: int | None = None) -> list[str]:
    done: list[str] = []
    if crash_after == 0:
        return done
    for effect in executor(world):
        done.append(effect)
        if crash_after is not None and len(done) == crash_after:
            break
    return done


@pytest.mark.parametrize("crash_after", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("delete_claim", [False, True], ids=["claim-kept", "claim-deleted"])
@pytest.mark.parametrize("drop_class", [False, True], ids=["class-kept", "class-deleted"])
@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_no_leak_at_any_crash_point(
    crash_after: int, delete_claim: bool, drop_class: bool, policy: str
) -> None:
    world = World(policy)
    done = run(world, crash_after)  # the provisioner dies after `crash_after` effects
    assert done == EFFECTS[:crash_after]
    if delete_claim and world.pvc is not None:
        world.delete_claim()
    if drop_class:
        world.sc = None
    for _ in range(3):  # restarts: only API objects and the driver survive
        run(world)
    if world.pvc is not None and world.pv is None:
        # not provisioned (class gone): the volume, if any, is still tracked by the record;
        # deleting the claim now must clean it up
        world.delete_claim()
        for _ in range(3):
            run(world)
    assert world.leaked() == set(), (done, world.volumes)
    assert world.journal == {}  # every record is dropped in the end
    if not delete_claim and not drop_class:
        assert world.pvc is not None and world.pv is not None  # a live claim ends provisioned
    if delete_claim and crash_after in (1, 2) and policy == "Retain":
        assert world.pv is not None  # adopted, becomes Released


def test_go_behaviour_would_leak() -> None:
    """Without the record (Go): crash after CreateVolume, claim deleted -> volume leaks."""
    world = World()
    plan = plan_provision(world.pvc or {}, world.sc, options())
    world.create_volume(build_create_request(plan))
    world.pvc = None
    run(world)
    assert world.leaked()


def test_cleanup_secret_failed_names_the_volume_and_the_secret_only() -> None:
    err = ValueError("secret team/creds: key 'pw' is not valid base64-encoded UTF-8")
    event = it.cleanup_secret_failed("pvc-1", err)
    assert (event.type, event.reason) == ("Warning", "ProvisioningCleanupFailed")
    assert event.message == (
        "cannot clean up volume pvc-1: secret team/creds: key 'pw' is not valid base64-encoded "
        "UTF-8; retrying once the secret is fixed"
    )
