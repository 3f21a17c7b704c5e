"""The no-leak record of a CreateVolume that may be in flight, and the decisions built on it.

Go keeps "CreateVolume may be running for this PVC" only in memory (``claimsInProgress``), so a
provisioner restarted mid-call forgets it, and if the PVC is deleted meanwhile the volume leaks
(external-provisioner #486, #1469). Here the intent is on the API server first, as an
:class:`Intent` in the provisioner's journal (:mod:`.lease`, one Lease object whose
annotation holds every record; writes are coalesced, so 500 claims cost a handful of writes):

* Before the first CreateVolume (and again whenever the request changes) the record is added:
  volume name, PVC namespace/name/UID, selected node, StorageClass name and reclaim policy, the
  provisioner Secret reference (name and namespace only), access modes and volume mode, the
  request without secrets and its digest. CreateVolume is sent only after the journal write
  that contains the record succeeded.
* The journal does not depend on the PVC, so no PVC finalizer is needed: a PVC deleted while
  its record exists is cleaned up from the record alone (``CLEANUP_CREATE``): the recorded
  request is sent again (CreateVolume is idempotent by name) to learn the volume ID; then the
  volume is deleted (reclaim Delete) or adopted as a PV that the PV controller marks Released
  (Retain); a final error means nothing was created; then the record is dropped (``RELEASE``).
* Once the PV is saved the record is dropped (the drop rides along with the next write).

Records are never trusted to widen what the user could do: on a live PVC the request is always
rebuilt from the StorageClass (the record only pins topology, and only within the StorageClass's
``allowedTopologies`` and for the same selected node); a record whose volume name does not
belong to its PVC UID is ignored; the recorded request is used only to clean up a volume that is
then deleted or released.

Residual risk (documented, not handled): if the request changed between attempts (flags,
StorageClass recreated) and the driver answers AlreadyExists to the recorded request during
cleanup (the volume was created from a newer one), the volume ID cannot be learnt; the record
is dropped with a ``ProvisioningCleanupFailed`` warning event naming the volume, so an
administrator can delete it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import (
    Event,
    JsonDict,
    is_deleting,
    name,
    namespace,
    spec,
    str_list,
    uid,
)
from csi_sidecars.provisioner.decide import events
from csi_sidecars.provisioner.decide.claims import selected_node as claim_selected_node
from csi_sidecars.provisioner.decide.request import (
    ProvisionerOptions,
    ProvisionPlan,
    plan_provision,
    request_digest,
    request_from_json,
    request_to_json,
)
from csi_sidecars.provisioner.decide.secrets import SecretRef
from csi_sidecars.provisioner.decide.states import (
    ProvisionError,
    ProvisioningState,
    classify_create_error,
    delete_volume_succeeded,
)
from csi_sidecars.provisioner.decide.topology import TopologyRequirement, pinned_requirement_allowed

INTENT_VERSION = 1
#: A truncated UID suffix shorter than this is accepted only when it equals the current name.
MIN_UID_SUFFIX = 8


@dataclass(frozen=True)
class Intent:
    """A parsed, self-consistent intent record (``request`` never carries secrets)."""

    volume_name: str
    pvc_uid: str
    selected_node: str
    storage_class: str
    reclaim_policy: str
    digest: str
    request: csi_pb2.CreateVolumeRequest
    namespace: str = ""
    claim_name: str = ""
    secret: SecretRef | None = None
    access_modes: tuple[str, ...] = ()
    volume_mode: str = ""

    @property
    def claim_key(self) -> str:
        """``namespace/name`` of the claim (the work-queue key)."""
        return f"{self.namespace}/{self.claim_name}"

    def claim(self) -> JsonDict:
        """A stand-in for the claim when it is gone: enough for events, secrets and a PV."""
        claim_spec: JsonDict = {"accessModes": list(self.access_modes)}
        if self.volume_mode:
            claim_spec["volumeMode"] = self.volume_mode
        if self.storage_class:
            claim_spec["storageClassName"] = self.storage_class
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": self.namespace, "name": self.claim_name, "uid": self.pvc_uid},
            "spec": claim_spec,
        }


def name_belongs_to_uid(volume_name: str, pvc_uid: str, expected_name: str = "") -> bool:
    """Whether ``volume_name`` can only be this PVC's volume name.

    True when it equals ``expected_name`` (today's flags), ends with ``-<uid>``, or ends with
    ``-<dashless uid prefix>`` of at least :data:`MIN_UID_SUFFIX` characters.
    """
    if not volume_name or not pvc_uid:
        return False
    if expected_name and volume_name == expected_name:
        return True
    if volume_name.endswith("-" + pvc_uid) and len(volume_name) > len(pvc_uid) + 1:
        return True
    head, sep, tail = volume_name.rpartition("-")
    compact = pvc_uid.replace("-", "")
    return bool(sep and head) and len(tail) >= MIN_UID_SUFFIX and compact.startswith(tail)


def make_intent(
    pvc: Mapping[str, Any],
    request: csi_pb2.CreateVolumeRequest,
    sc: Mapping[str, Any] | None,
    secret: SecretRef | None = None,
) -> Intent:
    """The record of ``request`` for ``pvc`` (secrets are stripped)."""
    clean = csi_pb2.CreateVolumeRequest()
    clean.CopyFrom(request)
    clean.ClearField("secrets")
    return Intent(
        volume_name=request.name,
        pvc_uid=uid(pvc),
        selected_node=claim_selected_node(pvc),
        storage_class=name(sc) if sc else "",
        reclaim_policy=str((sc or {}).get("reclaimPolicy") or ""),
        digest=request_digest(clean),
        request=clean,
        namespace=namespace(pvc),
        claim_name=name(pvc),
        secret=secret,
        access_modes=tuple(str_list(spec(pvc).get("accessModes"))),
        volume_mode=str(spec(pvc).get("volumeMode") or ""),
    )


def intent_to_json(record: Intent) -> JsonDict:
    """The record as a JSON object (one entry of the journal)."""
    out: JsonDict = {
        "v": INTENT_VERSION,
        "volumeName": record.volume_name,
        "uid": record.pvc_uid,
        "selectedNode": record.selected_node,
        "storageClass": record.storage_class,
        "reclaimPolicy": record.reclaim_policy,
        "digest": record.digest,
        "request": request_to_json(record.request),
    }
    if record.claim_name:
        out["namespace"] = record.namespace
        out["name"] = record.claim_name
    if record.secret is not None:
        out["secret"] = record.secret.to_json()
    if record.access_modes:
        out["accessModes"] = list(record.access_modes)
    if record.volume_mode:
        out["volumeMode"] = record.volume_mode
    return out


def intent_from_json(data: object, expected_name: str = "") -> tuple[Intent | None, str]:
    """Parse and validate one record.

    Returns:
        The record (None when unusable) and why it is unusable ("" when fine).
    """
    try:
        if not isinstance(data, dict) or data.get("v") != INTENT_VERSION:
            return None, "intent record has an unknown format"
        request = request_from_json(data.get("request") or {})
        secret = data.get("secret")
        record = Intent(
            volume_name=str(data["volumeName"]),
            pvc_uid=str(data["uid"]),
            selected_node=str(data.get("selectedNode") or ""),
            storage_class=str(data.get("storageClass") or ""),
            reclaim_policy=str(data.get("reclaimPolicy") or ""),
            digest=str(data["digest"]),
            request=request,
            namespace=str(data.get("namespace") or ""),
            claim_name=str(data.get("name") or ""),
            secret=SecretRef(str(secret["name"]), str(secret["namespace"]))
            if isinstance(secret, dict)
            else None,
            access_modes=tuple(str(m) for m in data.get("accessModes") or ()),
            volume_mode=str(data.get("volumeMode") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None, "intent record is not valid"
    if request.name != record.volume_name or request_digest(request) != record.digest:
        return None, "intent record is inconsistent"
    if not name_belongs_to_uid(record.volume_name, record.pvc_uid, expected_name):
        return None, f"intent record names volume {record.volume_name} not derived from the UID"
    return record, ""


def pinned_requirement(
    record: Intent | None,
    pvc: Mapping[str, Any],
    *,
    allowed_topologies: Sequence[Mapping[str, Any]] | None,
    strict: bool,
) -> TopologyRequirement | None:
    """The topology requirement recorded for this PVC, when it may be reused.

    Reused only for the same PVC UID and selected node, and when it is acceptable for the
    StorageClass (:func:`csi_sidecars.provisioner.topology.pinned_requirement_allowed`).
    """
    if record is None or not record.request.HasField("accessibility_requirements"):
        return None
    if record.pvc_uid != uid(pvc) or record.selected_node != claim_selected_node(pvc):
        return None
    requirement = TopologyRequirement.from_proto(record.request.accessibility_requirements)
    if not pinned_requirement_allowed(
        requirement, allowed_topologies=allowed_topologies, strict=strict
    ):
        return None
    return requirement


class IntentAction(enum.Enum):
    """What the provisioning executor does next for a PVC."""

    NONE = "None"  # nothing to do
    RECORD = "Record"  # write the record into the journal, then CreateVolume(request)
    CREATE = "Create"  # record is durable and current: CreateVolume(request)
    CLEANUP_CREATE = "CleanupCreate"  # CreateVolume(request) to learn the ID, then clean up
    RELEASE = "Release"  # drop the record


@dataclass(frozen=True)
class IntentDecision:
    """The next step and why; ``request`` is what to record or send."""

    action: IntentAction
    reason: str
    request: csi_pb2.CreateVolumeRequest | None = None
    event: Event | None = None


def decide(
    pvc: Mapping[str, Any] | None,
    *,
    record: Intent | None,
    rebuilt: csi_pb2.CreateVolumeRequest | None,
    pv_exists: bool,
) -> IntentDecision:
    """Decide the next step for a claim from its durable record, the rebuilt request and the PV.

    Args:
        pvc: the claim as cached now (None when gone).
        record: the durable journal record of this claim UID (or of the claim that had this
            name, when ``pvc`` is gone or has another UID).
        rebuilt: the request built from today's claim, StorageClass and flags (None when it
            cannot be built, e.g. the StorageClass is gone).
        pv_exists: the PV of the record's claim (or of ``pvc`` without a record) is saved.
    """
    if pv_exists:
        if record is not None:
            return IntentDecision(IntentAction.RELEASE, "PersistentVolume is saved")
        return IntentDecision(IntentAction.NONE, "PersistentVolume is saved")
    live = pvc is not None and not is_deleting(pvc)
    if record is not None and pvc is not None and record.pvc_uid != uid(pvc):
        live = False  # the record belongs to an earlier claim of the same name
    if live:
        if rebuilt is None:
            return IntentDecision(IntentAction.NONE, "the request cannot be built yet")
        if record is None:
            return IntentDecision(IntentAction.RECORD, "no CreateVolume recorded yet", rebuilt)
        if record.volume_name != rebuilt.name:
            return IntentDecision(
                IntentAction.CLEANUP_CREATE,
                f"recorded volume {record.volume_name} differs from {rebuilt.name} "
                "(flags changed); cleaning it up first",
                record.request,
            )
        if record.digest != request_digest(rebuilt):
            return IntentDecision(IntentAction.RECORD, "the request changed", rebuilt)
        return IntentDecision(IntentAction.CREATE, "request recorded", rebuilt)
    if record is not None:
        return IntentDecision(
            IntentAction.CLEANUP_CREATE, "claim deleted while CreateVolume was recorded",
            record.request,
        )  # fmt: skip
    return IntentDecision(IntentAction.NONE, "claim deleted, nothing recorded")


class CleanupAction(enum.Enum):
    """The step after a cleanup CreateVolume or DeleteVolume."""

    DELETE_VOLUME = "DeleteVolume"  # DeleteVolume(volume_id) with the provisioner secret
    ADOPT = "Adopt"  # save a PV for the volume (claim gone: it becomes Released), then RELEASE
    RELEASE = "Release"  # remove record + finalizer
    RECORD = "Record"  # live claim after a stale-name cleanup: record the new request
    RETRY = "Retry"  # in progress or failed transiently: retry with back-off


@dataclass(frozen=True)
class CleanupDecision:
    """The next cleanup step, why, the volume ID it concerns and an optional PVC event."""

    action: CleanupAction
    reason: str
    volume_id: str = ""
    event: Event | None = None


def after_cleanup_create(
    *,
    pvc_deleting: bool,
    volume_id: str | None,
    code: grpc.StatusCode | None,
    reclaim_policy: str,
    volume_name: str,
) -> CleanupDecision:
    """Decide what follows the CreateVolume sent for cleanup.

    Args:
        pvc_deleting: the claim is being deleted (else: live claim, stale-name cleanup).
        volume_id: the created volume's ID, or None when the call failed.
        code: the failure's gRPC code (None for non-gRPC failures); ignored on success.
        reclaim_policy: the StorageClass's (or, if gone, the recorded) reclaim policy.
        volume_name: the volume name, for messages.
    """
    if volume_id is not None:
        if pvc_deleting and reclaim_policy not in ("", "Delete"):
            return CleanupDecision(
                CleanupAction.ADOPT, f"keeping volume {volume_id} ({reclaim_policy})", volume_id
            )
        return CleanupDecision(
            CleanupAction.DELETE_VOLUME, f"deleting unused volume {volume_id}", volume_id
        )
    if code == grpc.StatusCode.ALREADY_EXISTS:
        message = (
            f"volume {volume_name} exists with other parameters than the recorded request; its "
            "ID cannot be learnt, the volume may be orphaned"
        )
        action = CleanupAction.RELEASE if pvc_deleting else CleanupAction.RECORD
        return CleanupDecision(action, message, event=events.provisioning_cleanup_failed(message))
    state = classify_create_error(code, supports_topology=False, selected_node="")
    if state == ProvisioningState.IN_BACKGROUND:
        return CleanupDecision(CleanupAction.RETRY, "CreateVolume may still be in progress")
    action = CleanupAction.RELEASE if pvc_deleting else CleanupAction.RECORD
    return CleanupDecision(action, "CreateVolume failed for good: no volume was created")


def after_cleanup_delete(*, pvc_deleting: bool, code: grpc.StatusCode | None) -> CleanupDecision:
    """Decide what follows the cleanup DeleteVolume (``NotFound`` counts as deleted)."""
    if not delete_volume_succeeded(code):
        return CleanupDecision(CleanupAction.RETRY, "DeleteVolume failed")
    if pvc_deleting:
        return CleanupDecision(CleanupAction.RELEASE, "volume deleted")
    return CleanupDecision(CleanupAction.RECORD, "stale volume deleted")


def cleanup_secret_failed(volume_name: str, err: Exception) -> Event:
    """The warning when the cleanup of ``volume_name`` cannot read its Secret's data."""
    return events.provisioning_cleanup_failed(
        f"cannot clean up volume {volume_name}: {err}; retrying once the secret is fixed"
    )


