"""The CreateVolumeRequest, built exactly as external-provisioner's ``prepareProvision`` builds it.

Building happens in two pure steps around the executor's lookups:

1. :func:`plan_provision` checks the claim and StorageClass and computes everything that needs no
   I/O: name, capacity, fsType, capabilities, stripped parameters, every secret reference, the
   normalised data source and the VolumeAttributesClass name. Errors carry Go's text and state.
2. The executor then looks up what the plan asks for (clone source PVC and PV ->
   :func:`clone_content_source`; CSINode/Node -> :mod:`.topology`; the provisioner Secret's data;
   the VolumeAttributesClass -> :func:`mutable_parameters`) and calls
   :func:`build_create_request`.

The same claim, StorageClass, flags and lookups always give the same request, so a retry after a
timeout or a restart is identical and CSI idempotency (by name) prevents duplicate volumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from csi_sidecars.csi.gen import csi_pb2
from csi_sidecars.provisioner import keys, secrets
from csi_sidecars.provisioner.claims import is_block
from csi_sidecars.provisioner.objects import (
    annotations_of,
    go_quote,
    is_deleting,
    name,
    namespace,
    spec,
    status,
    str_list,
    str_map,
    uid,
)
from csi_sidecars.provisioner.quantity import QuantityError, quantity_to_bytes
from csi_sidecars.provisioner.secrets import SecretParamError, SecretRef
from csi_sidecars.provisioner.states import IgnoredError, ProvisionError, ProvisioningState
from csi_sidecars.provisioner.topology import TopologyRequirement

_Cap = csi_pb2.ControllerServiceCapability.RPC
_Mode = csi_pb2.VolumeCapability.AccessMode
FINISHED = ProvisioningState.FINISHED
NO_CHANGE = ProvisioningState.NO_CHANGE


@dataclass(frozen=True)
class ProvisionerOptions:
    """The driver facts and flags request building depends on."""

    driver: str
    volume_name_prefix: str = "pvc"
    volume_name_uuid_length: int = -1
    default_fstype: str = ""
    extra_create_metadata: bool = False
    plugin_capabilities: Collection[int] = ()
    controller_capabilities: Collection[int] = ()
    topology_gate: bool = True
    vac_gate: bool = True

    @property
    def supports_topology(self) -> bool:
        """Driver has VOLUME_ACCESSIBILITY_CONSTRAINTS and the Topology gate is on."""
        return (
            self.topology_gate
            and csi_pb2.PluginCapability.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS
            in self.plugin_capabilities
        )

    def has(self, cap: int) -> bool:
        """Whether the driver reports a controller capability."""
        return cap in self.controller_capabilities


@dataclass(frozen=True)
class DataSource:
    """A PVC's data source, normalised from ``dataSource`` / ``dataSourceRef``."""

    kind: str
    name: str
    namespace: str
    api_group: str = ""


@dataclass(frozen=True)
class ProvisionPlan:
    """Everything about a CreateVolume that needs no lookups.

    Attributes:
        name: volume and PV name.
        required_bytes: ``capacity_range.required_bytes``.
        fs_type: the fsType ("" allowed; unused for block).
        block: the claim wants a raw block volume.
        capabilities: ``volume_capabilities``, one per access mode.
        parameters: StorageClass parameters with reserved keys stripped (+ extra metadata).
        secret_refs: resolved secret reference per kind (``secrets.ALL_KINDS`` kind names).
        data_source: the normalised data source (PersistentVolumeClaim only; None if none).
        vac_name: VolumeAttributesClass to read ``mutable_parameters`` from ("" = none).
    """

    name: str
    required_bytes: int
    fs_type: str
    block: bool
    capabilities: tuple[csi_pb2.VolumeCapability, ...]
    parameters: dict[str, str]
    secret_refs: dict[str, SecretRef | None] = field(default_factory=dict)
    data_source: DataSource | None = None
    vac_name: str = ""

    @property
    def provisioner_secret(self) -> SecretRef | None:
        """The Secret whose data goes into CreateVolume/DeleteVolume ``secrets``."""
        return self.secret_refs.get(secrets.PROVISIONER.kind)


def make_volume_name(prefix: str, pvc_uid: str, uuid_length: int) -> str:
    """``<prefix>-<pvc uid>``; with ``uuid_length`` N >= 0 the UID loses its dashes and is cut
    to N characters.

    Raises:
        ProvisionError: empty prefix or UID (Finished), or a length outside -1..32 (Go panics).
    """
    if not prefix:
        raise ProvisionError("volume name prefix cannot be of length 0", FINISHED)
    if not pvc_uid:
        raise ProvisionError("corrupted PVC object, it is missing UID", FINISHED)
    if uuid_length == -1:
        return f"{prefix}-{pvc_uid}"
    compact = pvc_uid.replace("-", "")
    if uuid_length < 0 or uuid_length > len(compact):
        raise ProvisionError(
            f"volume name UUID length {uuid_length} is out of range for UID {pvc_uid}", FINISHED
        )
    return f"{prefix}-{compact[:uuid_length]}"


