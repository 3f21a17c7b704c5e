"""snapshot.storage.k8s.io: VolumeSnapshot, VolumeSnapshotContent, VolumeSnapshotClass.

Each kind serves v1 and still lists the retired v1beta1 (not served, deprecated): the API server
refuses a CRD update that drops a version named in its status.storedVersions, so installations
that once stored v1beta1 can still upgrade. v1beta1 has no CEL rules and fewer fields.
"""

from __future__ import annotations

from typing import Any

from crdgen.schema import (
    AGE,
    QUANTITY_PATTERN,
    SNAPSHOT_GROUP,
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
    obj,
    object_reference,
    root,
    rule,
    string,
    string_map,
    timestamp,
    version,
)


def beta1_snapshot_version(kind: str, schema: Schema, columns: list[dict[str, str]]) -> Any:
    """The retired snapshot.storage.k8s.io/v1beta1: kept in the CRD, no longer served."""
    return version(
        "v1beta1",
        schema,
        columns,
        served=False,
        deprecated=True,
        warning=f"{SNAPSHOT_GROUP}/v1beta1 {kind} is deprecated; use {SNAPSHOT_GROUP}/v1 {kind}",
        status="status" in schema["properties"],
    )


def volume_snapshot_schema(v1: bool) -> Schema:
    """VolumeSnapshot; ``v1`` False gives the v1beta1 shape (no CEL rules, fewer fields)."""

    def cel(*rules: dict[str, str]) -> tuple[dict[str, str], ...]:
        return rules if v1 else ()

    source = obj(
        "Where the snapshot comes from: a claim to snapshot now (dynamic) or an existing "
        "VolumeSnapshotContent (pre-provisioned). Exactly one is set; neither can change.",
        {
            "persistentVolumeClaimName": string(
                "Name of the PersistentVolumeClaim, in the snapshot's namespace, to take the "
                "snapshot of. Set for a dynamically created snapshot.",
                *cel(immutable("persistentVolumeClaimName is immutable")),
            ),
            "volumeSnapshotContentName": string(
                "Name of a pre-provisioned VolumeSnapshotContent that stands for an existing "
                "snapshot on the storage system.",
                *cel(immutable("volumeSnapshotContentName is immutable")),
            ),
        },
        rules=cel(
            kept("persistentVolumeClaimName"),
            kept("volumeSnapshotContentName"),
            exactly_one("volumeSnapshotContentName", "persistentVolumeClaimName"),
        ),
    )
    spec = obj(
        "What the user asks for. Required.",
        {
            "source": source,
            "volumeSnapshotClassName": string(
                "The VolumeSnapshotClass to use. When unset, the default class of the source "
                "volume's driver is filled in; when no class applies, dynamic creation fails. "
                "An empty string is refused.",
                *cel(
                    rule(
                        "size(self) > 0",
                        "volumeSnapshotClassName must not be the empty string when set",
                    )
                ),
            ),
        },
        required=("source",),
    )
    status: dict[str, Schema] = {
        "boundVolumeSnapshotContentName": string(
            "Name of the VolumeSnapshotContent this snapshot is bound to. Binding holds only "
            "when the content points back at this snapshot as well."
        ),
        "creationTime": timestamp(
            "When the storage system cut the snapshot (the point in time it represents)."
        ),
        "error": error_status("creating or binding the snapshot"),
        "readyToUse": boolean("True once the snapshot can be used to provision a volume."),
        "restoreSize": string(
            "The smallest volume that can be restored from this snapshot, as a quantity; a "
            "restore to a smaller size fails. Unset when the size is unknown.",
            pattern=QUANTITY_PATTERN,
            **{"x-kubernetes-int-or-string": True},
        ),
    }
    if v1:
        status["volumeGroupSnapshotName"] = string(
            "Name of the VolumeGroupSnapshot this snapshot is a member of, if any."
        )
    return root(
        "A user's request for a snapshot of a volume, or for the use of an existing one.",
        {
            "spec": spec,
            "status": obj("What the snapshot controller observed. Set by the system.", status),
        },
        metadata=v1,
        required=("spec",),
    )


