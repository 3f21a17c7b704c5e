"""groupsnapshot.storage.k8s.io: VolumeGroupSnapshot, its Content and its Class.

Each kind serves v1 (GA in v8.6.0), v1beta2 (still the storage version during the migration) and
v1beta1 (deprecated). v1 and v1beta2 are identical, so no conversion is configured; v1beta1 has
fewer immutability rules and lists members as handle pairs instead of snapshot infos.
"""

from __future__ import annotations

from typing import Any

from crdgen.schema import (
    AGE,
    GROUP_SNAPSHOT_GROUP,
    Schema,
    boolean,
    column,
    crd,
    deletion_policy,
    error_status,
    exactly_one,
    immutable,
    int64,
    kept,
    label_selector,
    obj,
    object_reference,
    root,
    rule,
    string,
    string_list,
    timestamp,
    version,
)
from crdgen.snapshot import CLASS_COLUMNS, class_schema

GROUP_VERSIONS = ("v1", "v1beta1", "v1beta2")
#: v1 went GA in v8.6.0 but v1beta2 stays the storage version during the migration.
GROUP_STORAGE = "v1beta2"


def group_versions(make: Any, columns: list[dict[str, str]], status: bool = True) -> list[Any]:
    """v1, v1beta1 (served, deprecated) and v1beta2 (storage); ``make(beta1)`` builds a schema."""
    return [
        version(
            name,
            make(name == "v1beta1"),
            columns,
            storage=name == GROUP_STORAGE,
            status=status,
            deprecated=name == "v1beta1",
        )
        for name in GROUP_VERSIONS
    ]


def volume_group_snapshot_schema(beta1: bool) -> Schema:
    """VolumeGroupSnapshot (the same in every version but one status rule)."""
    source = obj(
        "Which volumes the group snapshot is of: the claims a label selector picks (dynamic) "
        "or an existing VolumeGroupSnapshotContent (pre-provisioned). Exactly one is set; "
        "neither can change.",
        {
            "selector": label_selector(
                "Selects the PersistentVolumeClaims, in the group snapshot's namespace, to "
                "snapshot together.",
                immutable("selector is immutable"),
            ),
            "volumeGroupSnapshotContentName": string(
                "Name of a pre-provisioned VolumeGroupSnapshotContent that stands for an existing "
                "group snapshot on the storage system.",
                immutable("volumeGroupSnapshotContentName is immutable"),
            ),
        },
        rules=(
            kept("selector"),
            kept("volumeGroupSnapshotContentName"),
            exactly_one("selector", "volumeGroupSnapshotContentName"),
        ),
    )
    spec = obj(
        "What the user asks for. Required.",
        {
            "source": source,
            "volumeGroupSnapshotClassName": string(
                "The VolumeGroupSnapshotClass to use. When unset, the default class of the "
                "volumes' driver is filled in. An empty string is refused.",
                rule(
                    "size(self) > 0",
                    "volumeGroupSnapshotClassName must not be the empty string when set",
                ),
            ),
        },
        required=("source",),
    )
    bound_rules = (
        () if beta1 else (immutable("boundVolumeGroupSnapshotContentName is immutable once set"),)
    )
    status = obj(
        "What the snapshot controller observed. Set by the system.",
        {
            "boundVolumeGroupSnapshotContentName": string(
                "Name of the VolumeGroupSnapshotContent this group snapshot is bound to; cannot "
                "change once set.",
                *bound_rules,
            ),
            "creationTime": timestamp(
                "When the storage system cut the group snapshot (the point in time of all its "
                "members)."
            ),
            "error": error_status("creating or binding the group snapshot"),
            "readyToUse": boolean(
                "True once every member snapshot can be used to provision a volume."
            ),
        },
    )
    return root(
        "A user's request for a crash-consistent snapshot of several volumes at once, or for the "
        "use of an existing one. Each member volume gets its own VolumeSnapshot.",
        {"spec": spec, "status": status},
        required=("spec",),
    )


