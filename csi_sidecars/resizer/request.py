"""The CSI requests the resizer sends, built from the PV (and the class) alone.

Deterministic: the same PV and size always give the same ``ControllerExpandVolumeRequest``
(volume handle, ``required_bytes`` only, the PV's capability), so a repeat after a timeout or a
restart asks the driver for exactly the same thing. Secrets are filled in by the caller from the
Secret the reference names; they never appear in ``repr`` (the proto fields are ``csi_secret``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import annotations_of, dig, name, namespace, spec
from csi_sidecars.resizer import names

Mode = csi_pb2.VolumeCapability.AccessMode

RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"


class RequestError(ValueError):
    """The PV cannot be turned into a valid request (the message says why)."""


def access_mode(modes: Iterable[str], single_node_multi_writer: bool) -> int:
    """The CSI access mode of the PV's access modes (csi-lib-utils ``ToCSIAccessMode``).

    Raises:
        RequestError: a combination CSI cannot express.
    """
    listed = list(modes)
    unique = set(listed)
    if RWOP in unique:
        if len(unique) > 1:
            raise RequestError(
                "Kubernetes does not support use of ReadWriteOncePod with other access modes "
                "on the same PersistentVolume"
            )
        return (
            Mode.SINGLE_NODE_SINGLE_WRITER if single_node_multi_writer else Mode.SINGLE_NODE_WRITER
        )
    if RWX in unique:
        return Mode.MULTI_NODE_MULTI_WRITER
    if ROX in unique and RWO in unique:
        raise RequestError(
            "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume"
        )
    if ROX in unique:
        return Mode.MULTI_NODE_READER_ONLY
    if RWO in unique:
        return (
            Mode.SINGLE_NODE_MULTI_WRITER if single_node_multi_writer else Mode.SINGLE_NODE_WRITER
        )
    raise RequestError(f"unsupported AccessMode combination: [{' '.join(listed)}]")


def volume_capability(pv: Mapping[str, Any], single_node_multi_writer: bool) -> Any:
    """The PV's ``VolumeCapability``: Block, or Mount with its fsType and mount options.

    Raises:
        RequestError: the access modes cannot be expressed in CSI.
    """
    pv_spec = spec(pv)
    mode = access_mode(pv_spec.get("accessModes") or [], single_node_multi_writer)
    if pv_spec.get("volumeMode") == "Block":
        return csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(),
            access_mode=Mode(mode=mode),  # type: ignore[arg-type]
        )
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(
            fs_type=str(dig(pv, "spec", "csi", "fsType") or ""),
            mount_flags=[str(o) for o in pv_spec.get("mountOptions") or []],
        ),
        access_mode=Mode(mode=mode),  # type: ignore[arg-type]
    )


def expand_request(
    pv: Mapping[str, Any], required_bytes: int, capability: Any, secrets: Mapping[str, str]
) -> Any:
    """``ControllerExpandVolumeRequest`` for the PV (no ``limit_bytes``, as in Go)."""
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=str(dig(pv, "spec", "csi", "volumeHandle") or ""),
        capacity_range=csi_pb2.CapacityRange(required_bytes=required_bytes),
        volume_capability=capability,
        secrets=dict(secrets),
    )


def modify_parameters(
    vac: Mapping[str, Any], pvc: Mapping[str, Any], pv: Mapping[str, Any], extra_metadata: bool
) -> dict[str, str]:
    """The class's parameters, plus PVC/PV names with ``--extra-modify-metadata``."""
    raw = vac.get("parameters")
    params = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    if extra_metadata:
        params[names.PVC_NAME_KEY] = name(pvc)
        params[names.PVC_NAMESPACE_KEY] = namespace(pvc)
        params[names.PV_NAME_KEY] = name(pv)
    return params


def modify_request(
    pv: Mapping[str, Any], parameters: Mapping[str, str], secrets: Mapping[str, str]
) -> Any:
    """``ControllerModifyVolumeRequest`` for the PV."""
    return csi_pb2.ControllerModifyVolumeRequest(
        volume_id=str(dig(pv, "spec", "csi", "volumeHandle") or ""),
        mutable_parameters=dict(parameters),
        secrets=dict(secrets),
    )


def expand_secret_ref(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    """``spec.csi.controllerExpandSecretRef`` as (namespace, name), or None."""
    ref = dig(pv, "spec", "csi", "controllerExpandSecretRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    return str(ref.get("namespace") or ""), str(ref["name"])


def modify_secret_ref(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    """The modify Secret: the PV's modify annotations, else ``controllerExpandSecretRef``."""
    ann = annotations_of(pv)
    sname, sns = ann.get(names.MODIFY_SECRET_NAME, ""), ann.get(names.MODIFY_SECRET_NAMESPACE, "")
    if sname and sns:
        return sns, sname
    return expand_secret_ref(pv)