VOLUME_SNAPSHOT_COLUMNS = [
    column(
        "ReadyToUse", ".status.readyToUse", "boolean", "Whether the snapshot can be restored from."
    ),
    column(
        "SourcePVC",
        ".spec.source.persistentVolumeClaimName",
        "string",
        "The claim the snapshot is taken of (dynamic snapshots).",
    ),
    column(
        "SourceSnapshotContent",
        ".spec.source.volumeSnapshotContentName",
        "string",
        "The pre-provisioned content the snapshot uses.",
    ),
    column("RestoreSize", ".status.restoreSize", "string", "The smallest volume a restore needs."),
    column(
        "SnapshotClass",
        ".spec.volumeSnapshotClassName",
        "string",
        "The VolumeSnapshotClass asked for.",
    ),
    column(
        "SnapshotContent",
        ".status.boundVolumeSnapshotContentName",
        "string",
        "The VolumeSnapshotContent it is bound to.",
    ),
    column(
        "CreationTime", ".status.creationTime", "date", "When the storage system cut the snapshot."
    ),
    AGE,
]


def volume_snapshot_content_schema(v1: bool) -> Schema:
    """VolumeSnapshotContent; ``v1`` False gives the v1beta1 shape."""

    def cel(*rules: dict[str, str]) -> tuple[dict[str, str], ...]:
        return rules if v1 else ()

    source = obj(
        "The snapshot's origin on the storage system: a volume to snapshot (dynamic) or the "
        "handle of an existing snapshot (pre-provisioned). Exactly one is set; neither can "
        "change.",
        {
            "snapshotHandle": string(
                "The CSI snapshot_id of an existing snapshot on the storage system.",
                *cel(immutable("snapshotHandle is immutable")),
            ),
            "volumeHandle": string(
                "The CSI volume_id of the volume to take the snapshot of.",
                *cel(immutable("volumeHandle is immutable")),
            ),
        },
        rules=cel(
            kept("volumeHandle"),
            kept("snapshotHandle"),
            exactly_one("volumeHandle", "snapshotHandle"),
        ),
    )
    spec_fields: dict[str, Schema] = {
        "deletionPolicy": deletion_policy(
            "What happens to the snapshot on the storage system when this content is deleted "
            "(after its VolumeSnapshot went away): Delete removes it, Retain keeps it. May be "
            "changed at any time."
        ),
        "driver": string("Name of the CSI driver that owns the snapshot."),
        "source": source,
    }
    if v1:
        spec_fields["sourceVolumeMode"] = string(
            "The volume mode (Filesystem or Block) of the volume the snapshot was taken of; "
            "unknown when unset. Once set it can be neither changed nor removed.",
            immutable("sourceVolumeMode is immutable"),
        )
    spec_fields["volumeSnapshotClassName"] = string(
        "The VolumeSnapshotClass the snapshot was created with; may be empty for a "
        "pre-provisioned snapshot."
    )
    spec_fields["volumeSnapshotRef"] = object_reference(
        "The VolumeSnapshot this content is bound to. Name and namespace are required; the UID "
        "pins the binding once set.",
        *cel(
            rule(
                "has(self.name) && has(self.__namespace__)",
                "both spec.volumeSnapshotRef.name and spec.volumeSnapshotRef.namespace must be set",
            )
        ),
        atomic=v1,
        whose="VolumeSnapshot",
    )
    spec = obj(
        "The snapshot on the storage system and its binding. Required.",
        spec_fields,
        required=("deletionPolicy", "driver", "source", "volumeSnapshotRef"),
        rules=cel(kept("sourceVolumeMode")),
    )
    status: dict[str, Schema] = {
        "creationTime": int64(
            "When the storage system cut the snapshot, in nanoseconds since the Unix epoch."
        ),
        "error": error_status("creating the snapshot"),
        "readyToUse": boolean("True once the snapshot can be used to provision a volume."),
        "restoreSize": int64(
            "The smallest volume, in bytes, that can be restored from it.", minimum=0
        ),
        "snapshotHandle": string("The CSI snapshot_id the driver returned."),
    }
    if v1:
        status["volumeGroupSnapshotHandle"] = string(
            "The CSI group_snapshot_id of the group snapshot this snapshot belongs to, if any."
        )
    return root(
        "A snapshot on the storage system, bound to one VolumeSnapshot. Cluster-scoped.",
        {
            "spec": spec,
            "status": obj("What the snapshotter sidecar observed. Set by the system.", status),
        },
        metadata=v1,
        required=("spec",),
    )


