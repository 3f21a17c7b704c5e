"""The CreateVolumeRequest, built exactly as external-provisioner's ``prepareProvision`` builds it.

Building happens in two pure steps around the executor's lookups:

1. :func:`plan_provision` checks the claim and StorageClass and computes everything that needs no
   I/O: name, capacity, fsType, capabilities, stripped parameters, every secret reference, the
   normalised data source and the VolumeAttributesClass name. Errors carry Go's text and state.
2. The executor then looks up what the plan asks for (clone source PVC and PV ->
   :func:`.sources.clone_content_source`; VolumeSnapshot and its content ->
   :func:`.snapshots.snapshot_content_source`; CSINode/Node -> :mod:`.topology`; the provisioner
   Secret's data; the VolumeAttributesClass -> :func:`.sources.mutable_parameters`) and calls
   :func:`build_create_request`.

The same claim, StorageClass, flags and lookups always give the same request, so a retry after a
timeout or a restart is identical and CSI idempotency (by name) prevents duplicate volumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from csi_sidecars.controller.driver import DriverInfo
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import annotations_of, name, namespace, spec, str_list, str_map, uid
from csi_sidecars.provisioner.decide import secrets, strings
from csi_sidecars.provisioner.decide.claims import is_block
from csi_sidecars.provisioner.decide.secrets import SecretParamError, SecretRef
from csi_sidecars.provisioner.decide.sources import DataSource, data_source, requested_bytes
from csi_sidecars.provisioner.decide.states import (
    Ignored,
    IgnoredError,
    ProvisionError,
    ProvisioningState,
)
from csi_sidecars.provisioner.decide.topology import TopologyRequirement

_Cap = csi_pb2.ControllerServiceCapability.RPC
_Mode = csi_pb2.VolumeCapability.AccessMode
FINISHED = ProvisioningState.FINISHED
NO_CHANGE = ProvisioningState.NO_CHANGE


@dataclass(frozen=True)
class ProvisionerOptions:
    """The driver (as it described itself at start-up) and the flags requests depend on.

    Capabilities are read from :attr:`driver` (the runner's
    :class:`~csi_sidecars.controller.DriverInfo`), never copied.
    """

    driver: DriverInfo
    volume_name_prefix: str = "pvc"
    volume_name_uuid_length: int = -1
    default_fstype: str = ""
    extra_create_metadata: bool = False
    topology_gate: bool = True
    vac_gate: bool = True

    @property
    def driver_name(self) -> str:
        """The driver's name (the provisioner name of its StorageClasses)."""
        return self.driver.name

    @property
    def supports_topology(self) -> bool:
        """Driver has VOLUME_ACCESSIBILITY_CONSTRAINTS and the Topology gate is on."""
        return self.topology_gate and self.driver.has_plugin(
            csi_pb2.PluginCapability.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS
        )

    def has(self, cap: int) -> bool:
        """Whether the driver reports a controller capability."""
        return self.driver.has_controller(cap)


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
        data_source: the normalised data source of a clone (PersistentVolumeClaim) or a
            restore (VolumeSnapshot); None without one (or for an external populator's kind).
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
    def restores(self) -> bool:
        """Whether the volume is restored from a VolumeSnapshot."""
        return self.data_source is not None and self.data_source.kind == strings.KIND_SNAPSHOT

    @property
    def clones(self) -> bool:
        """Whether the volume is a clone of a PersistentVolumeClaim."""
        return self.data_source is not None and self.data_source.kind == strings.KIND_PVC

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
        if key.startswith(strings.CSI_PARAMETER_PREFIX):
            if key not in secrets.RESERVED_PARAMETER_KEYS:
                raise ProvisionError(
                    "failed to strip CSI Parameters of prefixed keys: found unknown parameter "
                    f'key "{key}" with reserved namespace {strings.CSI_PARAMETER_PREFIX}',
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
        if key.lower() == strings.PARAM_DEPRECATED_FSTYPE or key == strings.PARAM_FSTYPE:
            fs_type = value
            found += 1
        if key.lower() == strings.PARAM_DEPRECATED_FSTYPE:
            deprecated = True
    if found > 1:
        raise ProvisionError(
            f'fstype specified in parameters with both "fstype" and "{strings.PARAM_FSTYPE}" keys',
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


def check_capabilities(
    opts: ProvisionerOptions, *, snapshot: bool = False, clone: bool = False, modify: bool = False
) -> None:
    """Check the driver can do what the claim needs (Go ``checkDriverCapabilities``).

    Raises:
        ProvisionError: (Finished) naming the missing capability.
    """
    if not opts.driver.has_controller_service:
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
        IgnoredError: data source of another kind (an external populator's job:
            :data:`~.states.Ignored.EXTERNAL_POPULATOR`, whose handling emits Go's event).
        ProvisionError: with Go's text and state (config errors Finished, secret template
            errors NoChange, as in Go).
    """
    if sc is None:
        raise ProvisionError("storage class was nil", FINISHED)
    source = data_source(pvc)
    clone = restore = False
    if source is not None:
        if not source.name:
            raise ProvisionError(f"the PVC source not found for PVC {name(pvc)}", FINISHED)
        if source.kind == strings.KIND_SNAPSHOT:
            if source.api_group != strings.SNAPSHOT_API_GROUP:
                raise ProvisionError(
                    "the PVC source does not belong to the right APIGroup. Expected "
                    f"{strings.SNAPSHOT_API_GROUP}, Got {source.api_group}",
                    FINISHED,
                )
            restore = True
        elif source.kind == strings.KIND_PVC:
            clone = True
        else:
            raise IgnoredError(
                f"data source ({source.kind}) is not handled by the provisioner, assuming an "
                "external populator will provision it",
                Ignored.EXTERNAL_POPULATOR,
            )
    vac_name = str(spec(pvc).get("volumeAttributesClassName") or "") if opts.vac_gate else ""
    check_capabilities(opts, snapshot=restore, clone=clone, modify=bool(vac_name))
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
        params[strings.PARAM_PVC_NAME] = name(pvc)
        params[strings.PARAM_PVC_NAMESPACE] = namespace(pvc)
        params[strings.PARAM_PV_NAME] = pv_name
    return ProvisionPlan(
        name=pv_name,
        required_bytes=required,
        fs_type=fs_type,
        block=is_block(pvc),
        capabilities=caps,
        parameters=params,
        secret_refs=refs,
        data_source=source if clone or restore else None,
        vac_name=vac_name,
    )


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
    "ProvisionPlan",
    "ProvisionerOptions",
    "access_mode",
    "build_create_request",
    "check_capabilities",
    "make_volume_name",
    "plan_provision",
    "request_digest",
    "request_from_json",
    "request_to_json",
    "resolve_fstype",
    "strip_reserved_parameters",
    "volume_capabilities",
]