def cleanup_reclaim_policy(record: Intent | None, sc: Mapping[str, Any] | None) -> str:
    """The reclaim policy for a cleanup: the StorageClass's if it still exists, else the
    recorded one, else ``Delete``."""
    if sc is not None and sc.get("reclaimPolicy"):
        return str(sc["reclaimPolicy"])
    if record is not None and record.reclaim_policy:
        return record.reclaim_policy
    return "Delete"


def adoption_plan(
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any] | None,
    request: csi_pb2.CreateVolumeRequest,
    opts: ProvisionerOptions,
) -> ProvisionPlan:
    """The plan of the PV that adopts a cleaned-up volume: today's plan when it names the same
    volume (secret refs and all), else the recorded request's (:func:`plan_from_request`)."""
    if sc is not None:
        try:
            plan = plan_provision(pvc, sc, opts)
        except ProvisionError:
            return plan_from_request(request)
        if plan.name == request.name:
            return plan
    return plan_from_request(request)


def adoption_class(sc: Mapping[str, Any] | None, driver: str, reclaim_policy: str) -> JsonDict:
    """The StorageClass the adopted PV is built from: ``sc`` (or an empty one for ``driver``)
    with the cleanup's reclaim policy."""
    klass: JsonDict = dict(sc) if sc is not None else {}
    klass.setdefault("provisioner", driver)
    klass["reclaimPolicy"] = reclaim_policy
    return klass


def plan_from_request(request: csi_pb2.CreateVolumeRequest) -> ProvisionPlan:
    """A minimal plan for adopting a volume when the StorageClass is gone (no secret refs)."""
    block = any(c.HasField("block") for c in request.volume_capabilities)
    fs_type = next(
        (c.mount.fs_type for c in request.volume_capabilities if c.HasField("mount")), ""
    )
    return ProvisionPlan(
        name=request.name,
        required_bytes=request.capacity_range.required_bytes,
        fs_type=fs_type,
        block=block,
        capabilities=tuple(request.volume_capabilities),
        parameters=dict(request.parameters),
    )