VOLUME_GROUP_SNAPSHOT_COLUMNS = [
    column(
        "ReadyToUse",
        ".status.readyToUse",
        "boolean",
        "Whether every member snapshot can be restored from.",
    ),
    column(
        "VolumeGroupSnapshotClass",
        ".spec.volumeGroupSnapshotClassName",
        "string",
        "The VolumeGroupSnapshotClass asked for.",
    ),
    column(
        "VolumeGroupSnapshotContent",
        ".status.boundVolumeGroupSnapshotContentName",
        "string",
        "The VolumeGroupSnapshotContent it is bound to.",
    ),
    column(
        "CreationTime",
        ".status.creationTime",
        "date",
        "When the storage system cut the group snapshot.",
    ),
    AGE,
]


def volume_group_snapshot_content_schema(beta1: bool) -> Schema:
    """VolumeGroupSnapshotContent; v1beta1 has fewer rules and the old member list."""

    def cel(*rules: dict[str, str]) -> tuple[dict[str, str], ...]:
        return () if beta1 else rules

    source = obj(
        "The group snapshot's origin: the volumes to snapshot (dynamic) or the handles of an "
        "existing group snapshot (pre-provisioned). Exactly one is set; neither can change.",
        {
            "groupSnapshotHandles": obj(
                "The handles of an existing group snapshot on the storage system.",
                {
                    "volumeGroupSnapshotHandle": string(
                        "The CSI group_snapshot_id of the group snapshot."
                    ),
                    "volumeSnapshotHandles": string_list(
                        "The CSI snapshot_ids of its member snapshots."
                    ),
                },
                required=("volumeGroupSnapshotHandle", "volumeSnapshotHandles"),
                rules=(immutable("groupSnapshotHandles is immutable"),),
            ),
            "volumeHandles": string_list(
                "The CSI volume_ids of the volumes to snapshot together.",
                immutable("volumeHandles is immutable"),
            ),
        },
        rules=(
            kept("volumeHandles"),
            kept("groupSnapshotHandles"),
            exactly_one("volumeHandles", "groupSnapshotHandles"),
        ),
    )
    ref_rules = [
        rule(
            "has(self.name) && has(self.__namespace__)",
            "both volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace must be set",
        ),
        *cel(
            rule(
                "self.name == oldSelf.name && self.__namespace__ == oldSelf.__namespace__",
                "volumeGroupSnapshotRef.name and volumeGroupSnapshotRef.namespace are immutable",
            ),
            rule(
                "!has(oldSelf.uid) || (has(self.uid) && self.uid == oldSelf.uid)",
                "volumeGroupSnapshotRef.uid is immutable once set",
            ),
        ),
    ]
    spec = obj(
        "The group snapshot on the storage system and its binding. Required.",
        {
            "deletionPolicy": deletion_policy(
                "What happens to the group snapshot on the storage system when this content is "
                "deleted: Delete removes it, Retain keeps it. May be changed at any time."
            ),
            "driver": string(
                "Name of the CSI driver that owns the group snapshot; cannot change once set.",
                *cel(immutable("driver is immutable once set")),
            ),
            "source": source,
            "volumeGroupSnapshotClassName": string(
                "The VolumeGroupSnapshotClass the group snapshot was created with; cannot "
                "change once set.",
                *cel(immutable("volumeGroupSnapshotClassName is immutable once set")),
            ),
            "volumeGroupSnapshotRef": object_reference(
                "The VolumeGroupSnapshot this content is bound to. Name and namespace are "
                "required and fixed; the UID cannot change once set.",
                *ref_rules,
                whose="VolumeGroupSnapshot",
            ),
        },
        required=("deletionPolicy", "driver", "source", "volumeGroupSnapshotRef"),
    )
    if beta1:
        members: tuple[str, Schema] = (
            "volumeSnapshotHandlePairList",
            {
                "description": "The volume and snapshot handle of every member (v1beta1 form).",
                "items": obj(
                    "One member of the group snapshot.",
                    {
                        "snapshotHandle": string("The CSI snapshot_id of the member snapshot."),
                        "volumeHandle": string("The CSI volume_id of the member volume."),
                    },
                    required=("snapshotHandle", "volumeHandle"),
                ),
                "type": "array",
            },
        )
    else:
        members = (
            "volumeSnapshotInfoList",
            {
                "description": "One entry per member snapshot, as the driver reported it.",
                "items": obj(
                    "One member of the group snapshot.",
                    {
                        "creationTime": int64(
                            "When the member was cut, in nanoseconds since the Unix epoch."
                        ),
                        "readyToUse": boolean("True once the member can be restored from."),
                        "restoreSize": int64(
                            "The smallest volume, in bytes, it can be restored to."
                        ),
                        "snapshotHandle": string("The CSI snapshot_id of the member snapshot."),
                        "volumeHandle": string("The CSI volume_id of the member volume."),
                    },
                ),
                "type": "array",
            },
        )
    status = obj(
        "What the snapshotter sidecar observed. Set by the system.",
        {
            "creationTime": timestamp("When the storage system cut the group snapshot."),
            "error": error_status("creating the group snapshot"),
            "readyToUse": boolean("True once every member can be used to provision a volume."),
            "volumeGroupSnapshotHandle": string(
                "The CSI group_snapshot_id the driver returned; cannot change once set.",
                *cel(immutable("volumeGroupSnapshotHandle is immutable once set")),
            ),
            members[0]: members[1],
        },
    )
    return root(
        "A group snapshot on the storage system, bound to one VolumeGroupSnapshot. Cluster-scoped.",
        {"spec": spec, "status": status},
        required=("spec",),
    )


