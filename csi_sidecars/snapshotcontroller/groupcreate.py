"""A dynamic group snapshot's content, and the per-volume snapshots once the group is cut.

:func:`create_group_content` is Go's ``createGroupSnapshotContent``: the claims the selector
picks (``matchLabels`` *and* ``matchExpressions``, from the claim cache; Go LISTs live with the
labels only), each Bound to a CSI PV of the class's driver, become ``source.volumeHandles`` of
``groupsnapcontent-<uid>`` (created with its ``volumegroupsnapshotcontent-bound-protection``
finalizer, as single contents are: see :mod:`.create`).

:func:`member_actions` is Go's ``createSnapshotsForGroupSnapshotContent``: once the sidecar filled
in the group content's ``volumeGroupSnapshotHandle`` and ``volumeSnapshotInfoList``, each entry
becomes a VolumeSnapshotContent ``snapcontent-<sha256(uid+handle)>`` (annotated with the group
handle so the sidecar never calls CreateSnapshot for it) and a VolumeSnapshot
``snapshot-<sha256(uid+handle)>`` owned by the group, bound both ways, with the content's status
set from the entry. Go redoes the five writes of every member on every sync; here a member whose
objects are complete in the caches costs nothing, and at most :data:`MEMBER_BATCH` members are
created per sync (the rest right after, without back-off).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.snapshots import (
    ANN_DELETION_GROUP_SECRET_REF_NAME,
    ANN_DELETION_GROUP_SECRET_REF_NAMESPACE,
    ANN_DELETION_SECRET_REF_NAME,
    ANN_DELETION_SECRET_REF_NAMESPACE,
    VGSC_FINALIZER,
    VOLUME_GROUP_SNAPSHOT_CLASSES,
    VOLUME_GROUP_SNAPSHOT_CONTENTS,
    VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION,
    VOLUME_GROUP_SNAPSHOTS,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VS_IN_GROUP_FINALIZER,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import classes, names, secrets
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.names import go_quote
from csi_sidecars.snapshotcontroller.plans import Decide, emit, fail

Obj = Mapping[str, Any]
VGS = VOLUME_GROUP_SNAPSHOTS
VGSC = VOLUME_GROUP_SNAPSHOT_CONTENTS

#: Members whose VolumeSnapshot is created in one sync (each needs a continuation).
MEMBER_BATCH = 8


def _failed(vgs: JsonDict, d: Decide, message: str) -> a.Plan:
    return fail(
        vgs,
        VGS,
        names.GROUP_SNAPSHOT_CONTENT_CREATION_FAILED,
        f"failed to create group snapshot content with error {message}",
        now=d.now,
    )


def group_reference(vgs: Obj) -> JsonDict:
    """The full ObjectReference of a VolumeGroupSnapshot."""
    out: JsonDict = {
        "kind": "VolumeGroupSnapshot",
        "namespace": o.namespace(vgs),
        "name": o.name(vgs),
        "uid": o.uid(vgs),
        "apiVersion": VGS.api_version,
    }
    if o.resource_version(vgs):
        out["resourceVersion"] = o.resource_version(vgs)
    return out


def create_group_content(vgs: JsonDict, d: Decide, *, then: Callable[[JsonDict], a.Plan]) -> a.Plan:
    """Create ``groupsnapcontent-<uid>`` and announce it; ``then`` the created content."""
    key = so.key(vgs)
    name = names.group_content_name(o.uid(vgs))
    try:
        class_name = so.group_class_name(vgs)
        if class_name is None:
            raise classes.ResolveError(
                f"failed to take group snapshot {o.name(vgs)} without a group snapshot class"
            )
        cls = d.view.group_class(class_name)
        if cls is None:
            raise classes.ResolveError(classes.not_found(VOLUME_GROUP_SNAPSHOT_CLASSES, class_name))
        sources = classes.group_sources(d.view, vgs)
        secret = secrets.secret_reference(
            secrets.GROUP_SNAPSHOTTER,
            o.str_map(cls.get("parameters")),
            content_name=name,
            owner_name=o.name(vgs),
            owner_namespace=o.namespace(vgs),
            group=True,
        )
    except (classes.ResolveError, secrets.SecretRefError) as err:
        return _failed(
            vgs,
            d,
            f"failed to get input parameters to create group snapshot {o.name(vgs)}: "
            + go_quote(str(err)),
        )
    handles: list[str] = []
    for src in sources:
        driver = classes.csi_driver(src.volume)
        pv_name = o.name(src.volume)
        if driver is None:
            return (
                emit(
                    vgs,
                    VGS,
                    o.WARNING,
                    names.CREATE_GROUP_SNAPSHOT_CONTENT_FAILED,
                    f"Cannot snapshot a non-CSI volume: {pv_name}",
                ),
                *_failed(
                    vgs, d, f"cannot snapshot a non-CSI volume for group snapshot {key}: {pv_name}"
                ),
            )
        if driver != so.driver(cls):
            text = (
                f"Volume CSI driver ({driver}) mismatch with VolumeGroupSnapshotClass "
                f"({so.driver(cls)}) {key}: {pv_name}"
            )
            return (
                emit(vgs, VGS, o.WARNING, names.CREATE_GROUP_SNAPSHOT_CONTENT_FAILED, text),
                *_failed(vgs, d, names.controller_update_error(key, text)),
            )
        handles.append(str(o.dig(src.volume, "spec", "csi", "volumeHandle") or ""))
    meta: JsonDict = {"name": name, "finalizers": [VGSC_FINALIZER]}
    if secret is not None:
        meta["annotations"] = {
            ANN_DELETION_GROUP_SECRET_REF_NAME: secret[1],
            ANN_DELETION_GROUP_SECRET_REF_NAMESPACE: secret[0],
        }
    body: JsonDict = {
        "apiVersion": VGSC.api_version,
        "kind": VGSC.kind,
        "metadata": meta,
        "spec": {
            "volumeGroupSnapshotRef": group_reference(vgs),
            "source": {"volumeHandles": handles},
            "volumeGroupSnapshotClassName": o.name(cls),
            "deletionPolicy": so.deletion_policy(cls),
            "driver": so.driver(cls),
        },
    }

    def created(content: JsonDict) -> a.Plan:
        msg = f"Waiting for a group snapshot {key} to be created by the CSI driver."
        return (emit(vgs, VGS, o.NORMAL, names.CREATING_GROUP_SNAPSHOT, msg), *then(content))

    def on_error(exc: ApiError) -> a.Plan:
        if is_conflict(exc):
            return (a.Redecide(exc.message),)
        err = exc.message or str(exc)
        text = (
            f"Error creating volume group snapshot content object for group snapshot {key}: {err}."
        )
        return (
            emit(vgs, VGS, o.WARNING, names.CREATE_GROUP_SNAPSHOT_CONTENT_FAILED, text),
            *_failed(vgs, d, names.controller_update_error(key, err)),
        )

    return (a.Create(VGSC, body, exists_ok=True, then=created, on_error=on_error),)


# -- members -----------------------------------------------------------------------------------


def ready_for_members(content: Obj) -> bool:
    """The sidecar recorded the group handle and a non-empty info list (Go's
    isGroupSnapshotContentReadyForSnapshotCreation)."""
    infos = o.status(content).get("volumeSnapshotInfoList")
    return so.group_handle(content) is not None and isinstance(infos, list) and bool(infos)


def member_secret(vgs: Obj, content: Obj, d: Decide) -> tuple[str, str] | None:
    """The Secret recorded on member contents (the group's, resolved without the group).

    Raises:
        secrets.SecretRefError: with Go's ``getGroupSnapshotSecret`` messages.
    """
    class_name = so.group_class_name(vgs)
    if class_name is None:
        raise secrets.SecretRefError(
            "getGroupSnapshotSecret: internal error: cannot find reference to volume group "
            "snapshot class"
        )
    cls = d.view.group_class(class_name)
    if cls is None:
        missing = go_quote(classes.not_found(VOLUME_GROUP_SNAPSHOT_CLASSES, class_name))
        raise secrets.SecretRefError(
            f"getGroupSnapshotSecret: failed to get volume snapshot class {class_name}: {missing}"
        )
    try:
        return secrets.secret_reference(
            secrets.GROUP_SNAPSHOTTER,
            o.str_map(cls.get("parameters")),
            content_name=o.name(content),
            owner_name=None,
            owner_namespace=None,
            group=True,
        )
    except secrets.SecretRefError as err:
        raise secrets.SecretRefError(
            "getGroupSnapshotSecret: failed to get secret reference for group snapshot content "
            f"{o.name(content)}: {err}"
        ) from None


def _member_bodies(
    vgs: Obj, content: Obj, info: Obj, pv: Obj | None, secret: tuple[str, str] | None
) -> tuple[JsonDict, JsonDict]:
    handle = str(info.get("volumeHandle") or "")
    vsc_name = names.member_content_name(o.uid(vgs), handle)
    vs_name = names.member_snapshot_name(o.uid(vgs), handle)
    namespace = str(so.ref(content, "volumeGroupSnapshotRef").get("namespace") or o.namespace(vgs))
    annotations = {VOLUME_GROUP_SNAPSHOT_HANDLE_ANNOTATION: so.group_handle(content) or ""}
    if secret is not None:
        annotations[ANN_DELETION_SECRET_REF_NAME] = secret[1]
        annotations[ANN_DELETION_SECRET_REF_NAMESPACE] = secret[0]
    vsc_spec: JsonDict = {
        "volumeSnapshotRef": {"kind": "VolumeSnapshot", "name": vs_name, "namespace": namespace},
        "deletionPolicy": so.deletion_policy(content),
        "driver": so.driver(content),
        "source": {"volumeHandle": handle},
    }
    mode = o.dig(pv, "spec", "volumeMode")
    if isinstance(mode, str):
        vsc_spec["sourceVolumeMode"] = mode
    vsc_body: JsonDict = {
        "apiVersion": VOLUME_SNAPSHOT_CONTENTS.api_version,
        "kind": VOLUME_SNAPSHOT_CONTENTS.kind,
        "metadata": {"name": vsc_name, "annotations": annotations, "finalizers": [VSC_FINALIZER]},
        "spec": vsc_spec,
    }
    claim = o.dig(pv, "spec", "claimRef", "name")
    vs_body: JsonDict = {
        "apiVersion": VOLUME_SNAPSHOTS.api_version,
        "kind": VOLUME_SNAPSHOTS.kind,
        "metadata": {
            "name": vs_name,
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": so.GROUP_OWNER_API_VERSION,
                    "kind": "VolumeGroupSnapshot",
                    "name": o.name(vgs),
                    "uid": o.uid(vgs),
                }
            ],
            "finalizers": [VS_IN_GROUP_FINALIZER],
        },
        "spec": {"source": {"persistentVolumeClaimName": claim if isinstance(claim, str) else ""}},
    }
    return vsc_body, vs_body


def _binding(
    vsc_name: str,
    vs_name: str,
    namespace: str,
    vs_uid: str,
    vsc: Obj | None,
    vs: Obj | None,
    info: Obj,
    group_handle: str,
) -> list[a.Action]:
    """The writes that bind a member pair and set the content's status (those still missing)."""
    steps: list[a.Action] = []
    if vsc is None or so.ref(vsc).get("uid") != vs_uid:
        steps.append(
            a.Patch(
                VOLUME_SNAPSHOT_CONTENTS,
                vsc_name,
                [{"op": "add", "path": "/spec/volumeSnapshotRef/uid", "value": vs_uid}],
                type="json",
            )
        )
    if vs is None or not so.bound_content(vs):
        steps.append(
            a.Patch(
                VOLUME_SNAPSHOTS,
                vs_name,
                {"status": {"boundVolumeSnapshotContentName": vsc_name}},
                namespace,
                subresource="status",
            )
        )
    if vsc is None or not o.status(vsc).get("snapshotHandle"):
        status: JsonDict = {
            "snapshotHandle": info.get("snapshotHandle"),
            "volumeGroupSnapshotHandle": group_handle,
        }
        for field in ("creationTime", "restoreSize", "readyToUse"):
            if info.get(field) is not None:
                status[field] = info[field]
        steps.append(
            a.Patch(VOLUME_SNAPSHOT_CONTENTS, vsc_name, {"status": status}, subresource="status")
        )
    return steps


def member_actions(vgs: JsonDict, content: JsonDict, d: Decide, rest: a.Plan) -> a.Plan:
    """Create and bind the members still missing, then ``rest``."""
    try:
        secret = member_secret(vgs, content, d)
    except secrets.SecretRefError as err:
        return (a.Retry(str(err)),)
    group_handle = so.group_handle(content) or ""
    steps: list[a.Action] = []
    pending: list[tuple[JsonDict, JsonDict, Obj]] = []
    infos = [
        i for i in o.status(content).get("volumeSnapshotInfoList") or [] if isinstance(i, dict)
    ]
    for info in infos:
        handle = str(info.get("volumeHandle") or "")
        found = d.view.volumes_by_handle(so.driver(content), handle)
        pv = found[0] if len(found) == 1 else None
        vsc_body, vs_body = _member_bodies(vgs, content, info, pv, secret)
        vsc_name, vs_name = vsc_body["metadata"]["name"], vs_body["metadata"]["name"]
        namespace = vs_body["metadata"]["namespace"]
        vsc = d.view.content(vsc_name)
        vs = d.view.snapshot(namespace, vs_name)
        if vsc is None:
            steps.append(a.Create(VOLUME_SNAPSHOT_CONTENTS, vsc_body, exists_ok=True))
        if vs is not None:
            steps.extend(
                _binding(vsc_name, vs_name, namespace, o.uid(vs), vsc, vs, info, group_handle)
            )
        else:
            pending.append((vsc_body, vs_body, info))
    more = len(pending) > MEMBER_BATCH
    batch = pending[:MEMBER_BATCH]
    tail: a.Plan = (a.RetryAfter(0.0, "more members to create"),) if more else rest

    def chain(i: int) -> a.Plan:
        if i == len(batch):
            return tail
        vsc_body, vs_body, info = batch[i]
        vsc_name, vs_name = vsc_body["metadata"]["name"], vs_body["metadata"]["name"]
        namespace = vs_body["metadata"]["namespace"]

        def bound(created: JsonDict) -> a.Plan:
            if not o.uid(created):
                return (a.Retry(f"created snapshot {vs_name} has an empty UID"),)
            return (
                *_binding(
                    vsc_name, vs_name, namespace, o.uid(created), None, None, info, group_handle
                ),
                *chain(i + 1),
            )

        return (a.Create(VOLUME_SNAPSHOTS, vs_body, namespace, exists_ok=True, then=bound),)

    return (*steps, *chain(0))
