"""PVC source protection: ``pvc-as-source-protection`` exactly while a snapshot is being cut.

The finalizer is put on a claim right before its first snapshot content is created
(:mod:`.create`) and must come off as soon as no snapshot still needs the claim. Go keeps it
while *any* other snapshot of the claim is not ready, so one snapshot that never becomes ready
(a missing class, an unbound claim, a bad secret template) pins the claim forever
(external-snapshotter #1305), and Go only looks when one of those snapshots is synced, so a
claim whose last snapshot vanished keeps it too.

Here the claim is its own key (queue ``snapshot-controller-claim``, woken by the claim's and its
snapshots' events) and :func:`in_flight` says which snapshots need it:

* pre-provisioned snapshots, ready snapshots and group members never do;
* a snapshot with a content needs it while the content is not ready, unless the content is
  being deleted and the sidecar is not creating (no ``volumesnapshot-being-created``);
* a snapshot without a content needs it unless it is being deleted or stuck on an error
  (``status.error`` set: it will not get a content before it is retried, and that retry puts the
  finalizer back before it creates one).

The removal reads the whole claim and PUTs it without the finalizer (the Go RBAC grants
``update`` on claims, not ``patch``); a conflict decides again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import objects as o
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, ApiError
from csi_sidecars.kube.snapshots import PVC_FINALIZER
from csi_sidecars.snapshotcontroller import names
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.create import content_in_flight
from csi_sidecars.snapshotcontroller.plans import Decide, emit

Obj = Mapping[str, Any]
PVCS = PERSISTENT_VOLUME_CLAIMS


def snapshot_content(vs: Obj, d: Decide) -> JsonDict | None:
    """The snapshot's content: the recorded one, else ``snapcontent-<uid>`` if it points back."""
    name = so.bound_content(vs) or names.content_name(o.uid(vs))
    content = d.view.content(name)
    if content is None:
        return None
    ref = so.ref(content)
    if ref.get("uid") and ref.get("uid") != o.uid(vs):
        return None
    return content


def in_flight(vs: Obj, d: Decide) -> bool:
    """Whether ``vs`` may still be cut from its source claim (so the claim must stay)."""
    if so.source_content(vs) is not None or so.is_ready(vs) or so.is_group_member(vs):
        return False
    content = snapshot_content(vs, d)
    if content is not None:
        return content_in_flight(content)
    if o.is_deleting(vs):
        return False
    return so.error_message(vs) is None


def decide_claim(claim: JsonDict | None, d: Decide) -> a.Plan:
    """The plan for one sync of a claim: drop the finalizer once no snapshot needs it."""
    if claim is None or PVC_FINALIZER not in o.finalizers(claim):
        return (a.Done(),)
    users = d.view.snapshots_of_claim(o.namespace(claim), o.name(claim))
    if any(in_flight(vs, d) for vs in users):
        return (a.Done("in use by a snapshot being taken"),)

    def on_error(exc: ApiError) -> a.Plan:
        if is_conflict(exc):
            return (a.Redecide(exc.message),)
        text = "Error check and remove PVC Finalizer for VolumeSnapshot"
        return (emit(claim, PVCS, o.WARNING, names.ERROR_PVC_FINALIZER, text), a.Retry(str(exc)))

    def remove(full: JsonDict | None) -> a.Plan:
        if full is None or PVC_FINALIZER not in o.finalizers(full):
            return (a.Done(),)
        body = dict(full)
        body["metadata"] = dict(o.meta(full))
        body["metadata"]["finalizers"] = [f for f in o.finalizers(full) if f != PVC_FINALIZER]
        return (a.Replace(PVCS, body, o.namespace(full), on_error=on_error), a.Done())

    return (a.Read(PVCS, o.name(claim), o.namespace(claim), then=remove),)
