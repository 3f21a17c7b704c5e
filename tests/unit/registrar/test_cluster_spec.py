"""The desired CSIDriver, the diff against a live object and the plan: pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.registrar.cluster_spec import DiffKind, DriverInfo, SpecOptions, Step

NAME = "hostpath.csi.k8s.io"
ATTACH = DriverInfo(NAME, controller_service=True, publish_unpublish=True)
NO_PUBLISH = DriverInfo(NAME, controller_service=True, publish_unpublish=False)
NO_CONTROLLER = DriverInfo(NAME)


@pytest.mark.parametrize(
    ("info", "override", "want"),
    [
        (ATTACH, None, True),
        (NO_PUBLISH, None, False),
        (NO_CONTROLLER, None, False),
        # PUBLISH_UNPUBLISH without CONTROLLER_SERVICE cannot be trusted.
        (DriverInfo(NAME, controller_service=False, publish_unpublish=True), None, False),
        (ATTACH, False, False),
        (NO_CONTROLLER, True, True),
    ],
)
def test_attach_required(info: DriverInfo, override: bool | None, want: bool) -> None:
    assert cs.attach_required(info, override) is want


def test_minimal_object_matches_the_retired_registrar() -> None:
    obj = cs.build_csidriver(ATTACH, SpecOptions())
    assert obj == {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": NAME, "labels": {cs.MANAGED_BY_LABEL: cs.MANAGED_BY}},
        "spec": {"attachRequired": True, "podInfoOnMount": False},
    }


def test_every_flag_lands_in_its_spec_field() -> None:
    opts = SpecOptions(
        attach_required=False,
        pod_info_on_mount=True,
        volume_lifecycle_modes=("Persistent", "Ephemeral"),
        storage_capacity=True,
        fs_group_policy="File",
        token_requests=(cs.TokenRequest("vault", 3600), cs.TokenRequest("")),
        requires_republish=True,
        selinux_mount=True,
        node_allocatable_update_period_seconds=60,
        service_account_token_in_secrets=True,
        prevent_pod_scheduling_if_missing=True,
        labels={"team": "storage"},
    )
    obj = cs.build_csidriver(ATTACH, opts)
    assert obj["spec"] == {
        "attachRequired": False,
        "podInfoOnMount": True,
        "volumeLifecycleModes": ["Persistent", "Ephemeral"],
        "storageCapacity": True,
        "fsGroupPolicy": "File",
        "tokenRequests": [{"audience": "vault", "expirationSeconds": 3600}, {"audience": ""}],
        "requiresRepublish": True,
        "seLinuxMount": True,
        "nodeAllocatableUpdatePeriodSeconds": 60,
        "serviceAccountTokenInSecrets": True,
        "preventPodSchedulingIfMissing": True,
    }
    assert set(obj["spec"]) == set(cs.SPEC_FIELDS)
    assert obj["metadata"]["labels"] == {cs.MANAGED_BY_LABEL: cs.MANAGED_BY, "team": "storage"}


def test_false_flags_are_managed_not_dropped() -> None:
    spec = cs.build_spec(ATTACH, SpecOptions(storage_capacity=False, selinux_mount=False))
    assert spec["storageCapacity"] is False
    assert spec["seLinuxMount"] is False
    assert "requiresRepublish" not in spec


@pytest.mark.parametrize(
    ("opts", "fragment"),
    [
        (SpecOptions(volume_lifecycle_modes=("Persistent", "Inline")), "unknown mode 'Inline'"),
        (SpecOptions(fs_group_policy="Always"), "unknown policy 'Always'"),
        (
            SpecOptions(token_requests=(cs.TokenRequest("a"), cs.TokenRequest("a", 3600))),
            "audiences must be distinct",
        ),
        (SpecOptions(token_requests=(cs.TokenRequest("a", 60),)), "between 600s"),
        (SpecOptions(node_allocatable_update_period_seconds=5), "at least 10s"),
        (SpecOptions(service_account_token_in_secrets=True), "needs at least one"),
    ],
)
def test_invalid_options(opts: SpecOptions, fragment: str) -> None:
    errors = cs.validate_options(opts)
    assert len(errors) == 1
    assert fragment in errors[0]


def test_valid_options() -> None:
    opts = SpecOptions(
        volume_lifecycle_modes=("Ephemeral",),
        fs_group_policy="None",
        token_requests=(cs.TokenRequest("", 600),),
        service_account_token_in_secrets=True,
        node_allocatable_update_period_seconds=10,
    )
    assert cs.validate_options(opts) == []


def _live(spec: dict[str, Any], labels: dict[str, str] | None = None, **meta: Any) -> Any:
    labels = {cs.MANAGED_BY_LABEL: cs.MANAGED_BY} if labels is None else labels
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIDriver",
        "metadata": {"name": NAME, "uid": "u1", "labels": labels, **meta},
        "spec": spec,
    }


# The live spec as the API server defaults it for an object created with only attachRequired.
SERVER_DEFAULTED = {
    "attachRequired": True,
    "podInfoOnMount": False,
    "volumeLifecycleModes": ["Persistent"],
    "storageCapacity": False,
    "fsGroupPolicy": "ReadWriteOnceWithFSType",
    "requiresRepublish": False,
    "seLinuxMount": False,
}

FULL = SpecOptions(
    pod_info_on_mount=True,
    volume_lifecycle_modes=("Persistent", "Ephemeral"),
    fs_group_policy="File",
    token_requests=(cs.TokenRequest("a", 3600), cs.TokenRequest("b")),
)


@pytest.mark.parametrize(
    ("opts", "live", "kind", "paths"),
    [
        (SpecOptions(), None, DiffKind.MISSING, []),
        (SpecOptions(), _live(SERVER_DEFAULTED), DiffKind.IN_SYNC, []),
        # Absent fields equal their API default.
        (SpecOptions(), _live({}), DiffKind.IN_SYNC, []),
        (SpecOptions(volume_lifecycle_modes=("Persistent",)), _live({}), DiffKind.IN_SYNC, []),
        (SpecOptions(fs_group_policy="ReadWriteOnceWithFSType"), _live({}), DiffKind.IN_SYNC, []),
        # Unmanaged fields never count as drift.
        (
            SpecOptions(),
            _live({**SERVER_DEFAULTED, "storageCapacity": True, "fsGroupPolicy": "None"}),
            DiffKind.IN_SYNC,
            [],
        ),
        # Sets compare without order.
        (
            FULL,
            _live(
                {
                    **SERVER_DEFAULTED,
                    "podInfoOnMount": True,
                    "volumeLifecycleModes": ["Ephemeral", "Persistent"],
                    "fsGroupPolicy": "File",
                    "tokenRequests": [
                        {"audience": "b"},
                        {"audience": "a", "expirationSeconds": 3600},
                    ],
                }
            ),
            DiffKind.IN_SYNC,
            [],
        ),
        (
            SpecOptions(pod_info_on_mount=True),
            _live(SERVER_DEFAULTED),
            DiffKind.DRIFT,
            ["spec.podInfoOnMount"],
        ),
        (
            FULL,
            _live({**SERVER_DEFAULTED, "volumeLifecycleModes": ["Persistent", "Ephemeral"]}),
            DiffKind.DRIFT,
            ["spec.podInfoOnMount", "spec.fsGroupPolicy", "spec.tokenRequests"],
        ),
        (
            SpecOptions(),
            _live(SERVER_DEFAULTED, labels={}),
            DiffKind.DRIFT,
            [f"metadata.labels[{cs.MANAGED_BY_LABEL}]"],
        ),
        (
            SpecOptions(),
            _live({**SERVER_DEFAULTED, "attachRequired": False}),
            DiffKind.CONFLICT,
            ["spec.attachRequired"],
        ),
        (
            SpecOptions(pod_info_on_mount=True, volume_lifecycle_modes=("Ephemeral",)),
            _live(SERVER_DEFAULTED),
            DiffKind.CONFLICT,
            ["spec.podInfoOnMount", "spec.volumeLifecycleModes"],
        ),
        (
            SpecOptions(),
            _live({}, deletionTimestamp="2026-01-01T00:00:00Z"),
            DiffKind.TERMINATING,
            [],
        ),
    ],
)
def test_diff(opts: SpecOptions, live: Any, kind: DiffKind, paths: list[str]) -> None:
    desired = cs.build_csidriver(ATTACH, opts)
    diff = cs.diff_csidriver(desired, live)
    assert diff.kind is kind
    assert [f.path for f in diff.fields] == paths


def test_conflict_lists_only_immutable_fields_and_values() -> None:
    desired = cs.build_csidriver(
        ATTACH, SpecOptions(pod_info_on_mount=True, volume_lifecycle_modes=("Ephemeral",))
    )
    diff = cs.diff_csidriver(desired, _live({"attachRequired": False}))
    assert [f.path for f in diff.conflicts] == ["spec.attachRequired", "spec.volumeLifecycleModes"]
    assert [f.path for f in diff.drift] == ["spec.podInfoOnMount"]
    assert diff.describe(conflicts_only=True) == (
        "spec.attachRequired (have false, want true), "
        "spec.volumeLifecycleModes (have unset, want [Ephemeral])"
    )


def test_ignored_fields_are_not_compared() -> None:
    desired = cs.build_csidriver(ATTACH, SpecOptions(selinux_mount=True))
    live = _live(SERVER_DEFAULTED)
    assert cs.diff_csidriver(desired, live).kind is DiffKind.DRIFT
    assert cs.diff_csidriver(desired, live, ignore={"seLinuxMount"}).kind is DiffKind.IN_SYNC


def test_dropped_fields() -> None:
    desired = cs.build_csidriver(
        ATTACH, SpecOptions(selinux_mount=True, prevent_pod_scheduling_if_missing=False)
    )
    # The server kept seLinuxMount=false only by default: it dropped our true.
    applied = _live({**SERVER_DEFAULTED}, labels={})
    assert cs.dropped_fields(desired, applied) == ["seLinuxMount"]
    assert cs.dropped_fields(desired, _live({**SERVER_DEFAULTED, "seLinuxMount": True})) == []


@pytest.mark.parametrize(
    ("kind", "allow_recreate", "step", "reason"),
    [
        (DiffKind.IN_SYNC, False, Step.NOTHING, None),
        (DiffKind.MISSING, False, Step.APPLY, cs.REASON_CREATED),
        (DiffKind.DRIFT, False, Step.APPLY, cs.REASON_DRIFT),
        (DiffKind.DRIFT, True, Step.APPLY, cs.REASON_DRIFT),
        (DiffKind.CONFLICT, False, Step.REFUSE, cs.REASON_CONFLICT),
        (DiffKind.CONFLICT, True, Step.RECREATE, cs.REASON_RECREATED),
        (DiffKind.TERMINATING, True, Step.WAIT, None),
    ],
)
def test_plan(kind: DiffKind, allow_recreate: bool, step: Step, reason: str | None) -> None:
    fields: tuple[cs.FieldDiff, ...] = ()
    if kind in (DiffKind.DRIFT, DiffKind.CONFLICT):
        fields = (cs.FieldDiff("spec.x", 1, 2, kind is DiffKind.CONFLICT),)
    decision = cs.plan(NAME, cs.Diff(kind, fields), allow_recreate)
    assert decision.step is step
    assert (decision.event.reason if decision.event else None) == reason


def test_refusal_message_says_what_differs_and_how_to_fix_it() -> None:
    diff = cs.Diff(DiffKind.CONFLICT, (cs.FieldDiff("spec.attachRequired", True, False, True),))
    decision = cs.plan(NAME, diff, allow_recreate=False)
    assert decision.event is not None
    assert decision.event.type == "Warning"
    assert "spec.attachRequired (have false, want true)" in decision.event.message
    assert "--allow-recreate" in decision.event.message
    assert NAME in decision.event.message
