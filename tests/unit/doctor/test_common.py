"""Shared pieces: Lease states, the journal format, events, pods; doctor's strings vs the roles'."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.attacher import names as attacher_names
from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.doctor import names
from csi_sidecars.doctor.common import events_about, pods_using_claim
from csi_sidecars.doctor.leases import (
    ABSENT,
    FRESH,
    RELEASED,
    STALE,
    UNREADABLE,
    journal_evidence,
    journal_records,
    lease_state,
)
from csi_sidecars.kube.leaderelection import sanitize_name
from csi_sidecars.provisioner.command import lock_name
from csi_sidecars.provisioner.decide import strings as keys
from csi_sidecars.provisioner.decide.request import request_digest
from csi_sidecars.provisioner.journal import Intent, encode_records, journal_name
from tests.unit.doctor import objs
from tests.unit.doctor.objs import DRIVER, NS, snapshot


@pytest.mark.parametrize(
    ("leases", "state", "holder"),
    [
        ([objs.provisioner_lease(ago=3)], FRESH, "csi-0"),
        ([objs.provisioner_lease(ago=19)], FRESH, "csi-0"),  # within duration + skew
        ([objs.provisioner_lease(ago=25)], STALE, "csi-0"),
        ([objs.provisioner_lease(ago=5, holder="")], RELEASED, ""),
        ([], ABSENT, ""),
        ([objs.lease("unrelated")], ABSENT, ""),
        # Two deployments: the live one wins.
        (
            [
                objs.lease("hostpath-csi-k8s-io", ago=600, holder="old", namespace="a"),
                objs.lease("hostpath-csi-k8s-io", ago=1, holder="new", namespace="b"),
            ],
            FRESH,
            "new",
        ),
    ],
)
def test_lease_state(leases: list[dict[str, object]], state: str, holder: str) -> None:
    found = lease_state(snapshot(leases=leases), names.PROVISIONER, DRIVER)
    assert (found.state, found.holder) == (state, holder)


def test_lease_unreadable() -> None:
    snap = snapshot(unavailable={"Lease": "forbidden: no"})
    found = lease_state(snap, names.ATTACHER, DRIVER)
    assert found.state == UNREADABLE
    assert "forbidden" in found.evidence().message


def test_lease_evidence_says_what_cannot_be_seen() -> None:
    found = lease_state(snapshot(leases=[]), names.ATTACHER, DRIVER)
    assert found.evidence().message == (
        'no Lease "external-attacher-leader-hostpath-csi-k8s-io" found in any namespace; a '
        "sidecar without --leader-election cannot be seen"
    )


@pytest.mark.parametrize("driver", [DRIVER, "example.com/disk", "ebs.csi.aws.com", "a_b"])
def test_lease_and_finalizer_names_match_the_roles(driver: str) -> None:
    assert names.lease_name(names.PROVISIONER, driver) == sanitize_name(
        lock_name(DriverInfo(name=driver))
    )
    assert names.lease_name(names.ATTACHER, driver) == attacher_names.lease_name(driver)
    assert names.attacher_finalizer(driver) == attacher_names.finalizer_name(driver)
    assert names.journal_name(driver) == journal_name(driver)
    assert names.journal_name(driver, "Node_1.example") == journal_name(driver, "Node_1.example")


def test_go_lease_names_of_the_other_sidecars() -> None:
    # From the Go sources: external-snapshotter "external-snapshotter-leader-<driver>",
    # external-resizer "external-resizer-<driver>", snapshot-controller a fixed name.
    assert names.lease_name(names.SNAPSHOTTER, "a.b/c") == "external-snapshotter-leader-a-b-c"
    assert names.lease_name(names.RESIZER, "a.b") == "external-resizer-a-b"
    assert names.lease_name(names.SNAPSHOT_CONTROLLER, "x") == "snapshot-controller-leader"


def test_strings_match_the_provisioner() -> None:
    assert names.PROVISIONER_PV_FINALIZER == keys.PV_FINALIZER
    assert names.CLONE_SOURCE_FINALIZER == keys.CLONE_SOURCE_FINALIZER
    assert names.PROVISIONER_SNAPSHOT_SOURCE == keys.SNAPSHOT_SOURCE_FINALIZER
    assert names.ANN_JOURNAL == keys.ANN_JOURNAL
    assert names.ANN_SELECTED_NODE == keys.ANN_SELECTED_NODE
    assert names.ANN_STORAGE_PROVISIONER == keys.ANN_STORAGE_PROVISIONER
    assert names.ANN_PROVISIONED_BY == keys.ANN_PROVISIONED_BY


def test_every_known_finalizer_has_an_owner() -> None:
    for fin in (
        names.PVC_PROTECTION,
        names.PV_PROTECTION,
        names.PROVISIONER_PV_FINALIZER,
        names.CLONE_SOURCE_FINALIZER,
        names.PROVISIONER_SNAPSHOT_SOURCE,
        names.SNAPSHOT_AS_SOURCE,
        names.SNAPSHOT_BOUND,
        names.SNAPSHOT_IN_GROUP,
        names.CONTENT_BOUND,
        names.PVC_AS_SNAPSHOT_SOURCE,
        names.attacher_finalizer(DRIVER),
    ):
        owner = names.finalizer_owner(fin)
        assert owner is not None and owner.component in names.COMPONENT_TITLES, fin
    assert names.finalizer_owner("example.com/x") is None


def test_journal_written_by_the_provisioner_is_read() -> None:
    request = csi_pb2.CreateVolumeRequest(name="pvc-u1")
    record = Intent(
        volume_name="pvc-u1",
        pvc_uid="u1",
        selected_node="node-1",
        storage_class="fast",
        reclaim_policy="Delete",
        digest=request_digest(request),
        request=request,
        namespace=NS,
        claim_name="data",
    )
    value = encode_records({"u1": record})
    lease = objs.lease(journal_name(DRIVER), holder="", annotations={keys.ANN_JOURNAL: value})
    where, records, problem = journal_records(snapshot(leases=[lease]), DRIVER)
    assert where == f"kube-system/{journal_name(DRIVER)}"
    assert problem == ""
    assert [(r["uid"], r["volumeName"], r["name"]) for r in records] == [("u1", "pvc-u1", "data")]


def _record(uid: str, node: str) -> Intent:
    request = csi_pb2.CreateVolumeRequest(name=f"pvc-{uid}")
    return Intent(
        volume_name=f"pvc-{uid}",
        pvc_uid=uid,
        selected_node=node,
        storage_class="fast",
        reclaim_policy="Delete",
        digest=request_digest(request),
        request=request,
        namespace=NS,
        claim_name="data",
    )


def _claim(uid: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    claim = objs.pvc("data", annotations=annotations)
    claim["metadata"]["uid"] = uid
    return claim


def test_node_deployment_journals_are_read() -> None:
    # --node-deployment: each node's provisioner keeps <driver>-<node>-provisioner-journal.
    on_two = objs.lease(
        journal_name(DRIVER, "node-2"),
        holder="",
        annotations={keys.ANN_JOURNAL: encode_records({"u2": _record("u2", "node-2")})},
    )
    on_one = objs.lease(
        journal_name(DRIVER, "node-1"),
        holder="",
        annotations={keys.ANN_JOURNAL: encode_records({"u9": _record("u9", "node-1")})},
    )
    snap = snapshot(leases=[on_one, on_two], nodes=[objs.node("node-1"), objs.node("node-2")])
    found = journal_evidence(snap, DRIVER, _claim("u2"))
    assert f"kube-system/{journal_name(DRIVER, 'node-2')} records a CreateVolume" in found.message
    other = journal_evidence(snap, DRIVER, _claim("u3"))
    assert other.message == "2 journals has no record for this claim (2 records in flight)"


def test_journal_of_a_selected_node_without_node_object() -> None:
    lease = objs.lease(
        journal_name(DRIVER, "gone"),
        holder="",
        annotations={keys.ANN_JOURNAL: encode_records({"u4": _record("u4", "gone")})},
    )
    found = journal_evidence(
        snapshot(leases=[lease]), DRIVER, _claim("u4", {names.ANN_SELECTED_NODE: "gone"})
    )
    assert "records a CreateVolume in flight for volume pvc-u4 (selected node gone)" in (
        found.message
    )


def test_unreadable_journal_is_reported() -> None:
    lease = objs.lease(journal_name(DRIVER), holder="", annotations={keys.ANN_JOURNAL: "%%%"})
    _, records, problem = journal_records(snapshot(leases=[lease]), DRIVER)
    assert records == []
    assert "not readable" in problem


def test_events_newest_first_and_uid_filtered() -> None:
    old = objs.event("PersistentVolumeClaim", "data", "A", "old", NS, ago=50)
    new = objs.event("PersistentVolumeClaim", "data", "B", "new", NS, ago=1)
    other = objs.event("PersistentVolumeClaim", "data", "C", "earlier claim", NS, ago=2)
    other["involvedObject"]["uid"] = "uid-previous"
    elsewhere = objs.event("PersistentVolumeClaim", "data", "D", "other ns", "other", ago=1)
    found = events_about(
        snapshot(events=[old, new, other, elsewhere]),
        "PersistentVolumeClaim",
        "data",
        NS,
        "uid-data",
    )
    assert [e["reason"] for e in found] == ["B", "A"]


def test_pods_using_claim_direct_and_ephemeral() -> None:
    direct = objs.pod("web", ["data"])
    ephemeral = objs.pod("job", [])
    ephemeral["spec"]["volumes"] = [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}]
    done = objs.pod("old", ["data"])
    done["status"]["phase"] = "Succeeded"
    snap = snapshot(pods=[direct, ephemeral, done])
    assert [p["metadata"]["name"] for p in pods_using_claim(snap, NS, "data")] == ["web"]
    assert [p["metadata"]["name"] for p in pods_using_claim(snap, NS, "job-scratch")] == ["job"]
