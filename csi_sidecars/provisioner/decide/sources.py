"""Data sources of a claim: normalisation, clone sources and VolumeAttributesClass.

Split from :mod:`.request`: these take the objects the executor looked up (source PVC and PV,
VolumeAttributesClass) and return the ``volume_content_source`` / ``mutable_parameters`` of the
request, or Go's error text. Restores from a VolumeSnapshot are in :mod:`.snapshots`.

Cloning protection (Go's ``CloningProtectionController``): before CreateVolume of a clone the
source PVC gets ``provisioner.storage.kubernetes.io/cloning-protection``
(:func:`with_clone_protection`), so it cannot disappear while the driver copies it;
:func:`release_clone_source` removes it from a source being deleted once no clone of it is
still ``Pending``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import (
    JsonDict,
    finalizers,
    is_deleting,
    meta,
    name,
    namespace,
    spec,
    status,
    str_map,
    uid,
)
from csi_sidecars.kube.quantity import QuantityError, quantity_to_bytes
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.claims import update_claim
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.decide.strings import go_quote

if TYPE_CHECKING:
    from csi_sidecars.provisioner.decide.request import ProvisionPlan

FINISHED = ProvisioningState.FINISHED
NO_CHANGE = ProvisioningState.NO_CHANGE


@dataclass(frozen=True)
class DataSource:
    """A PVC's data source, normalised from ``dataSource`` / ``dataSourceRef``."""

    kind: str
    name: str
    namespace: str
    api_group: str = ""


def requested_bytes(pvc: Mapping[str, Any]) -> int:
    """``spec.resources.requests.storage`` in bytes, rounded up (0 when absent).

    Raises:
        ProvisionError: (Finished) for a malformed quantity.
    """
    requests = (spec(pvc).get("resources") or {}).get("requests") or {}
    text = requests.get("storage")
    if text is None:
        return 0
    try:
        return quantity_to_bytes(str(text))
    except QuantityError as err:
        raise ProvisionError(f"invalid storage request: {err}", FINISHED) from None


def data_source(pvc: Mapping[str, Any], cross_namespace_gate: bool = False) -> DataSource | None:
    """Normalise ``dataSource`` (wins; PVC namespace) or ``dataSourceRef``.

    Raises:
        ProvisionError: (Finished) for a namespaced ``dataSourceRef`` while the
            CrossNamespaceVolumeDataSource gate is off.
    """
    pvc_spec = spec(pvc)
    src = pvc_spec.get("dataSource")
    if isinstance(src, dict):
        return DataSource(
            kind=str(src.get("kind") or ""),
            name=str(src.get("name") or ""),
            namespace=namespace(pvc),
            api_group=str(src.get("apiGroup") or ""),
        )
    ref = pvc_spec.get("dataSourceRef")
    if isinstance(ref, dict):
        ref_ns = str(ref.get("namespace") or "")
        if ref_ns and not cross_namespace_gate:
            raise ProvisionError(
                "dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource "
                "feature is disabled",
                FINISHED,
            )
        return DataSource(
            kind=str(ref.get("kind") or ""),
            name=str(ref.get("name") or ""),
            namespace=ref_ns or namespace(pvc),
            api_group=str(ref.get("apiGroup") or ""),
        )
    return None


def source_error(source: DataSource, message: str) -> ProvisionError:
    """Go's NoChange error for a data source that cannot be used (yet)."""
    return ProvisionError(
        f"error getting handle for DataSource Type {source.kind} by Name {source.name}: {message}",
        NO_CHANGE,
    )