def strip_reserved_parameters(sc_params: Mapping[str, str]) -> dict[str, str]:
    """StorageClass parameters without the ``csi.storage.k8s.io/`` keys.

    Deprecated un-prefixed keys (``fstype``, ``csiProvisionerSecretName``...) stay.

    Raises:
        ProvisionError: (Finished) for a ``csi.storage.k8s.io/`` key the provisioner does not know.
    """
    out: dict[str, str] = {}
    for key in sorted(sc_params):
        if key.startswith(keys.CSI_PARAMETER_PREFIX):
            if key not in secrets.RESERVED_PARAMETER_KEYS:
                raise ProvisionError(
                    "failed to strip CSI Parameters of prefixed keys: found unknown parameter "
                    f'key "{key}" with reserved namespace {keys.CSI_PARAMETER_PREFIX}',
                    FINISHED,
                )
            continue
        out[key] = sc_params[key]
    return out


def resolve_fstype(sc_params: Mapping[str, str], default_fstype: str) -> tuple[str, bool]:
    """The fsType from ``csi.storage.k8s.io/fstype``, the deprecated ``fstype`` (any case) or
    ``--default-fstype``.

    Returns:
        The fsType (may be "") and whether the deprecated key was used (log a warning).

    Raises:
        ProvisionError: (Finished) when more than one fstype key is set.
    """
    found = 0
    fs_type = ""
    deprecated = False
    for key, value in sc_params.items():
        if key.lower() == keys.PARAM_DEPRECATED_FSTYPE or key == keys.PARAM_FSTYPE:
            fs_type = value
            found += 1
        if key.lower() == keys.PARAM_DEPRECATED_FSTYPE:
            deprecated = True
    if found > 1:
        raise ProvisionError(
            f'fstype specified in parameters with both "fstype" and "{keys.PARAM_FSTYPE}" keys',
            FINISHED,
        )
    return (fs_type or default_fstype), deprecated


def access_mode(mode: str, single_node_multi_writer: bool) -> int:
    """The CSI access mode of one Kubernetes access mode.

    RWOP -> SINGLE_NODE_SINGLE_WRITER and RWO -> SINGLE_NODE_MULTI_WRITER when the driver has
    SINGLE_NODE_MULTI_WRITER; otherwise both are SINGLE_NODE_WRITER.

    Raises:
        ProvisionError: (Finished) for an unknown mode.
    """
    if mode == "ReadWriteOncePod":
        return (
            _Mode.SINGLE_NODE_SINGLE_WRITER
            if single_node_multi_writer
            else _Mode.SINGLE_NODE_WRITER
        )
    if mode == "ReadWriteMany":
        return _Mode.MULTI_NODE_MULTI_WRITER
    if mode == "ReadOnlyMany":
        return _Mode.MULTI_NODE_READER_ONLY
    if mode == "ReadWriteOnce":
        return (
            _Mode.SINGLE_NODE_MULTI_WRITER if single_node_multi_writer else _Mode.SINGLE_NODE_WRITER
        )
    raise ProvisionError(f"unsupported AccessMode combination: [{mode}]", FINISHED)


def volume_capabilities(
    pvc: Mapping[str, Any], sc: Mapping[str, Any], fs_type: str, single_node_multi_writer: bool
) -> tuple[csi_pb2.VolumeCapability, ...]:
    """One VolumeCapability per PVC access mode: block, or mount with fsType and the
    StorageClass ``mountOptions``."""
    caps = []
    block = is_block(pvc)
    for mode in str_list(spec(pvc).get("accessModes")):
        cap = csi_pb2.VolumeCapability(
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=access_mode(mode, single_node_multi_writer)  # type: ignore[arg-type]
            )
        )
        if block:
            cap.block.SetInParent()
        else:
            cap.mount.fs_type = fs_type
            cap.mount.mount_flags.extend(str_list(sc.get("mountOptions")))
        caps.append(cap)
    return tuple(caps)


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


