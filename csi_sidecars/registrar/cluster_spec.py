"""The CSIDriver the cluster-driver-registrar wants, and how a live object differs from it.

Everything here is pure. :func:`build_csidriver` turns what the driver said (name and
capabilities, :class:`DriverInfo`) and the flags (:class:`SpecOptions`) into the
``storage.k8s.io/v1`` CSIDriver to apply. :func:`diff_csidriver` compares it with the object in
the cluster field by field, knowing each field's API default (an absent field equals its default)
and whether it is immutable. :func:`plan` turns that diff into one step: nothing, apply, refuse,
or delete-and-recreate (only when allowed).

Which fields the registrar manages: ``attachRequired`` (derived from the capabilities unless a flag
overrides it) and ``podInfoOnMount`` (the retired registrar's ``--pod-info-mount``, default false)
always; every other spec field only when its flag is given. A field that is not managed is left to
whoever else sets it and is never reported as drift.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.kube.objects import Event
from csi_sidecars.kube.resources import JsonDict

API_VERSION = "storage.k8s.io/v1"
KIND = "CSIDriver"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "csi-sidecars-cluster-driver-registrar"

LIFECYCLE_MODES = ("Persistent", "Ephemeral")
FS_GROUP_POLICIES = ("ReadWriteOnceWithFSType", "File", "None")
MIN_TOKEN_EXPIRATION = 600
MAX_TOKEN_EXPIRATION = 2**32
MIN_NODE_ALLOCATABLE_UPDATE_PERIOD = 10

# Event reasons.
REASON_CREATED = "CSIDriverCreated"
REASON_DRIFT = "DriftCorrected"
REASON_CONFLICT = "ImmutableFieldConflict"
REASON_RECREATED = "CSIDriverRecreated"
REASON_APPLY_FAILED = "ApplyFailed"


@dataclass(frozen=True, slots=True)
class SpecField:
    """One ``CSIDriverSpec`` field: its API default (for an absent value) and mutability."""

    name: str
    immutable: bool
    default: Any
    feature_gate: str = ""


#: Every current ``storage.k8s.io/v1`` CSIDriverSpec field, in proto order.
SPEC_FIELDS: dict[str, SpecField] = {
    f.name: f
    for f in (
        SpecField("attachRequired", True, True),
        SpecField("podInfoOnMount", False, False),
        SpecField("volumeLifecycleModes", True, ("Persistent",)),
        SpecField("storageCapacity", False, False),
        SpecField("fsGroupPolicy", False, "ReadWriteOnceWithFSType"),
        SpecField("tokenRequests", False, ()),
        SpecField("requiresRepublish", False, False),
        SpecField("seLinuxMount", False, False, "SELinuxMountReadWriteOncePod"),
        SpecField(
            "nodeAllocatableUpdatePeriodSeconds", False, None, "MutableCSINodeAllocatableCount"
        ),
        SpecField("serviceAccountTokenInSecrets", False, False, "CSIServiceAccountTokenSecrets"),
        SpecField("preventPodSchedulingIfMissing", False, False, "VolumeLimitScaling"),
    )
}


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What the CSI driver reported at start-up."""

    name: str
    controller_service: bool = False
    publish_unpublish: bool = False
    get_capacity: bool = False


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One ``tokenRequests`` entry: a service account token audience and its lifetime."""

    audience: str
    expiration_seconds: int | None = None

    def to_json(self) -> JsonDict:
        """The API form."""
        out: JsonDict = {"audience": self.audience}
        if self.expiration_seconds is not None:
            out["expirationSeconds"] = self.expiration_seconds
        return out


@dataclass(frozen=True, slots=True)
class SpecOptions:
    """The CSIDriver-related flags. None means "not managed" (the flag was not given)."""

    attach_required: bool | None = None
    pod_info_on_mount: bool = False
    volume_lifecycle_modes: tuple[str, ...] | None = None
    storage_capacity: bool | None = None
    fs_group_policy: str | None = None
    token_requests: tuple[TokenRequest, ...] | None = None
    requires_republish: bool | None = None
    selinux_mount: bool | None = None
    node_allocatable_update_period_seconds: int | None = None
    service_account_token_in_secrets: bool | None = None
    prevent_pod_scheduling_if_missing: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def validate_options(opts: SpecOptions) -> list[str]:
    """Check the flags the way API validation would; return the problems (empty when fine)."""
    errors: list[str] = []
    for mode in opts.volume_lifecycle_modes or ():
        if mode not in LIFECYCLE_MODES:
            errors.append(
                f"--volume-lifecycle-modes: unknown mode {mode!r} "
                f"(use {', '.join(LIFECYCLE_MODES)})"
            )
    if opts.fs_group_policy is not None and opts.fs_group_policy not in FS_GROUP_POLICIES:
        errors.append(
            f"--fs-group-policy: unknown policy {opts.fs_group_policy!r} "
            f"(use {', '.join(FS_GROUP_POLICIES)})"
        )
    audiences = [t.audience for t in opts.token_requests or ()]
    if len(set(audiences)) != len(audiences):
        errors.append("--token-request: audiences must be distinct")
    for tr in opts.token_requests or ():
        exp = tr.expiration_seconds
        if exp is not None and not MIN_TOKEN_EXPIRATION <= exp <= MAX_TOKEN_EXPIRATION:
            errors.append(
                f"--token-request: expiration of audience {tr.audience!r} must be between "
                f"{MIN_TOKEN_EXPIRATION}s and {MAX_TOKEN_EXPIRATION}s"
            )
    period = opts.node_allocatable_update_period_seconds
    if period is not None and period < MIN_NODE_ALLOCATABLE_UPDATE_PERIOD:
        errors.append(
            f"--node-allocatable-update-period must be at least "
            f"{MIN_NODE_ALLOCATABLE_UPDATE_PERIOD}s"
        )
    if opts.service_account_token_in_secrets and not opts.token_requests:
        errors.append("--service-account-token-in-secrets needs at least one --token-request")
    return errors


def attach_required(info: DriverInfo, override: bool | None = None) -> bool:
    """Whether volumes of this driver need a VolumeAttachment.

    True when the driver has a Controller service with PUBLISH_UNPUBLISH_VOLUME (the retired
    registrar's rule), unless ``override`` says otherwise.
    """
    if override is not None:
        return override
    return info.controller_service and info.publish_unpublish


def build_spec(info: DriverInfo, opts: SpecOptions) -> JsonDict:
    """The managed spec fields, in API (JSON) form."""
    spec: JsonDict = {
        "attachRequired": attach_required(info, opts.attach_required),
        "podInfoOnMount": opts.pod_info_on_mount,
    }
    optional: dict[str, Any] = {
        "volumeLifecycleModes": (
            list(opts.volume_lifecycle_modes) if opts.volume_lifecycle_modes is not None else None
        ),
        "storageCapacity": opts.storage_capacity,
        "fsGroupPolicy": opts.fs_group_policy,
        "tokenRequests": (
            [t.to_json() for t in opts.token_requests] if opts.token_requests is not None else None
        ),
        "requiresRepublish": opts.requires_republish,
        "seLinuxMount": opts.selinux_mount,
        "nodeAllocatableUpdatePeriodSeconds": opts.node_allocatable_update_period_seconds,
        "serviceAccountTokenInSecrets": opts.service_account_token_in_secrets,
        "preventPodSchedulingIfMissing": opts.prevent_pod_scheduling_if_missing,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    return spec


def build_csidriver(info: DriverInfo, opts: SpecOptions) -> JsonDict:
    """The full CSIDriver object to apply with server-side apply."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY, **opts.labels}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": info.name, "labels": labels},
        "spec": build_spec(info, opts),
    }


