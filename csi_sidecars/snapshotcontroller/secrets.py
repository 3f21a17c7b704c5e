"""The Secret a content's CreateSnapshot/DeleteSnapshot use, resolved from the class parameters.

A VolumeSnapshotClass names the Secret through the parameters
``csi.storage.k8s.io/snapshotter-secret-name`` / ``-namespace`` (a VolumeGroupSnapshotClass
through ``group-snapshotter-secret-*``), either literally or as templates with ``${token}``
placeholders. The controller resolves them once, when it creates the content, and records the
result in the content's ``deletion-secret-name`` / ``-namespace`` annotations, where the sidecar
reads it. Only the reference is resolved here; the Secret is never read by the controller.

Tokens, as in Go (``os.Expand`` syntax, so ``$token`` works too):

* namespace: ``${volumesnapshotcontent.name}``, ``${volumesnapshot.namespace}``;
* name: those and ``${volumesnapshot.name}``;
* the group variants ``${volumegroupsnapshotcontent.name}``, ``${volumegroupsnapshot.namespace}``,
  ``${volumegroupsnapshot.name}``; without a group snapshot (member contents) only the content
  name resolves.

The error texts are Go's, so a status error reads the same with either controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from csi_sidecars.kube.secretrefs import SecretTemplateError, resolve_name, resolve_namespace
from csi_sidecars.kube.snapshots import (
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
)


class SecretRefError(SecretTemplateError):
    """The class parameters do not name a usable Secret; the message says why."""


@dataclass(frozen=True, slots=True)
class SecretParams:
    """Which pair of class parameters names the Secret (Go's ``secretParamsMap``)."""

    name: str
    name_key: str
    namespace_key: str


SNAPSHOTTER = SecretParams(
    "Snapshotter", PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY, PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY
)
GROUP_SNAPSHOTTER = SecretParams(
    "GroupSnapshotter",
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
)


def _templates(params: SecretParams, class_params: Mapping[str, str]) -> tuple[str, str] | None:
    has_name = params.name_key in class_params
    has_ns = params.namespace_key in class_params
    if has_name != has_ns:
        raise SecretRefError(
            f"either name and namespace for {params.name} secrets specified, Both must be specified"
        )
    if not has_name:
        return None
    name, ns = class_params[params.name_key], class_params[params.namespace_key]
    if not name or not ns:
        raise SecretRefError(
            f"{params.name} secrets specified in parameters but value of either namespace or "
            "name is empty"
        )
    return name, ns


def secret_reference(
    params: SecretParams,
    class_params: Mapping[str, str],
    *,
    content_name: str,
    owner_name: str | None,
    owner_namespace: str | None,
    group: bool = False,
) -> tuple[str, str] | None:
    """The (namespace, name) of the Secret, or None when the class names none.

    Args:
        params: which parameter pair (:data:`SNAPSHOTTER` or :data:`GROUP_SNAPSHOTTER`).
        class_params: the class's ``parameters``.
        content_name: the (group) content the Secret is for.
        owner_name: the (group) snapshot's name; None when there is none (member contents).
        owner_namespace: the (group) snapshot's namespace; None likewise.
        group: resolve the ``volumegroupsnapshot*`` tokens instead of ``volumesnapshot*``.

    Raises:
        SecretRefError: with Go's message.
    """
    try:
        found = _templates(params, class_params)
    except SecretRefError as err:
        raise SecretRefError(
            f"failed to get name and namespace template from params: {err}"
        ) from None
    if found is None:
        return None
    name_template, ns_template = found
    kind = "volumegroupsnapshot" if group else "volumesnapshot"
    ns_params = {f"{kind}content.name": content_name}
    if owner_namespace is not None:
        ns_params[f"{kind}.namespace"] = owner_namespace
    name_params = dict(ns_params)
    if owner_name is not None:
        name_params[f"{kind}.name"] = owner_name
    try:
        namespace = resolve_namespace(ns_template, ns_params)
        name = resolve_name(name_template, name_params)
    except SecretTemplateError as err:
        raise SecretRefError(str(err)) from None
    return namespace, name