def check_capabilities(
    opts: ProvisionerOptions, *, snapshot: bool = False, clone: bool = False, modify: bool = False
) -> None:
    """Check the driver can do what the claim needs (Go ``checkDriverCapabilities``).

    Raises:
        ProvisionError: (Finished) naming the missing capability.
    """
    if csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE not in opts.plugin_capabilities:
        raise ProvisionError(
            "CSI driver does not support dynamic provisioning: plugin CONTROLLER_SERVICE "
            "capability is not reported"
        )
    if not opts.has(_Cap.CREATE_DELETE_VOLUME):
        raise ProvisionError(
            "CSI driver does not support dynamic provisioning: controller CREATE_DELETE_VOLUME "
            "capability is not reported"
        )
    if snapshot and not opts.has(_Cap.CREATE_DELETE_SNAPSHOT):
        raise ProvisionError(
            "CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT "
            "capability is not reported"
        )
    if clone and not opts.has(_Cap.CLONE_VOLUME):
        raise ProvisionError(
            "CSI driver does not support clone operations: controller CLONE_VOLUME capability "
            "is not reported"
        )
    if modify and not opts.has(_Cap.MODIFY_VOLUME):
        raise ProvisionError(
            "CSI driver does not support VolumeAttributesClass: controller MODIFY_VOLUME "
            "capability is not reported"
        )


def plan_provision(
    pvc: Mapping[str, Any], sc: Mapping[str, Any] | None, opts: ProvisionerOptions
) -> ProvisionPlan:
    """Check the claim and compute the lookup-free part of its CreateVolumeRequest.

    Raises:
        IgnoredError: data source of another kind (an external populator's job); emit
            :func:`csi_sidecars.provisioner.events.external_populator` first.
        ProvisionError: with Go's text and state (config errors Finished, secret template
            errors NoChange, as in Go).
    """
    if sc is None:
        raise ProvisionError("storage class was nil", FINISHED)
    source = data_source(pvc)
    clone = False
    if source is not None:
        if not source.name:
            raise ProvisionError(f"the PVC source not found for PVC {name(pvc)}", FINISHED)
        if source.kind == keys.KIND_SNAPSHOT:
            if source.api_group != keys.SNAPSHOT_API_GROUP:
                raise ProvisionError(
                    "the PVC source does not belong to the right APIGroup. Expected "
                    f"{keys.SNAPSHOT_API_GROUP}, Got {source.api_group}",
                    FINISHED,
                )
            raise ProvisionError(
                "restoring a volume from a VolumeSnapshot is not supported yet by csi-sidecars "
                "provisioner",
                FINISHED,
            )
        if source.kind == keys.KIND_PVC:
            clone = True
        else:
            raise IgnoredError(
                f"data source ({source.kind}) is not handled by the provisioner, assuming an "
                "external populator will provision it"
            )
    vac_name = str(spec(pvc).get("volumeAttributesClassName") or "") if opts.vac_gate else ""
    check_capabilities(opts, clone=clone, modify=bool(vac_name))
    if spec(pvc).get("selector") is not None:
        raise ProvisionError("claim Selector is not supported", FINISHED)
    pv_name = make_volume_name(opts.volume_name_prefix, uid(pvc), opts.volume_name_uuid_length)
    sc_params = str_map(sc.get("parameters"))
    fs_type, _ = resolve_fstype(sc_params, opts.default_fstype)
    required = requested_bytes(pvc)
    caps = volume_capabilities(pvc, sc, fs_type, opts.has(_Cap.SINGLE_NODE_MULTI_WRITER))

    refs: dict[str, SecretRef | None] = {}
    for kind in secrets.ALL_KINDS:
        try:
            refs[kind.kind] = secrets.secret_reference(
                kind,
                sc_params=sc_params,
                pv_name=pv_name,
                pvc_name=name(pvc),
                pvc_namespace=namespace(pvc),
                pvc_annotations=annotations_of(pvc),
            )
        except SecretParamError as err:
            raise ProvisionError(str(err), NO_CHANGE) from None
    params = strip_reserved_parameters(sc_params)
    if opts.extra_create_metadata:
        params[keys.PARAM_PVC_NAME] = name(pvc)
        params[keys.PARAM_PVC_NAMESPACE] = namespace(pvc)
        params[keys.PARAM_PV_NAME] = pv_name
    return ProvisionPlan(
        name=pv_name,
        required_bytes=required,
        fs_type=fs_type,
        block=is_block(pvc),
        capabilities=caps,
        parameters=params,
        secret_refs=refs,
        data_source=source if clone else None,
        vac_name=vac_name,
    )


