"""StorageClass secret parameters: which secret each CSI call uses, with template expansion.

A StorageClass names up to seven secrets (provisioner, controller-publish, node-stage,
node-publish, controller-expand, node-expand, controller-modify) with
``csi.storage.k8s.io/<kind>-secret-name`` / ``-namespace``; four kinds also accept deprecated
un-prefixed keys (``csiProvisionerSecretName`` ...). A kind without its own keys falls back to
``csi.storage.k8s.io/secret-name`` / ``-namespace``. Values are templates expanded like Go's
``os.Expand`` (``$x`` and ``${x}``):

* namespace templates may use ``${pv.name}`` and ``${pvc.namespace}``;
* name templates may use ``${pv.name}``, ``${pvc.name}``, ``${pvc.namespace}`` and
  ``${pvc.annotations['<key>']}``.

The resolved namespace must be a DNS-1123 label and the name a DNS-1123 subdomain. Nothing here
reads a Secret; the executor GETs only the provisioner secret's data, at provisioning time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.kube.objects import annotations_of, name, namespace, str_map
from csi_sidecars.kube.secretrefs import (
    SecretTemplateError,
    resolve_name,
    resolve_namespace,
)
from csi_sidecars.provisioner.decide.strings import CSI_PARAMETER_PREFIX


@dataclass(frozen=True)
class SecretParams:
    """The StorageClass keys of one secret kind."""

    kind: str
    name_key: str
    namespace_key: str
    deprecated_name_key: str = ""
    deprecated_namespace_key: str = ""


def _prefixed(kind: str) -> tuple[str, str]:
    return (
        f"{CSI_PARAMETER_PREFIX}{kind}-secret-name",
        f"{CSI_PARAMETER_PREFIX}{kind}-secret-namespace",
    )


DEFAULT = SecretParams(
    "Default", f"{CSI_PARAMETER_PREFIX}secret-name", f"{CSI_PARAMETER_PREFIX}secret-namespace"
)
PROVISIONER = SecretParams(
    "Provisioner", *_prefixed("provisioner"), "csiProvisionerSecretName",
    "csiProvisionerSecretNamespace",
)  # fmt: skip
CONTROLLER_PUBLISH = SecretParams(
    "ControllerPublish", *_prefixed("controller-publish"), "csiControllerPublishSecretName",
    "csiControllerPublishSecretNamespace",
)  # fmt: skip
NODE_STAGE = SecretParams(
    "NodeStage", *_prefixed("node-stage"), "csiNodeStageSecretName",
    "csiNodeStageSecretNamespace",
)  # fmt: skip
NODE_PUBLISH = SecretParams(
    "NodePublish", *_prefixed("node-publish"), "csiNodePublishSecretName",
    "csiNodePublishSecretNamespace",
)  # fmt: skip
CONTROLLER_EXPAND = SecretParams("ControllerExpand", *_prefixed("controller-expand"))
NODE_EXPAND = SecretParams("NodeExpand", *_prefixed("node-expand"))
CONTROLLER_MODIFY = SecretParams("ControllerModify", *_prefixed("controller-modify"))

ALL_KINDS = (
    PROVISIONER,
    CONTROLLER_PUBLISH,
    NODE_STAGE,
    NODE_PUBLISH,
    CONTROLLER_EXPAND,
    NODE_EXPAND,
    CONTROLLER_MODIFY,
)

#: Every ``csi.storage.k8s.io/`` StorageClass key the provisioner understands (stripped from
#: CreateVolume parameters); any other key in that namespace is an error.
RESERVED_PARAMETER_KEYS = frozenset(
    {f"{CSI_PARAMETER_PREFIX}fstype", DEFAULT.name_key, DEFAULT.namespace_key}
    | {p.name_key for p in ALL_KINDS}
    | {p.namespace_key for p in ALL_KINDS}
)


class SecretParamError(SecretTemplateError):
    """The StorageClass secret parameters or their templates are invalid."""


@dataclass(frozen=True)
class SecretRef:
    """A resolved reference to a Secret."""

    name: str
    namespace: str

    def to_json(self) -> dict[str, str]:
        """The ``{name, namespace}`` object used in PV secret refs."""
        return {"name": self.name, "namespace": self.namespace}


def deprecation_warning(deprecated: str, new: str) -> str:
    """The log line Go prints when a deprecated StorageClass key is used."""
    phrase = f', please use "{new}" instead' if new else ""
    return f'"{deprecated}" is deprecated and will be removed in a future release{phrase}'


def secret_templates(params: SecretParams, sc_params: Mapping[str, str]) -> tuple[str, str] | None:
    """The (name, namespace) templates of one secret kind, or None if the kind has none.

    Raises:
        SecretParamError: both old and new keys given, only one of name/namespace, or an
            empty value.
    """
    num_name = num_namespace = 0
    name_tpl = namespace_tpl = ""
    for key, is_name in (
        (params.deprecated_name_key, True),
        (params.deprecated_namespace_key, False),
        (params.name_key, True),
        (params.namespace_key, False),
    ):
        if key and key in sc_params:
            if is_name:
                name_tpl = sc_params[key]
                num_name += 1
            else:
                namespace_tpl = sc_params[key]
                num_namespace += 1
    if num_name > 1 or num_namespace > 1:
        raise SecretParamError(
            f'{params.kind} secrets specified in parameters with both "csi" and '
            f'"{CSI_PARAMETER_PREFIX}" keys'
        )
    if num_name != num_namespace:
        raise SecretParamError(
            f"either name and namespace for {params.kind} secrets specified, Both must be specified"
        )
    if num_name == 0:
        return None
    if not name_tpl or not namespace_tpl:
        raise SecretParamError(
            f"{params.kind} secrets specified in parameters but value of either namespace "
            "or name is empty"
        )
    return name_tpl, namespace_tpl


def provisioner_secret(
    pvc: Mapping[str, Any], sc: Mapping[str, Any] | None, volume_name: str
) -> SecretRef | None:
    """The provisioner Secret of ``sc`` for the claim (None when none or unresolvable)."""
    if sc is None:
        return None
    try:
        return secret_reference(
            PROVISIONER,
            sc_params=str_map(sc.get("parameters")),
            pv_name=volume_name,
            pvc_name=name(pvc),
            pvc_namespace=namespace(pvc),
            pvc_annotations=annotations_of(pvc),
        )
    except SecretParamError:
        return None


def secret_reference(
    params: SecretParams,
    *,
    sc_params: Mapping[str, str],
    pv_name: str,
    pvc_name: str,
    pvc_namespace: str,
    pvc_annotations: Mapping[str, str] | None,
) -> SecretRef | None:
    """Resolve the Secret one kind of CSI call uses (Go ``getSecretReference``).

    Args:
        params: the secret kind.
        sc_params: the StorageClass parameters.
        pv_name: the PV (and volume) name, for ``${pv.name}``.
        pvc_name: for ``${pvc.name}``.
        pvc_namespace: for ``${pvc.namespace}``.
        pvc_annotations: for ``${pvc.annotations['key']}``; None when unknown (deletion of old
            PVs), which makes such tokens invalid.

    Returns:
        The reference, or None when neither the kind nor the default keys are set.

    Raises:
        SecretParamError: with Go's error text.
    """
    try:
        templates = secret_templates(params, sc_params)
    except SecretParamError as err:
        raise SecretParamError(
            f"failed to get name and namespace template from params: {err}"
        ) from None
    if templates is None:
        try:
            templates = secret_templates(DEFAULT, sc_params)
        except SecretParamError as err:
            raise SecretParamError(
                f"failed to get default name and namespace template from params: {err}"
            ) from None
    if templates is None:
        return None
    name_tpl, namespace_tpl = templates

    namespace_params = {"pv.name": pv_name, "pvc.namespace": pvc_namespace}
    name_params = {"pv.name": pv_name, "pvc.name": pvc_name, "pvc.namespace": pvc_namespace}
    for key, value in (pvc_annotations or {}).items():
        name_params[f"pvc.annotations['{key}']"] = value
    try:
        namespace = resolve_namespace(namespace_tpl, namespace_params)
        name = resolve_name(name_tpl, name_params)
    except SecretTemplateError as err:
        raise SecretParamError(str(err)) from None
    return SecretRef(name=name, namespace=namespace)