VOLUME_GROUP_SNAPSHOT_CONTENT_COLUMNS = [
    column(
        "ReadyToUse",
        ".status.readyToUse",
        "boolean",
        "Whether every member snapshot can be restored from.",
    ),
    column(
        "DeletionPolicy",
        ".spec.deletionPolicy",
        "string",
        "Delete or Retain the storage group snapshot with this object.",
    ),
    column("Driver", ".spec.driver", "string", "The CSI driver of the group snapshot."),
    column(
        "VolumeGroupSnapshotClass",
        ".spec.volumeGroupSnapshotClassName",
        "string",
        "The class the group snapshot was created with.",
    ),
    column(
        "VolumeGroupSnapshotNamespace",
        ".spec.volumeGroupSnapshotRef.namespace",
        "string",
        "The namespace of the VolumeGroupSnapshot it is bound to.",
    ),
    column(
        "VolumeGroupSnapshot",
        ".spec.volumeGroupSnapshotRef.name",
        "string",
        "The VolumeGroupSnapshot it is bound to.",
    ),
    AGE,
]


def group_snapshot_crds() -> list[dict[str, Any]]:
    """The three groupsnapshot.storage.k8s.io CRDs."""
    g = GROUP_SNAPSHOT_GROUP
    return [
        crd(
            g,
            "VolumeGroupSnapshot",
            "volumegroupsnapshots",
            ["vgs"],
            "Namespaced",
            1337,
            group_versions(volume_group_snapshot_schema, VOLUME_GROUP_SNAPSHOT_COLUMNS),
        ),
        crd(
            g,
            "VolumeGroupSnapshotContent",
            "volumegroupsnapshotcontents",
            ["vgsc", "vgscs"],
            "Cluster",
            1337,
            group_versions(
                volume_group_snapshot_content_schema, VOLUME_GROUP_SNAPSHOT_CONTENT_COLUMNS
            ),
        ),
        crd(
            g,
            "VolumeGroupSnapshotClass",
            "volumegroupsnapshotclasses",
            ["vgsclass", "vgsclasses"],
            "Cluster",
            1337,
            group_versions(
                lambda beta1: class_schema(
                    "VolumeGroupSnapshotClass", "VolumeGroupSnapshot", True, not beta1, True
                ),
                CLASS_COLUMNS,
                status=False,
            ),
        ),
    ]
