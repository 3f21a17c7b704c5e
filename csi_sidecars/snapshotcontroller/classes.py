"""Snapshot classes: the named class must exist; an unnamed dynamic snapshot gets the default.

Go's ``checkAndUpdateSnapshotClass`` / ``checkAndUpdateGroupSnapshotClass`` run before every
sync. A named class missing from the cache is ``GetSnapshotClassFailed`` (tolerated while the
snapshot is being deleted). Without a name, a dynamic snapshot that is not a group member gets
the one class marked ``is-default-class: "true"`` whose driver is the driver of its source PV
(for a group: of the first PV its selector picks); none or several is
``SetDefaultSnapshotClassFailed``. The choice is written as a JSON patch guarded by a ``test``
that the field is still unset.

Also here: resolving a snapshot's source claim and PV from the caches, with Go's messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.kube import objects as o
from csi_sidecars.kube import selectors
from csi_sidecars.kube.labels import SelectorError
from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, Resource
from csi_sidecars.kube.snapshots import (
    ANN_IS_DEFAULT_GROUP_SNAPSHOT_CLASS,
    ANN_IS_DEFAULT_SNAPSHOT_CLASS,
)
from csi_sidecars.snapshotcontroller import objects as so
from csi_sidecars.snapshotcontroller.names import go_quote
from csi_sidecars.snapshotcontroller.view import View

Obj = Mapping[str, Any]


class ResolveError(ValueError):
    """A snapshot's inputs cannot be resolved; the message is Go's."""


def not_found(resource: Resource, name: str) -> str:
    """A lister's NotFound text (``volumesnapshotclass.snapshot.storage.k8s.io "x" not found``)."""
    singular = resource.kind.lower() or resource.plural
    group = f".{resource.group}" if resource.group else ""
    return f'{singular}{group} "{name}" not found'


def api_not_found(resource: Resource, name: str) -> str:
    """An API GET's NotFound text: ``persistentvolumes "pv1" not found``."""
    group = f".{resource.group}" if resource.group else ""
    return f'{resource.plural}{group} "{name}" not found'


@dataclass(frozen=True, slots=True)
class Source:
    """A bound claim and its PV."""

    claim: JsonDict
    volume: JsonDict


def bound_to(volume: Obj, claim: Obj) -> bool:
    """Go's ``isVolumeBoundToClaim``: the PV's claimRef names the claim (and its uid, if set)."""
    cref = o.dig(volume, "spec", "claimRef")
    if not isinstance(cref, dict):
        return False
    if cref.get("name") != o.name(claim) or cref.get("namespace") != o.namespace(claim):
        return False
    return not cref.get("uid") or cref.get("uid") == o.uid(claim)


def source_of(view: View, namespace: str, claim_name: str, *, group: bool = False) -> Source:
    """The bound claim ``namespace/claim_name`` and its PV, from the caches.

    Raises:
        ResolveError: the claim is unknown or unbound, the PV unknown or bound elsewhere.
    """
    claim = view.claim(namespace, claim_name)
    if claim is None:
        missing = go_quote(f'persistentvolumeclaim "{claim_name}" not found')
        raise ResolveError(f"failed to retrieve PVC {claim_name} from the lister: {missing}")
    return source_from_claim(view, claim, group=group)


def source_from_claim(view: View, claim: JsonDict, *, group: bool = False) -> Source:
    """The PV of a cached claim (see :func:`source_of`)."""
    what = "a group snapshot" if group else "a snapshot"
    if o.status(claim).get("phase") != "Bound":
        raise ResolveError(
            f"the PVC {o.name(claim)} is not yet bound to a PV, will not attempt to take {what}"
        )
    pv_name = str(o.spec(claim).get("volumeName") or "")
    volume = view.volume(pv_name)
    if volume is None:
        missing = go_quote(api_not_found(PERSISTENT_VOLUMES, pv_name))
        raise ResolveError(f"failed to retrieve PV {pv_name} from the API server: {missing}")
    if not bound_to(volume, claim):
        raise ResolveError("claim in dataSource not bound or invalid")
    return Source(claim, volume)


