"""Building blocks of CRD schemas: typed fields, CEL rule shapes, columns, versions, the CRD."""

from __future__ import annotations

from typing import Any

PR_URL = "https://github.com/kubernetes-csi/external-snapshotter/pull/"
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
GROUP_SNAPSHOT_GROUP = "groupsnapshot.storage.k8s.io"
#: The Quantity syntax (resource.Quantity) the API server checks restoreSize against.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

Schema = dict[str, Any]
#: Marks an object that is replaced as a whole by server-side apply, never merged.
ATOMIC_MAP: dict[str, Any] = {"x-kubernetes-map-type": "atomic"}

#: CEL rules and messages, which are written on one line however long (so they can be grepped).
UNWRAPPED: set[str] = set()


# -- schema helpers ------------------------------------------------------------------------------


def rule(expression: str, message: str) -> dict[str, str]:
    """One x-kubernetes-validations entry."""
    UNWRAPPED.update((expression, message))
    return {"message": message, "rule": expression}


def immutable(message: str) -> dict[str, str]:
    """The value may not change once the object exists."""
    return rule("self == oldSelf", message)


def kept(field: str) -> dict[str, str]:
    """An optional field, once present, may not be removed."""
    return rule(f"!has(oldSelf.{field}) || has(self.{field})", f"{field} is required once set")


def exactly_one(first: str, second: str) -> dict[str, str]:
    """Exactly one of two optional fields is set."""
    return rule(
        f"(has(self.{first}) && !has(self.{second})) || (!has(self.{first}) && has(self.{second}))",
        f"exactly one of {first} and {second} must be set",
    )


def _with_rules(schema: Schema, rules: list[dict[str, str]] | tuple[dict[str, str], ...]) -> Schema:
    if rules:
        schema["x-kubernetes-validations"] = list(rules)
    return schema


def string(description: str, *rules: dict[str, str], **extra: Any) -> Schema:
    """A string field."""
    return _with_rules({"description": description, "type": "string", **extra}, rules)


def boolean(description: str) -> Schema:
    """A boolean field."""
    return {"description": description, "type": "boolean"}


def int64(description: str, **extra: Any) -> Schema:
    """A 64-bit integer field."""
    return {"description": description, "format": "int64", "type": "integer", **extra}


def timestamp(description: str) -> Schema:
    """An RFC 3339 time (metav1.Time)."""
    return {"description": description, "format": "date-time", "type": "string"}


def string_list(description: str, *rules: dict[str, str], **extra: Any) -> Schema:
    """A list of strings."""
    schema = {"description": description, "items": {"type": "string"}, "type": "array", **extra}
    return _with_rules(schema, rules)


def string_map(description: str, *rules: dict[str, str]) -> Schema:
    """A map of string to string."""
    schema = {"additionalProperties": {"type": "string"}, "description": description}
    return _with_rules({**schema, "type": "object"}, rules)


def obj(
    description: str,
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    rules: tuple[dict[str, str], ...] = (),
    **extra: Any,
) -> Schema:
    """An object with named properties."""
    schema: Schema = {"description": description, "properties": properties}
    if required:
        schema["required"] = sorted(required)
    schema["type"] = "object"
    schema.update(extra)
    return _with_rules(schema, rules)


def deletion_policy(description: str, *rules: dict[str, str]) -> Schema:
    """Delete or Retain."""
    return string(description, *rules, enum=["Delete", "Retain"])


def error_status(what: str) -> Schema:
    """The ``error`` status field: the last error seen while handling the object."""
    return obj(
        f"The last error met while {what}. Cleared on success; a retry may still be under way.",
        {
            "message": string("What went wrong. Must not contain sensitive data."),
            "time": timestamp("When the error was met."),
        },
    )


def object_reference(
    description: str, *rules: dict[str, str], atomic: bool = True, whose: str = "object"
) -> Schema:
    """A core/v1 ObjectReference."""
    extra: dict[str, Any] = {"x-kubernetes-map-type": "atomic"} if atomic else {}
    return obj(
        description,
        {
            "apiVersion": string(f"API version of the {whose}."),
            "fieldPath": string(
                "A path into the referenced object when the reference is to a part of it, such "
                'as "spec.containers{name}"; empty for the whole object.'
            ),
            "kind": string(f"Kind of the {whose}."),
            "name": string(f"Name of the {whose}."),
            "namespace": string(f"Namespace of the {whose}."),
            "resourceVersion": string(f"The resourceVersion of the {whose} this refers to."),
            "uid": string(f"UID of the {whose}; binds the reference to one incarnation."),
        },
        rules=rules,
        **extra,
    )


def label_selector(description: str, *rules: dict[str, str]) -> Schema:
    """A meta/v1 LabelSelector."""
    requirement = obj(
        "One requirement: a label key, an operator and values.",
        {
            "key": string("The label key the requirement applies to."),
            "operator": string(
                "How the key relates to the values: In, NotIn, Exists or DoesNotExist."
            ),
            "values": string_list(
                "The values for In and NotIn (non-empty); empty for Exists and DoesNotExist.",
                **{"x-kubernetes-list-type": "atomic"},
            ),
        },
        required=("key", "operator"),
    )
    return obj(
        description,
        {
            "matchExpressions": {
                "description": "Requirements that must all hold.",
                "items": requirement,
                "type": "array",
                "x-kubernetes-list-type": "atomic",
            },
            "matchLabels": string_map(
                "Labels that must all be present with these values (each is an In requirement "
                "with one value)."
            ),
        },
        rules=rules,
        **ATOMIC_MAP,
    )


def root(
    description: str,
    properties: dict[str, Schema],
    *,
    metadata: bool = True,
    required: tuple[str, ...] = (),
) -> Schema:
    """The top-level schema of a kind: apiVersion, kind, metadata, then its own fields."""
    common: dict[str, Schema] = {
        "apiVersion": string(
            "The versioned schema of this representation of the object; servers convert "
            "recognised schemas to their latest internal value."
        ),
        "kind": string("The REST resource this object represents, in CamelCase."),
    }
    if metadata:
        common["metadata"] = {"type": "object"}
    return obj(description, {**common, **properties}, required=required)


# -- printer columns and versions ----------------------------------------------------------------


def column(name: str, path: str, kind: str, description: str | None = None) -> dict[str, str]:
    """One additionalPrinterColumns entry."""
    entry = {"jsonPath": path, "name": name, "type": kind}
    if description:
        entry["description"] = description
    return entry


AGE = column("Age", ".metadata.creationTimestamp", "date")


def version(
    name: str,
    schema: Schema,
    columns: list[dict[str, str]],
    *,
    served: bool = True,
    storage: bool = False,
    status: bool = True,
    deprecated: bool = False,
    warning: str | None = None,
) -> dict[str, Any]:
    """One entry of spec.versions."""
    entry: dict[str, Any] = {"name": name, "served": served, "storage": storage}
    if deprecated:
        entry["deprecated"] = True
    if warning:
        entry["deprecationWarning"] = warning
    entry["schema"] = {"openAPIV3Schema": schema}
    entry["subresources"] = {"status": {}} if status else {}
    entry["additionalPrinterColumns"] = columns
    return entry


def crd(
    group: str,
    kind: str,
    plural: str,
    short_names: list[str],
    scope: str,
    approval_pr: int,
    versions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            "annotations": {"api-approved.kubernetes.io": f"{PR_URL}{approval_pr}"},
        },
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
            },
            "scope": scope,
            "versions": versions,
        },
    }
