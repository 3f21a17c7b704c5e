"""Which Secret a snapshot call uses, and the plan step that reads it.

Two sources, as in Go:

* the content's annotations ``snapshot.storage.kubernetes.io/deletion-secret-{name,namespace}``
  (``groupsnapshot.storage.kubernetes.io/...`` on group contents), written by the
  snapshot-controller from the class: CreateSnapshot, DeleteSnapshot and the status checks of
  group members use them. Both annotations present and one empty is an error; one missing
  means no Secret.
* a class parameter pair with a template (``csi.storage.k8s.io/snapshotter-list-secret-*`` for
  ListSnapshots, ``.../group-snapshotter-get-secret-*`` for GetVolumeGroupSnapshot), where
  ``${volumesnapshotcontent.name}`` (``${volumegroupsnapshotcontent.name}``) may be used.

:func:`with_secret` is the plan step: a :class:`~csi_sidecars.controller.actions.Read` of the
Secret whose continuation gets the decoded data. Only names appear in messages, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from csi_sidecars.controller import actions as a
from csi_sidecars.kube.objects import SecretError, annotations_of, secret_data
from csi_sidecars.kube.resources import SECRETS, ApiError, JsonDict
from csi_sidecars.kube.secretrefs import SecretTemplateError, resolve_name, resolve_namespace
from csi_sidecars.snapshotter.errors import go_quote


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A Secret by namespace and name."""

    namespace: str
    name: str


class SecretRefError(SecretTemplateError):
    """The Secret reference cannot be worked out; the message is Go's."""


def annotation_ref(
    obj: Mapping[str, object], name_key: str, namespace_key: str, what: str, obj_name: str
) -> SecretRef | None:
    """The Secret named by the content's deletion-secret annotations (None: no Secret).

    Args:
        obj: the content.
        name_key: the name annotation.
        namespace_key: the namespace annotation.
        what: ``snapshot content`` or ``group snapshot content`` (for the message).
        obj_name: the content's name.

    Raises:
        SecretRefError: both annotations present and one of them empty.
    """
    ann = annotations_of(obj)
    if name_key not in ann or namespace_key not in ann:
        return None
    name, namespace = ann[name_key], ann[namespace_key]
    if not name or not namespace:
        raise SecretRefError(
            f"cannot retrieve secrets for {what} {go_quote(obj_name)}, err: secret name or "
            "namespace not specified"
        )
    return SecretRef(namespace, name)


def class_ref(
    parameters: Mapping[str, str],
    name_key: str,
    namespace_key: str,
    label: str,
    params: Mapping[str, str],
) -> SecretRef | None:
    """The Secret a class names through a parameter pair (Go ``GetSecretReference``).

    Args:
        parameters: the class parameters.
        name_key: the parameter with the name template.
        namespace_key: the parameter with the namespace template.
        label: Go's name of the pair (``SnapshotterList``) for messages.
        params: the template values (``volumesnapshotcontent.name``).

    Raises:
        SecretRefError: one key without the other, an empty value, an unknown token, or a
            result that is not a valid namespace or Secret name.
    """
    has_name, has_ns = name_key in parameters, namespace_key in parameters
    if has_name != has_ns:
        raise SecretRefError(
            "failed to get name and namespace template from params: either name and namespace "
            f"for {label} secrets specified, Both must be specified"
        )
    if not has_name:
        return None
    name_t, ns_t = parameters[name_key], parameters[namespace_key]
    if not name_t or not ns_t:
        raise SecretRefError(
            f"failed to get name and namespace template from params: {label} secrets specified "
            "in parameters but value of either namespace or name is empty"
        )
    try:
        namespace = resolve_namespace(ns_t, params)
        name = resolve_name(name_t, params)
    except SecretTemplateError as err:
        raise SecretRefError(str(err)) from None
    return SecretRef(namespace, name)


def with_secret(
    ref: SecretRef | None,
    then: Callable[[dict[str, str]], a.Plan],
    fail: Callable[[str], a.Plan],
) -> a.Plan:
    """Read the Secret ``ref`` and continue with its data (no Secret: at once, with ``{}``).

    ``fail`` gets Go's ``GetCredentials`` text for a missing or unreadable Secret, or the
    decoding error (which names the key, never a value).
    """
    if ref is None:
        return then({})
    where = f"error getting secret {ref.name} in namespace {ref.namespace}"

    def got(secret: JsonDict | None) -> a.Plan:
        if secret is None:
            return fail(f'{where}: secrets "{ref.name}" not found')
        try:
            data = secret_data(secret, f"{ref.namespace}/{ref.name}")
        except SecretError as err:
            return fail(str(err))
        return then(data)

    def error(exc: ApiError) -> a.Plan:
        return fail(f"{where}: {exc.message or exc}")

    return (a.Read(SECRETS, ref.name, ref.namespace, then=got, on_error=error),)
