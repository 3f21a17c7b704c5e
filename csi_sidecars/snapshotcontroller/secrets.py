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

import re
from collections.abc import Mapping
from dataclasses import dataclass

from csi_sidecars.kube.snapshots import (
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_GROUP_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAME_KEY,
    PREFIXED_SNAPSHOTTER_SECRET_NAMESPACE_KEY,
)
from csi_sidecars.snapshotcontroller.names import go_quote

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = set("*#$@!?-0123456789")


class SecretRefError(ValueError):
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


def is_dns1123_label(text: str) -> bool:
    """A valid namespace name."""
    return len(text) <= 63 and bool(_LABEL.match(text))


def is_dns1123_subdomain(text: str) -> bool:
    """A valid Secret name."""
    return len(text) <= 253 and bool(_SUBDOMAIN.match(text))


def _shell_name(s: str) -> tuple[str, int]:
    """Go's ``getShellName``: the name after a ``$`` and how many characters it used."""
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SPECIAL and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                return ("", 2) if i == 1 else (s[1:i], i + 1)
        return "", 1
    if s[0] in _SPECIAL:
        return s[0:1], 1
    i = 0
    while i < len(s) and (s[i].isascii() and (s[i].isalnum() or s[i] == "_")):
        i += 1
    return s[:i], i


def expand(template: str, params: Mapping[str, str]) -> str:
    """Resolve ``template`` like Go's ``os.Expand`` with a strict mapping.

    Raises:
        SecretRefError: ``invalid tokens: [...]`` naming every token ``params`` lacks.
    """
    out: list[str] = []
    missing: set[str] = set()
    i = j = 0
    while j < len(template):
        if template[j] == "$" and j + 1 < len(template):
            out.append(template[i:j])
            name, width = _shell_name(template[j + 1 :])
            if name == "" and width > 0:
                pass  # bad syntax: eaten, as in Go
            elif name == "":
                out.append("$")
            elif name in params:
                out.append(params[name])
            else:
                missing.add(name)
            j += width
            i = j + 1
        j += 1
    out.append(template[i:])
    if missing:
        listed = " ".join(go_quote(m) for m in sorted(missing))
        raise SecretRefError(f"invalid tokens: [{listed}]")
    return "".join(out)


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
    try:
        namespace = expand(ns_template, ns_params)
    except SecretRefError as err:
        raise SecretRefError(f"error resolving value {go_quote(ns_template)}: {err}") from None
    if not is_dns1123_label(namespace):
        if ns_template != namespace:
            raise SecretRefError(
                f"{go_quote(ns_template)} resolved to {go_quote(namespace)} which is not a valid "
                "namespace name"
            )
        raise SecretRefError(f"{go_quote(ns_template)} is not a valid namespace name")
    name_params = dict(ns_params)
    if owner_name is not None:
        name_params[f"{kind}.name"] = owner_name
    try:
        name = expand(name_template, name_params)
    except SecretRefError as err:
        raise SecretRefError(f"error resolving value {go_quote(name_template)}: {err}") from None
    if not is_dns1123_subdomain(name):
        if name_template != name:
            raise SecretRefError(
                f"{go_quote(name_template)} resolved to {go_quote(name)} which is not a valid "
                "secret name"
            )
        raise SecretRefError(f"{go_quote(name_template)} is not a valid secret name")
    return namespace, name