def owner_reference(owner: JsonDict) -> JsonDict:
    """An ownerReference to ``owner`` (a cluster-scoped object as read from the API).

    With it the garbage collector deletes the CSIDriver once the owner is gone; the chart makes
    the registrar's own ClusterRole the owner, so ``helm uninstall`` takes the CSIDriver along.

    Raises:
        ValueError: ``owner`` lacks its apiVersion, kind, name or uid.
    """
    meta = owner.get("metadata") or {}
    ref = {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
    }
    missing = [k for k, v in ref.items() if not v]
    if missing:
        raise ValueError(f"owner object lacks {', '.join(missing)}")
    return ref


def with_owner(desired: JsonDict, ref: JsonDict) -> JsonDict:
    """``desired`` with ``ref`` as its one ownerReference (a new object)."""
    metadata = {**desired["metadata"], "ownerReferences": [dict(ref)]}
    return {**desired, "metadata": metadata}


def normalize(name: str, value: Any) -> Any:
    """A comparable form of spec field ``name``: absent means the API default; sets are sorted."""
    spec_field = SPEC_FIELDS.get(name)
    if value is None and spec_field is not None:
        value = spec_field.default
    if name == "volumeLifecycleModes":
        return tuple(sorted(value)) if value else ("Persistent",)
    if name == "tokenRequests":
        return tuple(
            sorted((str(t.get("audience", "")), t.get("expirationSeconds")) for t in value or ())
        )
    return value