def clone_content_source(
    plan: ProvisionPlan,
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any],
    source_pvc: Mapping[str, Any] | None,
    source_pv: Mapping[str, Any] | None,
) -> csi_pb2.VolumeContentSource:
    """Validate a clone source (Go ``getPVCSource``) and return the content source.

    Args:
        plan: the plan (its ``data_source`` is the source PVC reference).
        pvc: the new claim.
        sc: its StorageClass.
        source_pvc: the source PVC from the cache, or None if not found.
        source_pv: the PV bound to the source PVC (GET), or None if not found.

    Raises:
        ProvisionError: (NoChange) ``error getting handle for DataSource Type
            PersistentVolumeClaim by Name <n>: <why>``.
    """
    source = plan.data_source
    if source is None:
        raise ProvisionError("no clone source in plan", FINISHED)
    if source_pvc is None:
        raise source_error(
            source,
            f"error getting PVC {source.name} (namespace {go_quote(namespace(pvc))}) from api "
            f'server: persistentvolumeclaims "{source.name}" not found',
        )
    if status(source_pvc).get("phase") != "Bound":
        raise source_error(
            source,
            f"the PVC DataSource {source.name} must have a status of Bound.  Got "
            f"{status(source_pvc).get('phase') or ''}",
        )
    if is_deleting(source_pvc):
        raise source_error(source, f"the PVC DataSource {source.name} is currently being deleted")
    if spec(source_pvc).get("storageClassName") is None:
        raise source_error(
            source, f"the source PVC ({name(source_pvc)}) storageclass cannot be empty"
        )
    if spec(pvc).get("storageClassName") is None:
        raise source_error(source, f"the requested PVC ({name(pvc)}) storageclass cannot be empty")
    source_size = requested_bytes(source_pvc)
    if plan.required_bytes < source_size:
        raise source_error(
            source,
            "error, new PVC request must be greater than or equal in size to the specified PVC "
            f"data source, requested {plan.required_bytes} but source is {source_size}",
        )
    volume_name = str(spec(source_pvc).get("volumeName") or "")
    if not volume_name:
        raise source_error(source, f"volume name is empty in source PVC {name(source_pvc)}")
    invalid = "claim in dataSource not bound or invalid"
    pv_csi = spec(source_pv).get("csi") if source_pv is not None else None
    if source_pv is None or not isinstance(pv_csi, dict):
        raise source_error(source, invalid)
    if pv_csi.get("driver") != sc.get("provisioner"):
        raise source_error(source, invalid)
    claim_ref = spec(source_pv).get("claimRef")
    if not isinstance(claim_ref, dict) or (
        claim_ref.get("uid") != uid(source_pvc)
        or claim_ref.get("namespace") != namespace(source_pvc)
        or claim_ref.get("name") != name(source_pvc)
    ):
        raise source_error(source, invalid)
    if status(source_pv).get("phase") != "Bound":
        raise source_error(source, invalid)
    source_block = spec(source_pv).get("volumeMode") == "Block"
    if not plan.block and spec(source_pv).get("volumeMode") not in (None, "Filesystem"):
        raise source_error(
            source,
            "the source PVC and destination PVCs must have the same volume mode for cloning.  "
            "Source is Block, but new PVC requested Filesystem",
        )
    if plan.block and not source_block:
        raise source_error(
            source,
            "the source PVC and destination PVCs must have the same volume mode for cloning.  "
            "Source is Filesystem, but new PVC requested Block",
        )
    return csi_pb2.VolumeContentSource(
        volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=str(pv_csi.get("volumeHandle")))
    )


def clone_source_finalizers(source_pvc: Mapping[str, Any]) -> list[str] | None:
    """The finalizer list to write on a clone source PVC (adds the cloning-protection
    finalizer), or None when it already has it."""
    current = finalizers(source_pvc)
    if strings.CLONE_SOURCE_FINALIZER in current:
        return None
    return [*current, strings.CLONE_SOURCE_FINALIZER]


def _with_finalizers(pvc: Mapping[str, Any], wanted: list[str]) -> JsonDict:
    return {**pvc, "metadata": {**meta(pvc), "finalizers": wanted}}


def with_clone_protection(source_pvc: Mapping[str, Any]) -> JsonDict | None:
    """The source PVC with the cloning-protection finalizer (None: it has it already)."""
    wanted = clone_source_finalizers(source_pvc)
    return None if wanted is None else _with_finalizers(source_pvc, wanted)


def without_clone_protection(source_pvc: Mapping[str, Any]) -> JsonDict | None:
    """The source PVC without the cloning-protection finalizer (None: it has none)."""
    current = finalizers(source_pvc)
    if strings.CLONE_SOURCE_FINALIZER not in current:
        return None
    kept = [f for f in current if f != strings.CLONE_SOURCE_FINALIZER]
    return _with_finalizers(source_pvc, kept)


def needs_release_check(pvc: Mapping[str, Any]) -> bool:
    """Whether a PVC is a deleted clone source still carrying the protection finalizer."""
    return is_deleting(pvc) and strings.CLONE_SOURCE_FINALIZER in finalizers(pvc)


@dataclass(frozen=True, slots=True)
class CloneInUse(a.Retry):
    """A clone of the source PVC is still ``Pending``: look again after the back-off."""


def release_clone_source(
    source_pvc: Mapping[str, Any] | None, clones: Iterable[Mapping[str, Any]]
) -> Plan:
    """The plan for a clone source PVC: remove the protection finalizer once it is safe.

    Args:
        source_pvc: the source PVC as cached (None: gone).
        clones: the PVCs whose ``dataSource`` is this PVC.

    Returns:
        Done when there is nothing to do; :class:`CloneInUse` (back-off) while a clone is
        still ``Pending``; else the PVC Update removing the finalizer (a claim that is gone
        counts as done; a failed Update is a Retry).
    """
    if source_pvc is None or not needs_release_check(source_pvc):
        return (a.Done(),)
    pending = [c for c in clones if status(c).get("phase") in (None, "", "Pending")]
    if pending:
        return (CloneInUse(f"still the source of {len(pending)} pending clone(s)"),)
    return update_claim(
        source_pvc,
        without_clone_protection,
        missing_ok=True,
        done=a.Done("removed the cloning protection finalizer"),
    )


def mutable_parameters(vac: Mapping[str, Any], driver: str) -> dict[str, str]:
    """``mutable_parameters`` from the claim's VolumeAttributesClass.

    Raises:
        ProvisionError: (Finished) when the class belongs to another driver.
    """
    if vac.get("driverName") != driver:
        raise ProvisionError(
            f"VAC {name(vac)} referenced in PVC is for driver {vac.get('driverName') or ''} "
            f"which does not match driver name {driver}",
            FINISHED,
        )
    return str_map(vac.get("parameters"))