VOLUME_SNAPSHOT_CONTENT_COLUMNS = [
    column(
        "ReadyToUse", ".status.readyToUse", "boolean", "Whether the snapshot can be restored from."
    ),
    column(
        "RestoreSize",
        ".status.restoreSize",
        "integer",
        "The smallest volume a restore needs, in bytes.",
    ),
    column(
        "DeletionPolicy",
        ".spec.deletionPolicy",
        "string",
        "Delete or Retain the storage snapshot with this object.",
    ),
    column("Driver", ".spec.driver", "string", "The CSI driver of the snapshot."),
    column(
        "VolumeSnapshotClass",
        ".spec.volumeSnapshotClassName",
        "string",
        "The class the snapshot was created with.",
    ),
    column(
        "VolumeSnapshot",
        ".spec.volumeSnapshotRef.name",
        "string",
        "The VolumeSnapshot it is bound to.",
    ),
    column(
        "VolumeSnapshotNamespace",
        ".spec.volumeSnapshotRef.namespace",
        "string",
        "The namespace of that VolumeSnapshot.",
    ),
    AGE,
]


def class_schema(kind: str, member: str, group_class: bool, rules: bool, metadata: bool) -> Schema:
    """VolumeSnapshotClass and VolumeGroupSnapshotClass (the same fields)."""

    def cel(*items: dict[str, str]) -> tuple[dict[str, str], ...]:
        return items if rules else ()

    prefix = "groupsnapshot" if group_class else "snapshot"
    return root(
        f"{kind}: how to create {member}s with one CSI driver. Cluster-scoped, no spec. The "
        f'annotation {prefix}.storage.kubernetes.io/is-default-class: "true" makes it the '
        "default class of its driver.",
        {
            "deletionPolicy": deletion_policy(
                f"The deletion policy given to the contents of {member}s of this class: Delete "
                "or Retain. Required.",
                *cel(immutable("deletionPolicy is immutable once set")),
            ),
            "driver": string(
                f"Name of the CSI driver that creates {member}s of this class. Required.",
                *cel(immutable("driver is immutable once set")),
            ),
            "parameters": string_map(
                "Driver-specific parameters passed to the driver when a snapshot is created; "
                "keys with the csi.storage.k8s.io/ prefix are reserved for secret references.",
                *cel(immutable("parameters are immutable once set")),
            ),
        },
        metadata=metadata,
        required=("deletionPolicy", "driver"),
    )


CLASS_COLUMNS = [
    column("Driver", ".driver", "string"),
    column(
        "DeletionPolicy",
        ".deletionPolicy",
        "string",
        "Delete or Retain the storage snapshots of this class with their objects.",
    ),
    AGE,
]


def snapshot_crds() -> list[dict[str, Any]]:
    """The three snapshot.storage.k8s.io CRDs."""
    vs = crd(
        SNAPSHOT_GROUP,
        "VolumeSnapshot",
        "volumesnapshots",
        ["vs"],
        "Namespaced",
        814,
        [
            version("v1", volume_snapshot_schema(True), VOLUME_SNAPSHOT_COLUMNS, storage=True),
            beta1_snapshot_version(
                "VolumeSnapshot", volume_snapshot_schema(False), VOLUME_SNAPSHOT_COLUMNS
            ),
        ],
    )
    vsc = crd(
        SNAPSHOT_GROUP,
        "VolumeSnapshotContent",
        "volumesnapshotcontents",
        ["vsc", "vscs"],
        "Cluster",
        955,
        [
            version(
                "v1",
                volume_snapshot_content_schema(True),
                VOLUME_SNAPSHOT_CONTENT_COLUMNS,
                storage=True,
            ),
            beta1_snapshot_version(
                "VolumeSnapshotContent",
                volume_snapshot_content_schema(False),
                VOLUME_SNAPSHOT_CONTENT_COLUMNS,
            ),
        ],
    )
    classes = crd(
        SNAPSHOT_GROUP,
        "VolumeSnapshotClass",
        "volumesnapshotclasses",
        ["vsclass", "vsclasses"],
        "Cluster",
        814,
        [
            version(
                "v1",
                class_schema("VolumeSnapshotClass", "VolumeSnapshot", False, False, True),
                CLASS_COLUMNS,
                storage=True,
                status=False,
            ),
            beta1_snapshot_version(
                "VolumeSnapshotClass",
                class_schema("VolumeSnapshotClass", "VolumeSnapshot", False, False, False),
                CLASS_COLUMNS,
            ),
        ],
    )
    return [vs, vsc, classes]
