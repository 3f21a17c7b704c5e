"""Records of the previous version, kept on the PVC itself, read for compatibility.

Versions before the journal (:mod:`.journal`) wrote the no-leak record on the claim: annotation
``provisioner.csi-sidecars.io/create-intent`` (JSON, the :func:`~.intent.intent_to_json` format
without namespace, name and claim spec) and finalizer
``provisioner.csi-sidecars.io/volume-in-flight``. A claim found with either is migrated once:
:func:`legacy_import` says which record to write into the journal, then the claim is released
(:func:`without_intent`, one PVC Update). :func:`with_intent` writes the old format, for tests
and for anyone downgrading by hand.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.provisioner import events, keys
from csi_sidecars.provisioner.events import Event
from csi_sidecars.provisioner.intent import Intent, intent_from_json, intent_to_json, make_intent
from csi_sidecars.provisioner.objects import (
    JsonDict,
    annotations_of,
    finalizers,
    is_deleting,
    name,
    namespace,
    spec,
    str_list,
    uid,
)


def legacy_tracked(pvc: Mapping[str, Any]) -> bool:
    """Whether the claim carries a record or finalizer of the previous version."""
    return keys.INTENT_FINALIZER in finalizers(pvc) or keys.ANN_CREATE_INTENT in annotations_of(pvc)


def encode_intent(
    pvc: Mapping[str, Any], request: csi_pb2.CreateVolumeRequest, sc: Mapping[str, Any] | None
) -> str:
    """The legacy annotation value for ``request`` (secrets are never included)."""
    data = intent_to_json(make_intent(pvc, request, sc))
    for key in ("namespace", "name", "accessModes", "volumeMode"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def read_intent(pvc: Mapping[str, Any], expected_name: str = "") -> tuple[Intent | None, str]:
    """Parse and validate the legacy record on the PVC (namespace, name and spec filled in).

    Returns:
        The record (None when absent or unusable) and why it is unusable ("" when fine/absent).
    """
    raw = annotations_of(pvc).get(keys.ANN_CREATE_INTENT)
    if raw is None:
        return None, ""
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "intent record is not valid JSON"
    record, why = intent_from_json(data, expected_name)
    if record is None:
        return None, why
    if record.pvc_uid != uid(pvc):
        return None, "intent record belongs to another PVC UID"
    return (
        Intent(
            **{
                **record.__dict__,
                "namespace": namespace(pvc),
                "claim_name": name(pvc),
                "access_modes": tuple(str_list(spec(pvc).get("accessModes"))),
                "volume_mode": str(spec(pvc).get("volumeMode") or ""),
            }
        ),
        "",
    )


def with_intent(
    pvc: Mapping[str, Any], request: csi_pb2.CreateVolumeRequest, sc: Mapping[str, Any] | None
) -> JsonDict:
    """A copy of ``pvc`` carrying the legacy record and finalizer (previous versions' format)."""
    out: JsonDict = copy.deepcopy(dict(pvc))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {})}
    meta["annotations"][keys.ANN_CREATE_INTENT] = encode_intent(pvc, request, sc)
    current = list(meta.get("finalizers") or [])
    if keys.INTENT_FINALIZER not in current:
        current.append(keys.INTENT_FINALIZER)
    meta["finalizers"] = current
    return out


def without_intent(pvc: Mapping[str, Any]) -> JsonDict:
    """A copy of ``pvc`` without the legacy record and finalizer (send as a PVC Update)."""
    out: JsonDict = copy.deepcopy(dict(pvc))
    meta = out.setdefault("metadata", {})
    ann = dict(meta.get("annotations") or {})
    ann.pop(keys.ANN_CREATE_INTENT, None)
    meta["annotations"] = ann
    meta["finalizers"] = [f for f in (meta.get("finalizers") or []) if f != keys.INTENT_FINALIZER]
    return out


@dataclass(frozen=True)
class LegacyImport:
    """What to do with a PVC of the previous version before releasing it.

    Attributes:
        record: the record to write into the journal first (None: nothing to import).
        event: a warning to emit (a volume may be orphaned).
    """

    record: Intent | None
    event: Event | None = None


def legacy_import(
    pvc: Mapping[str, Any],
    *,
    expected_name: str,
    rebuilt: Intent | None,
    pv_exists: bool,
) -> LegacyImport:
    """Decide what a legacy-tracked PVC's record becomes in the journal.

    Args:
        pvc: the claim carrying the legacy annotation and/or finalizer.
        expected_name: today's volume name for the claim ("" when unknown).
        rebuilt: a record of the request rebuilt from today's StorageClass (None when it cannot
            be built); used when a deleted claim's finalizer survived but its record did not.
        pv_exists: the PV of this claim is saved (then nothing is in flight).
    """
    if pv_exists:
        return LegacyImport(None)
    record, why = read_intent(pvc, expected_name)
    if record is not None:
        return LegacyImport(record)
    if not (is_deleting(pvc) and keys.INTENT_FINALIZER in finalizers(pvc)):
        return LegacyImport(None)  # a live claim records again before any CreateVolume
    if rebuilt is not None:
        return LegacyImport(rebuilt)
    message = (
        f"claim {namespace(pvc)}/{name(pvc)} was deleted while a CreateVolume may have run, "
        f"but its intent record is unusable ({why or 'missing'}) and the request cannot be "
        "rebuilt; a volume may be orphaned"
    )
    return LegacyImport(None, events.provisioning_cleanup_failed(message))
