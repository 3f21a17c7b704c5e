"""Creating a dynamic snapshot's content, and keeping its source claim protected meanwhile.

:func:`create_content` is Go's ``createSnapshotContent`` in a safer order. Go first puts the
``pvc-as-source-protection`` finalizer on the claim and only then checks the class, the claim's
binding, the PV and the secret templates, so a snapshot that can never be taken (a missing class)
pins its claim forever (#1305). Here every input is resolved first, purely; only a snapshot that
will really get a content touches the claim. Then, in order:

1. the claim's finalizer, unless the cache shows it there: a GET of the whole claim and a PUT
   (the Go RBAC grants ``update`` on claims, not ``patch``; a PUT from a slim cached copy would
   drop fields), refused for a claim being deleted;
2. the content ``snapcontent-<uid>`` is created **with** the
   ``volumesnapshotcontent-bound-protection`` finalizer already on it. Go adds that finalizer
   in a later content sync, so a snapshot deleted in between has its content deleted outright
   while the sidecar may already be calling CreateSnapshot: the backend snapshot leaks (#1388).
   With the finalizer from the start the content can only go once the sidecar let it go;
3. the ``CreatingSnapshot`` event and the snapshot's status (``boundVolumeSnapshotContentName``).

A content is never made for a snapshot that is gone or being deleted: the sync's own finalizer
patch right before the POST shows it is there (read-your-writes), or else a GET of the snapshot
right before the POST does (the claim's GET and PUT take round trips in which a user's DELETE
lands; the sidecar would then cut a snapshot after its deletion). What slips through anyway (a
POST of a stalled, replaced leader that reaches the API server late) is deleted by the
content's sync (:mod:`.content`).

:func:`protect_source` keeps "an in-flight snapshot's claim carries the finalizer" true on every
later sync, so a removal decided from a stale cache (the claim's own sync, :mod:`.protection`)
is undone as soon as the snapshot is looked at again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube import selectors
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, ApiError
from csi_sidecars.kube.snapshots import (
    ANN_DELETION_SECRET_REF_NAME,
    ANN_DELETION_SECRET_REF_NAMESPACE,
    ANN_VOLUME_SNAPSHOT_BEING_CREATED,
    PVC_FINALIZER,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    VSC_FINALIZER,
)
from csi_sidecars.snapshotcontroller import classes, names, secrets
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.names import go_quote
from csi_sidecars.snapshotcontroller.plans import Decide, emit, fail, failure

Obj = Mapping[str, Any]
VS = VOLUME_SNAPSHOTS


class InputError(ValueError):
    """The snapshot cannot get a content (yet); the message is Go's."""


def snapshot_reference(vs: Obj) -> JsonDict:
    """The full ObjectReference of ``vs`` (Go's ``ref.GetReference``), for ``volumeSnapshotRef``."""
    out: JsonDict = {
        "kind": "VolumeSnapshot",
        "namespace": o.namespace(vs),
        "name": o.name(vs),
        "uid": o.uid(vs),
        "apiVersion": VS.api_version,
    }
    if o.resource_version(vs):
        out["resourceVersion"] = o.resource_version(vs)
    return out


def managed_by(view_nodes: list[JsonDict], volume: Obj) -> str:
    """The first node (by name) matching the PV's required node affinity ("" when none)."""
    terms = o.dig(volume, "spec", "nodeAffinity", "required", "nodeSelectorTerms")
    if not isinstance(terms, list):
        return ""
    for node in view_nodes:
        if selectors.node_matches(terms, node):
            return o.name(node)
    return ""