class DiffKind(enum.Enum):
    """How the live object relates to the desired one."""

    MISSING = "missing"
    IN_SYNC = "in-sync"
    DRIFT = "drift"
    CONFLICT = "conflict"
    TERMINATING = "terminating"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that differs: its path, the wanted and the live value, and mutability."""

    path: str
    want: Any
    have: Any
    immutable: bool

    def describe(self) -> str:
        """``spec.attachRequired (have false, want true)``."""
        return f"{self.path} (have {_show(self.have)}, want {_show(self.want)})"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Diff:
    """The differences between the desired CSIDriver and the live one."""

    kind: DiffKind
    fields: tuple[FieldDiff, ...] = ()

    @property
    def conflicts(self) -> tuple[FieldDiff, ...]:
        """The differing immutable fields."""
        return tuple(f for f in self.fields if f.immutable)

    @property
    def drift(self) -> tuple[FieldDiff, ...]:
        """The differing mutable fields (and labels, owner references)."""
        return tuple(f for f in self.fields if not f.immutable)

    def describe(self, conflicts_only: bool = False) -> str:
        """The differing fields as one readable line."""
        chosen = self.conflicts if conflicts_only else self.fields
        return ", ".join(f.describe() for f in chosen)


def diff_csidriver(desired: JsonDict, live: JsonDict | None, ignore: Collection[str] = ()) -> Diff:
    """Compare the managed fields of ``desired`` with ``live`` (None when it does not exist).

    Args:
        desired: the object from :func:`build_csidriver`.
        live: the object in the cluster, or None.
        ignore: spec field names not to compare (fields the API server is known to drop).
    """
    if live is None:
        return Diff(DiffKind.MISSING)
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return Diff(DiffKind.TERMINATING)
    diffs: list[FieldDiff] = []
    live_spec = live.get("spec") or {}
    for name, want in desired.get("spec", {}).items():
        if name in ignore:
            continue
        have = live_spec.get(name)
        if normalize(name, want) != normalize(name, have):
            spec_field = SPEC_FIELDS.get(name)
            immutable = spec_field.immutable if spec_field is not None else False
            diffs.append(FieldDiff(f"spec.{name}", want, have, immutable))
    live_labels = (live.get("metadata") or {}).get("labels") or {}
    for key, want in (desired.get("metadata", {}).get("labels") or {}).items():
        if live_labels.get(key) != want:
            diffs.append(FieldDiff(f"metadata.labels[{key}]", want, live_labels.get(key), False))
    live_owners = {o.get("uid") for o in (live.get("metadata") or {}).get("ownerReferences") or []}
    for ref in desired.get("metadata", {}).get("ownerReferences") or []:
        if ref["uid"] not in live_owners:
            path = f"metadata.ownerReferences[{ref['kind']}/{ref['name']}]"
            diffs.append(FieldDiff(path, ref["uid"], None, False))
    if not diffs:
        return Diff(DiffKind.IN_SYNC)
    kind = DiffKind.CONFLICT if any(d.immutable for d in diffs) else DiffKind.DRIFT
    return Diff(kind, tuple(diffs))


def dropped_fields(desired: JsonDict, applied: JsonDict) -> list[str]:
    """Spec fields we sent that the API server did not keep (e.g. its feature gate is off)."""
    return [
        d.path.removeprefix("spec.")
        for d in diff_csidriver(desired, applied).fields
        if d.path.startswith("spec.")
    ]


class Step(enum.Enum):
    """What the registrar does about one diff."""

    NOTHING = "nothing"
    APPLY = "apply"
    REFUSE = "refuse"
    RECREATE = "recreate"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Plan:
    """One decision: the step, and the event to record once it succeeded (or at once, REFUSE)."""

    step: Step
    event: Event | None = None
    message: str = ""


def plan(name: str, diff: Diff, allow_recreate: bool) -> Plan:
    """Decide what to do about ``diff`` for the CSIDriver ``name``."""
    if diff.kind is DiffKind.IN_SYNC:
        return Plan(Step.NOTHING)
    if diff.kind is DiffKind.TERMINATING:
        return Plan(Step.WAIT, message=f'CSIDriver "{name}" is being deleted; waiting')
    if diff.kind is DiffKind.MISSING:
        msg = f'Created CSIDriver "{name}"'
        return Plan(Step.APPLY, Event("Normal", REASON_CREATED, msg), msg)
    if diff.kind is DiffKind.DRIFT:
        msg = f"Corrected drift: {diff.describe()}"
        return Plan(Step.APPLY, Event("Normal", REASON_DRIFT, msg), msg)
    immutable = diff.describe(conflicts_only=True)
    if allow_recreate:
        msg = f'Deleted and re-created CSIDriver "{name}" to change immutable fields: {immutable}'
        return Plan(Step.RECREATE, Event("Normal", REASON_RECREATED, msg), msg)
    msg = (
        f'CSIDriver "{name}" differs in immutable fields: {immutable}. It was left unchanged; '
        "delete it, or run with --allow-recreate to let the registrar delete and re-create it"
    )
    return Plan(Step.REFUSE, Event("Warning", REASON_CONFLICT, msg), msg)