def csi_driver(volume: Obj) -> str | None:
    """``spec.csi.driver`` of a PV (None: not a CSI volume)."""
    csi = o.dig(volume, "spec", "csi")
    return str(csi.get("driver") or "") if isinstance(csi, dict) else None


def claim_name_of(vs: Obj) -> str:
    """The source claim name of a dynamic snapshot, with Go's errors when there is none.

    Raises:
        ResolveError: no claim name (or an empty one).
    """
    name = so.source_claim(vs)
    if name is None:
        raise ResolveError("the snapshot source PVC name is not specified")
    if name == "":
        raise ResolveError(f"the PVC name is not specified in snapshot {so.key(vs)}")
    return name


def snapshot_driver(view: View, vs: Obj) -> str:
    """The driver of a dynamic snapshot's source PV (Go's ``pvDriverFromSnapshot``).

    Raises:
        ResolveError: the source cannot be resolved, or is not a CSI volume.
    """
    src = source_of(view, o.namespace(vs), claim_name_of(vs))
    driver = csi_driver(src.volume)
    if driver is None:
        raise ResolveError(
            "snapshotting non-CSI volumes is not supported, snapshot:"
            f"{o.namespace(vs)}/{o.name(vs)}"
        )
    return driver


def group_claims(view: View, vgs: Obj) -> list[JsonDict]:
    """The claims a group snapshot's selector picks (``matchExpressions`` included).

    Raises:
        ResolveError: the selector is malformed or picks nothing.
    """
    selector = so.group_selector(vgs)
    if selectors.format_selector(selector) == "<error>":
        raise ResolveError(f"invalid label selector {selector!r}")
    try:
        claims = view.claims_matching(o.namespace(vgs), selector)
    except SelectorError as err:
        raise ResolveError(f"invalid label selector: {err}") from None
    if not claims:
        raise ResolveError(
            f"label selector {selectors.format_selector(selector)} for group snapshot not "
            "applied to any PVC"
        )
    return claims


def group_sources(view: View, vgs: Obj) -> list[Source]:
    """Every picked claim, bound, with its PV (Go's ``getVolumesFromVolumeGroupSnapshot``).

    Raises:
        ResolveError: as :func:`group_claims` and :func:`source_from_claim`.
    """
    return [source_from_claim(view, c, group=True) for c in group_claims(view, vgs)]


def group_driver(view: View, vgs: Obj) -> str:
    """The driver of the first PV of a group snapshot's selector.

    Raises:
        ResolveError: as :func:`group_sources`, or the first PV is not a CSI volume.
    """
    first = group_sources(view, vgs)[0]
    driver = csi_driver(first.volume)
    if driver is None:
        raise ResolveError(
            "snapshotting non-CSI volumes is not supported, group snapshot:"
            f"{o.namespace(vgs)}/{o.name(vgs)}"
        )
    return driver


def default_class(view: View, resource: Resource, driver: str, *, group: bool = False) -> JsonDict:
    """The one default class of ``driver``.

    Raises:
        ResolveError: none, or more than one.
    """
    annotation = ANN_IS_DEFAULT_GROUP_SNAPSHOT_CLASS if group else ANN_IS_DEFAULT_SNAPSHOT_CLASS
    found = [
        c
        for c in view.all(resource)
        if o.annotations_of(c).get(annotation) == "true" and so.driver(c) == driver
    ]
    if not found:
        kind = "group snapshot" if group else "snapshot"
        raise ResolveError(f"cannot find default {kind} class")
    if len(found) > 1:
        raise ResolveError(f"{len(found)} default snapshot classes were found")
    return found[0]


def class_patch(field: str, name: str) -> list[JsonDict]:
    """The JSON patch setting ``spec.<field>``, guarded by a ``test`` that it is unset."""
    path = f"/spec/{field}"
    return [{"op": "test", "path": path, "value": None}, {"op": "add", "path": path, "value": name}]