def build_content(vs: JsonDict, d: Decide) -> JsonDict:
    """The content body for a dynamic snapshot, from the caches.

    Raises:
        InputError: no class, an unknown class, an unbound or non-CSI source, bad secret
            templates (Go's messages, wrapped as Go's ``getCreateSnapshotInput`` caller does).
    """
    name = names.content_name(o.uid(vs))
    try:
        class_name = so.class_name(vs)
        if class_name is None:
            raise classes.ResolveError(
                f"failed to take snapshot {o.name(vs)} without a snapshot class"
            )
        cls = d.view.snapshot_class(class_name)
        if cls is None:
            raise classes.ResolveError(classes.not_found(VOLUME_SNAPSHOT_CLASSES, class_name))
        src = classes.source_of(d.view, o.namespace(vs), classes.claim_name_of(vs))
        params = o.str_map(cls.get("parameters"))
        secret = secrets.secret_reference(
            secrets.SNAPSHOTTER,
            params,
            content_name=name,
            owner_name=o.name(vs),
            owner_namespace=o.namespace(vs),
        )
    except (classes.ResolveError, secrets.SecretRefError) as err:
        raise InputError(
            f"failed to get input parameters to create snapshot {o.name(vs)}: {go_quote(str(err))}"
        ) from None
    volume = src.volume
    handle = o.dig(volume, "spec", "csi", "volumeHandle")
    if classes.csi_driver(volume) is None or not isinstance(handle, str):
        raise InputError(f"cannot find CSI PersistentVolumeSource for volume {o.name(volume)}")
    spec: JsonDict = {
        "volumeSnapshotRef": snapshot_reference(vs),
        "source": {"volumeHandle": handle},
        "volumeSnapshotClassName": o.name(cls),
        "deletionPolicy": so.deletion_policy(cls),
        "driver": so.driver(cls),
    }
    meta: JsonDict = {"name": name, "finalizers": [VSC_FINALIZER]}
    if d.settings.distributed:
        node = managed_by(d.view.nodes(), volume)
        if node:
            meta["labels"] = {VOLUME_SNAPSHOT_CONTENT_MANAGED_BY_LABEL: node}
    mode = o.dig(volume, "spec", "volumeMode")
    if d.settings.prevent_volume_mode_conversion and isinstance(mode, str):
        spec["sourceVolumeMode"] = mode
    if secret is not None:
        meta["annotations"] = {
            ANN_DELETION_SECRET_REF_NAME: secret[1],
            ANN_DELETION_SECRET_REF_NAMESPACE: secret[0],
        }
    return {
        "apiVersion": VOLUME_SNAPSHOT_CONTENTS.api_version,
        "kind": VOLUME_SNAPSHOT_CONTENTS.kind,
        "metadata": meta,
        "spec": spec,
    }


def create_content(
    vs: JsonDict, d: Decide, *, then: Callable[[JsonDict], a.Plan], checked: bool = True
) -> a.Plan:
    """Protect the source claim, create the content, announce it; ``then`` the created content.

    Every failure is ``SnapshotContentCreationFailed`` on the snapshot (with Go's text), a
    failed POST also ``CreateSnapshotContentFailed``; conflicts are decided again.

    No content is made for a snapshot that is gone, has another uid or is being deleted (its
    deletion's sync comes next): ``checked`` says the plan has just written the snapshot (its
    finalizer patch) and the POST follows at once; otherwise, or when the claim's finalizer
    costs round trips first, a GET of the snapshot comes right before the POST.
    """
    creation_failed = names.SNAPSHOT_CONTENT_CREATION_FAILED
    try:
        body = build_content(vs, d)
    except InputError as err:
        return fail(
            vs,
            VS,
            creation_failed,
            f"Failed to create snapshot content with error {err}",
            now=d.now,
        )
    claim_name = so.source_claim(vs) or ""
    claim = d.view.claim(o.namespace(vs), claim_name)

    def created(content: JsonDict) -> a.Plan:
        msg = f"Waiting for a snapshot {so.key(vs)} to be created by the CSI driver."
        return (emit(vs, VS, o.NORMAL, names.CREATING_SNAPSHOT, msg), *then(content))

    def post() -> a.Plan:
        def on_error(exc: ApiError) -> a.Plan:
            if is_conflict(exc):
                return (a.Redecide(exc.message),)
            err = exc.message or str(exc)
            text = (
                f"Error creating volume snapshot content object for snapshot {so.key(vs)}: {err}."
            )
            return (
                emit(vs, VS, o.WARNING, names.CREATE_SNAPSHOT_CONTENT_FAILED, text),
                *fail(
                    vs,
                    VS,
                    creation_failed,
                    "Failed to create snapshot content with error "
                    + names.controller_update_error(so.key(vs), err),
                    now=d.now,
                ),
            )

        return (
            a.Create(
                VOLUME_SNAPSHOT_CONTENTS, body, exists_ok=True, then=created, on_error=on_error
            ),
        )

    def guarded() -> a.Plan:
        def looked(live: JsonDict | None) -> a.Plan:
            if live is None or o.uid(live) != o.uid(vs):
                return (a.Done("the snapshot is gone"),)
            if o.is_deleting(live):
                return (a.Done("the snapshot is being deleted"),)
            return post()

        return (a.Read(VS, o.name(vs), o.namespace(vs), then=looked),)

    if claim is not None and PVC_FINALIZER in o.finalizers(claim):
        return post() if checked else guarded()
    if claim is not None and o.is_deleting(claim):
        return _claim_refused(vs, claim_name, d)

    def with_claim(full: JsonDict | None) -> a.Plan:
        if full is None:
            msg = names.controller_update_error(o.name(vs), "cannot get claim from snapshot")
            return fail(
                vs,
                VS,
                creation_failed,
                f"Failed to create snapshot content with error {msg}",
                now=d.now,
            )
        if PVC_FINALIZER in o.finalizers(full):
            return guarded()
        if o.is_deleting(full):
            return _claim_refused(vs, claim_name, d)
        return (
            _add_claim_finalizer(
                full,
                then=lambda _: guarded(),
                on_error=failure(
                    vs,
                    VS,
                    creation_failed,
                    lambda e: (
                        "Failed to create snapshot content with error "
                        + names.controller_update_error(claim_name, e)
                    ),
                    now=d.now,
                ),
            ),
        )

    return (a.Read(PERSISTENT_VOLUME_CLAIMS, claim_name, o.namespace(vs), then=with_claim),)


