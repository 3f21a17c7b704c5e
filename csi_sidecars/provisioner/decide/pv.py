"""Check a CreateVolume response and build the PersistentVolume exactly as Go writes it.

:func:`check_create_response` guards against what would crash or silently break the Go sidecar:
no volume in an OK response, an empty volume ID, capacity smaller than requested, a missing
content source for a clone, or a volume context too large for a PV object. Problems that need the
just-created volume deleted raise :class:`CleanupRequired`; the executor calls DeleteVolume (up to
5 tries within one ``--timeout``) and reports :func:`cleanup_outcome`.

:func:`build_pv` then writes the PV: name, annotations (``pv.kubernetes.io/provisioned-by``,
deletion-secret refs, modify-secret refs), the protection finalizer, capacity, access modes,
mount options, reclaim policy, volume mode, node affinity, claimRef and the CSI source with every
secret ref and the provisioner identity; :func:`save_pv` is the plan that creates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import JsonDict, meta, name, namespace, spec, str_list, uid
from csi_sidecars.kube.quantity import format_binary_si
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES
from csi_sidecars.provisioner.decide import events, secrets, strings
from csi_sidecars.provisioner.decide.claims import claim_class
from csi_sidecars.provisioner.decide.request import ProvisionPlan
from csi_sidecars.provisioner.decide.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.decide.topology import volume_node_affinity

#: Largest total size (keys + values, bytes) of a volume context we put into a PV. The API server
#: refuses objects above ~1.5 MiB; a PV that can never be saved would be retried forever.
MAX_VOLUME_CONTEXT_BYTES = 1024 * 1024

#: How many DeleteVolume attempts the cleanup makes inside one ``--timeout``.
CLEANUP_ATTEMPTS = 5


class CleanupRequired(ProvisionError):
    """The driver created a volume we cannot use; delete ``volume_id`` before reporting."""

    def __init__(
        self, message: str, volume_id: str, state: ProvisioningState, orphan_note: str
    ) -> None:
        super().__init__(message, state)
        self.volume_id = volume_id
        self.orphan_note = orphan_note


def check_create_response(
    plan: ProvisionPlan,
    pvc: Mapping[str, Any],
    response: csi_pb2.CreateVolumeResponse | None,
) -> int:
    """Validate a successful CreateVolume response.

    Returns:
        The capacity to record on the PV: the response's ``capacity_bytes``, or the requested
        size when the driver reports 0 (unknown).

    Raises:
        ProvisionError: (InBackground) for a response without a volume or volume ID: the volume
            may exist, so the request is retried (never a crash).
        CleanupRequired: short capacity (InBackground), missing content source for a claim with
            a data source (InBackground), oversized volume context (Finished).
    """
    if response is None or not response.HasField("volume"):
        raise ProvisionError(
            f"CreateVolume for {plan.name} succeeded but returned no volume",
            ProvisioningState.IN_BACKGROUND,
        )
    volume = response.volume
    if not volume.volume_id:
        raise ProvisionError(
            f"CreateVolume for {plan.name} succeeded but returned an empty volume_id",
            ProvisioningState.IN_BACKGROUND,
        )
    capacity = volume.capacity_bytes
    if capacity == 0:
        capacity = plan.required_bytes
    elif capacity < plan.required_bytes:
        raise CleanupRequired(
            f"created volume capacity {capacity} less than requested capacity "
            f"{plan.required_bytes}",
            volume.volume_id,
            ProvisioningState.IN_BACKGROUND,
            "Cleanup",
        )
    if spec(pvc).get("dataSource") is not None and not volume.HasField("content_source"):
        raise CleanupRequired(
            "volume content source missing",
            volume.volume_id,
            ProvisioningState.IN_BACKGROUND,
            "cleanup",
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in volume.volume_context.items())
    if size > MAX_VOLUME_CONTEXT_BYTES:
        raise CleanupRequired(
            f"CreateVolume for {plan.name} returned a volume context of {size} bytes, more than "
            f"the {MAX_VOLUME_CONTEXT_BYTES} bytes a PersistentVolume can hold",
            volume.volume_id,
            ProvisioningState.FINISHED,
            "Cleanup",
        )
    return capacity


def cleanup_outcome(err: CleanupRequired, cleanup_error: str | None) -> ProvisionError:
    """The error to report after the cleanup DeleteVolume.

    Args:
        err: what required the cleanup.
        cleanup_error: the last DeleteVolume error text, or None when it succeeded.

    Returns:
        ``err`` itself when the cleanup worked; otherwise an InBackground error naming the
        orphaned volume (the request will be retried, which finds and cleans it again).
    """
    if cleanup_error is None:
        return ProvisionError(str(err), err.state)
    return ProvisionError(
        f"{err}. {err.orphan_note} of volume {err.volume_id} failed, volume is orphaned: "
        f"{cleanup_error}",
        ProvisioningState.IN_BACKGROUND,
    )


def claim_ref(pvc: Mapping[str, Any]) -> JsonDict:
    """The full object reference to the claim (``spec.claimRef``)."""
    ref: JsonDict = {
        "kind": "PersistentVolumeClaim",
        "namespace": namespace(pvc),
        "name": name(pvc),
        "uid": uid(pvc),
        "apiVersion": "v1",
    }
    resource_version = meta(pvc).get("resourceVersion")
    if resource_version:
        ref["resourceVersion"] = str(resource_version)
    return ref


def build_pv(
    plan: ProvisionPlan,
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any],
    volume: csi_pb2.Volume,
    capacity_bytes: int,
    *,
    driver: str,
    identity: str,
    supports_topology: bool,
    controller_publish_readonly: bool = False,
    vac_gate: bool = True,
) -> JsonDict:
    """The PersistentVolume for a provisioned volume.

    Args:
        plan: the plan the request was built from.
        pvc: the claim.
        sc: its StorageClass.
        volume: ``CreateVolumeResponse.volume`` (checked by :func:`check_create_response`).
        capacity_bytes: the capacity :func:`check_create_response` returned.
        driver: the CSI driver name.
        identity: the provisioner identity (``<unix-ms>-<rand>-<driver>``).
        supports_topology: write ``spec.nodeAffinity`` from the accessible topology.
        controller_publish_readonly: ``--controller-publish-readonly``.
        vac_gate: the VolumeAttributesClass feature gate.
    """
    refs = plan.secret_refs
    provisioner_ref = refs.get(secrets.PROVISIONER.kind)
    ann = {
        strings.ANN_PROVISIONED_BY: str(sc.get("provisioner") or ""),
        strings.ANN_DELETION_SECRET_NAME: provisioner_ref.name if provisioner_ref else "",
        strings.ANN_DELETION_SECRET_NAMESPACE: provisioner_ref.namespace if provisioner_ref else "",
    }
    modify_ref = refs.get(secrets.CONTROLLER_MODIFY.kind)
    if modify_ref is not None:
        ann[strings.ANN_MODIFY_SECRET_NAME] = modify_ref.name
        ann[strings.ANN_MODIFY_SECRET_NAMESPACE] = modify_ref.namespace

    attributes = {strings.PROVISIONER_IDENTITY_KEY: identity, **dict(volume.volume_context)}
    csi: JsonDict = {
        "driver": driver,
        "volumeHandle": volume.volume_id,
        "volumeAttributes": attributes,
    }
    if not plan.block and plan.fs_type:
        csi["fsType"] = plan.fs_type
    read_only = (
        controller_publish_readonly
        and len(plan.capabilities) == 1
        and plan.capabilities[0].access_mode.mode
        == csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY
    )
    if read_only:
        csi["readOnly"] = True
    for field, kind in (
        ("controllerPublishSecretRef", secrets.CONTROLLER_PUBLISH),
        ("nodeStageSecretRef", secrets.NODE_STAGE),
        ("nodePublishSecretRef", secrets.NODE_PUBLISH),
        ("controllerExpandSecretRef", secrets.CONTROLLER_EXPAND),
        ("nodeExpandSecretRef", secrets.NODE_EXPAND),
    ):
        ref = refs.get(kind.kind)
        if ref is not None:
            csi[field] = ref.to_json()

    pvc_spec = spec(pvc)
    pv_spec: JsonDict = {
        "accessModes": str_list(pvc_spec.get("accessModes")),
        "capacity": {"storage": format_binary_si(capacity_bytes)},
        "csi": csi,
        "claimRef": claim_ref(pvc),
    }
    mount_options = str_list(sc.get("mountOptions"))
    if mount_options:
        pv_spec["mountOptions"] = mount_options
    reclaim = sc.get("reclaimPolicy")
    if reclaim:
        pv_spec["persistentVolumeReclaimPolicy"] = str(reclaim)
    if supports_topology:
        affinity = volume_node_affinity(volume.accessible_topology)
        if affinity is not None:
            pv_spec["nodeAffinity"] = affinity
    if pvc_spec.get("volumeMode"):
        pv_spec["volumeMode"] = str(pvc_spec["volumeMode"])
    vac = pvc_spec.get("volumeAttributesClassName")
    if vac_gate and vac:
        pv_spec["volumeAttributesClassName"] = str(vac)
    storage_class = claim_class(pvc)
    if storage_class:
        pv_spec["storageClassName"] = storage_class

    metadata: JsonDict = {"name": plan.name, "annotations": ann}
    if reclaim == "Delete":
        metadata["finalizers"] = [strings.PV_FINALIZER]
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": pv_spec}


def save_pv(pv: JsonDict, pvc: Mapping[str, Any], *, announce: bool = False) -> Plan:
    """The plan that creates the PV of ``pvc``.

    ``AlreadyExists`` counts as saved when the existing PV was made for the same claim UID (Go
    counts it without looking); a PV of that name for another claim is a :class:`Retry`.

    Args:
        pv: the PV (:func:`build_pv`).
        pvc: its claim (or the journal record's stand-in for it).
        announce: once saved, ``ProvisioningSucceeded`` on the claim (not for a volume the
            cleanup adopts).
    """
    saved: tuple[a.Action, ...] = ()
    if announce:
        event = events.provisioning_succeeded(name(pv))
        saved = (a.Emit(event, dict(pvc), PERSISTENT_VOLUME_CLAIMS),)

    def created(out: JsonDict) -> Plan:
        if not pv_belongs_to_claim(out, pvc):
            return (
                a.Retry(
                    f'persistentvolumes "{name(pv)}" already exists and is bound to another claim'
                ),
            )
        return (*saved, a.Done())

    return (a.Create(PERSISTENT_VOLUMES, pv, exists_ok=True, then=created),)


def pv_belongs_to_claim(pv: Mapping[str, Any] | None, pvc: Mapping[str, Any]) -> bool:
    """Whether an existing PV (same deterministic name) was made for this claim.

    Go counts ``AlreadyExists`` on PV create as success without looking; a PV whose claimRef
    names another claim UID means a name collision, not our volume.
    """
    if pv is None:
        return False
    ref = spec(pv).get("claimRef")
    return isinstance(ref, dict) and ref.get("uid") == uid(pvc)


__all__ = [
    "CLEANUP_ATTEMPTS",
    "MAX_VOLUME_CONTEXT_BYTES",
    "CleanupRequired",
    "build_pv",
    "check_create_response",
    "claim_ref",
    "cleanup_outcome",
    "pv_belongs_to_claim",
    "save_pv",
]