def _source_error(source: DataSource, message: str) -> ProvisionError:
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
        raise _source_error(
            source,
            f"error getting PVC {source.name} (namespace {go_quote(namespace(pvc))}) from api "
            f'server: persistentvolumeclaims "{source.name}" not found',
        )
    if status(source_pvc).get("phase") != "Bound":
        raise _source_error(
            source,
            f"the PVC DataSource {source.name} must have a status of Bound.  Got "
            f"{status(source_pvc).get('phase') or ''}",
        )
    if is_deleting(source_pvc):
        raise _source_error(source, f"the PVC DataSource {source.name} is currently being deleted")
    if spec(source_pvc).get("storageClassName") is None:
        raise _source_error(
            source, f"the source PVC ({name(source_pvc)}) storageclass cannot be empty"
        )
    if spec(pvc).get("storageClassName") is None:
        raise _source_error(source, f"the requested PVC ({name(pvc)}) storageclass cannot be empty")
    source_size = requested_bytes(source_pvc)
    if plan.required_bytes < source_size:
        raise _source_error(
            source,
            "error, new PVC request must be greater than or equal in size to the specified PVC "
            f"data source, requested {plan.required_bytes} but source is {source_size}",
        )
    volume_name = str(spec(source_pvc).get("volumeName") or "")
    if not volume_name:
        raise _source_error(source, f"volume name is empty in source PVC {name(source_pvc)}")
    invalid = "claim in dataSource not bound or invalid"
    pv_csi = spec(source_pv).get("csi") if source_pv is not None else None
    if source_pv is None or not isinstance(pv_csi, dict):
        raise _source_error(source, invalid)
    if pv_csi.get("driver") != sc.get("provisioner"):
        raise _source_error(source, invalid)
    claim_ref = spec(source_pv).get("claimRef")
    if not isinstance(claim_ref, dict) or (
        claim_ref.get("uid") != uid(source_pvc)
        or claim_ref.get("namespace") != namespace(source_pvc)
        or claim_ref.get("name") != name(source_pvc)
    ):
        raise _source_error(source, invalid)
    if status(source_pv).get("phase") != "Bound":
        raise _source_error(source, invalid)
    source_block = spec(source_pv).get("volumeMode") == "Block"
    if not plan.block and spec(source_pv).get("volumeMode") not in (None, "Filesystem"):
        raise _source_error(
            source,
            "the source PVC and destination PVCs must have the same volume mode for cloning.  "
            "Source is Block, but new PVC requested Filesystem",
        )
    if plan.block and not source_block:
        raise _source_error(
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
    current = list((source_pvc.get("metadata") or {}).get("finalizers") or [])
    if keys.CLONE_SOURCE_FINALIZER in current:
        return None
    return [*current, keys.CLONE_SOURCE_FINALIZER]


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


def build_create_request(
    plan: ProvisionPlan,
    *,
    secrets_data: Mapping[str, str] | None = None,
    content_source: csi_pb2.VolumeContentSource | None = None,
    requirement: TopologyRequirement | None = None,
    mutable: Mapping[str, str] | None = None,
) -> csi_pb2.CreateVolumeRequest:
    """Assemble the CreateVolumeRequest from a plan and the looked-up pieces."""
    req = csi_pb2.CreateVolumeRequest(
        name=plan.name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=plan.required_bytes),
        volume_capabilities=list(plan.capabilities),
        parameters=plan.parameters,
        secrets=dict(secrets_data or {}),
        mutable_parameters=dict(mutable or {}),
    )
    if content_source is not None:
        req.volume_content_source.CopyFrom(content_source)
    if requirement is not None:
        req.accessibility_requirements.CopyFrom(requirement.to_proto())
    return req


def request_digest(req: csi_pb2.CreateVolumeRequest) -> str:
    """A stable digest of a request without its secrets (``sha256:<hex>``)."""
    copy = csi_pb2.CreateVolumeRequest()
    copy.CopyFrom(req)
    copy.ClearField("secrets")
    data = copy.SerializeToString(deterministic=True)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request_to_json(req: csi_pb2.CreateVolumeRequest) -> dict[str, Any]:
    """The request as JSON without secrets (for the intent record)."""
    copy = csi_pb2.CreateVolumeRequest()
    copy.CopyFrom(req)
    copy.ClearField("secrets")
    return json_format.MessageToDict(copy, preserving_proto_field_name=True)


def request_from_json(data: Mapping[str, Any]) -> csi_pb2.CreateVolumeRequest:
    """Parse a request written by :func:`request_to_json`.

    Raises:
        ValueError: when ``data`` is not such a request.
    """
    req = csi_pb2.CreateVolumeRequest()
    try:
        json_format.ParseDict(dict(data), req)
    except json_format.ParseError as err:
        raise ValueError(str(err)) from None
    return req


__all__ = [
    "DataSource",
    "ProvisionPlan",
    "ProvisionerOptions",
    "access_mode",
    "build_create_request",
    "check_capabilities",
    "clone_content_source",
    "clone_source_finalizers",
    "data_source",
    "make_volume_name",
    "mutable_parameters",
    "plan_provision",
    "request_digest",
    "request_from_json",
    "request_to_json",
    "requested_bytes",
    "resolve_fstype",
    "strip_reserved_parameters",
    "volume_capabilities",
]