def _claim_refused(vs: JsonDict, claim_name: str, d: Decide) -> a.Plan:
    msg = names.controller_update_error(
        claim_name, "cannot add finalizer on claim because it is being deleted"
    )
    return fail(
        vs,
        VS,
        names.SNAPSHOT_CONTENT_CREATION_FAILED,
        f"Failed to create snapshot content with error {msg}",
        now=d.now,
    )


def _add_claim_finalizer(
    full: JsonDict,
    *,
    then: Callable[[JsonDict], a.Plan] | None = None,
    on_error: Callable[[ApiError], a.Plan] | None = None,
) -> a.Replace:
    body = copy.deepcopy(full)
    body.setdefault("metadata", {}).setdefault("finalizers", []).append(PVC_FINALIZER)
    return a.Replace(
        PERSISTENT_VOLUME_CLAIMS, body, o.namespace(full), then=then, on_error=on_error
    )


def content_in_flight(content: Obj) -> bool:
    """Whether the sidecar may still be cutting the snapshot of ``content``."""
    if so.is_ready(content):
        return False
    if o.is_deleting(content):
        return ANN_VOLUME_SNAPSHOT_BEING_CREATED in o.annotations_of(content)
    return True


def protect_source(vs: JsonDict, content: JsonDict, d: Decide, rest: a.Plan) -> a.Plan:
    """``rest``, after putting the finalizer back on the source claim of an in-flight snapshot.

    Only when the cache shows the claim without it (and not being deleted): then a GET and a
    PUT, as in :func:`create_content`. A claim that is gone needs no protection.
    """
    claim_name = so.source_claim(vs)
    if not claim_name or not content_in_flight(content):
        return rest
    claim = d.view.claim(o.namespace(vs), claim_name)
    if claim is None or o.is_deleting(claim) or PVC_FINALIZER in o.finalizers(claim):
        return rest

    def with_claim(full: JsonDict | None) -> a.Plan:
        if full is None or o.is_deleting(full) or PVC_FINALIZER in o.finalizers(full):
            return rest
        return (_add_claim_finalizer(full, then=lambda _: rest),)

    return (a.Read(PERSISTENT_VOLUME_CLAIMS, claim_name, o.namespace(vs), then=with_claim),)


def owner_patch(vs: JsonDict, parent: Obj) -> a.Patch:
    """Add the VolumeGroupSnapshot owner reference to a static group member (guarded)."""
    ref = {
        "apiVersion": so.GROUP_OWNER_API_VERSION,
        "kind": "VolumeGroupSnapshot",
        "name": o.name(parent),
        "uid": o.uid(parent),
    }
    current = o.meta(vs).get("ownerReferences")
    path = "/metadata/ownerReferences"
    if not isinstance(current, list):
        ops: list[JsonDict] = [
            {"op": "test", "path": path, "value": None},
            {"op": "add", "path": path, "value": [ref]},
        ]
    else:
        ops = [
            {"op": "test", "path": path, "value": current},
            {"op": "add", "path": path + "/-", "value": ref},
        ]
    return a.Patch(VS, o.name(vs), ops, o.namespace(vs), type="json")
