"""Which PVCs this provisioner handles, the facts about a PVC every later step needs, and the
PVC Updates it writes.

:func:`should_provision` merges the checks Go spreads over sig-storage-lib's ``shouldProvision``,
external-provisioner's ``ShouldProvision`` and the first lines of ``provisionClaimOperation``
into one pure decision with a reason, so the caller logs one line and either skips, waits,
fails or provisions (with the ``Provisioning`` event of the attempt).

:func:`update_claim` is the plan of every PVC write: an Update (PUT), because the Go RBAC grants
``update`` and not ``patch`` on PVCs, re-applied to a fresh copy after a conflict.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.actions import Plan
from csi_sidecars.kube.objects import Event, annotations_of, name, namespace, spec
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS
from csi_sidecars.provisioner.decide import events, strings
from csi_sidecars.provisioner.decide.updates import UPDATE_ATTEMPTS, update_object
from csi_sidecars.provisioner.decide.updates import Change as ClaimChange

DONE = a.Done()


class ClaimAction(enum.Enum):
    """What to do with a PVC."""

    SKIP = "Skip"  # not ours or nothing to do: ignore silently
    WAIT = "Wait"  # ours, but a prerequisite is missing: retry with back-off, no event
    PROVISION = "Provision"


@dataclass(frozen=True)
class ClaimDecision:
    """The decision for one PVC and why.

    Attributes:
        action: what to do.
        reason: a short human-readable reason (logged).
        storage_class: the PVC's StorageClass name ("" when none).
        selected_node: the node chosen by the scheduler ("" for immediate binding).
        event: for PROVISION, the ``Provisioning`` event of the attempt.
    """

    action: ClaimAction
    reason: str
    storage_class: str = ""
    selected_node: str = ""
    event: Event | None = None


def storage_provisioner(pvc: Mapping[str, Any]) -> str:
    """The provisioner the PVC asks for: GA annotation, else the beta one, else ""."""
    ann = annotations_of(pvc)
    if strings.ANN_STORAGE_PROVISIONER in ann:
        return str(ann[strings.ANN_STORAGE_PROVISIONER])
    return str(ann.get(strings.ANN_BETA_STORAGE_PROVISIONER, ""))


def claim_class(pvc: Mapping[str, Any]) -> str:
    """The PVC's StorageClass name: beta annotation first, then ``spec.storageClassName``."""
    ann = annotations_of(pvc)
    if strings.ANN_BETA_STORAGE_CLASS in ann:
        return str(ann[strings.ANN_BETA_STORAGE_CLASS])
    return str(spec(pvc).get("storageClassName") or "")


def selected_node(pvc: Mapping[str, Any]) -> str:
    """The selected node: the GA annotation if present (even empty), else the alpha one."""
    ann = annotations_of(pvc)
    if strings.ANN_SELECTED_NODE in ann:
        return str(ann[strings.ANN_SELECTED_NODE])
    return str(ann.get(strings.ANN_ALPHA_SELECTED_NODE, ""))


def is_block(pvc: Mapping[str, Any]) -> bool:
    """Whether the PVC asks for a raw block volume."""
    return spec(pvc).get("volumeMode") == "Block"


def should_provision(
    pvc: Mapping[str, Any],
    sc: Mapping[str, Any] | None,
    *,
    driver: str,
    additional_names: Collection[str] = (),
    pv_exists: bool = False,
) -> ClaimDecision:
    """Decide whether to provision a volume for ``pvc`` now.

    Args:
        pvc: the claim.
        sc: its StorageClass from the cache, or None if not (yet) known.
        driver: the CSI driver name (the provisioner name).
        additional_names: other provisioner names we answer for (CSI migration).
        pv_exists: a PV with the deterministic name of this claim already exists.

    Returns:
        SKIP when the claim is bound, asks for another provisioner (by annotation or
        StorageClass), waits for the scheduler (WaitForFirstConsumer without selected node) or
        already has its PV; WAIT when the StorageClass is missing (it may appear); PROVISION
        otherwise. A claim the provisioner refuses (``spec.selector``, a capability the driver
        lacks, ...) is PROVISION too: as in Go, the ``Provisioning`` event comes first and
        :func:`~.request.plan_provision` then fails it with ``ProvisioningFailed``.
    """
    known = {driver, *additional_names}
    pvc_spec = spec(pvc)
    ref = f"{namespace(pvc)}/{name(pvc)}"
    volume_name = pvc_spec.get("volumeName") or ""
    if volume_name:
        return ClaimDecision(ClaimAction.SKIP, f"claim {ref} is already bound to {volume_name}")
    requested = storage_provisioner(pvc)
    migrated_to = str(annotations_of(pvc).get(strings.ANN_MIGRATED_TO, ""))
    if driver not in (requested, migrated_to):
        return ClaimDecision(
            ClaimAction.SKIP,
            f"claim {ref} is annotated for provisioner {requested!r}, not {driver!r}",
        )
    if requested not in known:
        return ClaimDecision(
            ClaimAction.SKIP, f"claim {ref} names unknown provisioner {requested!r}"
        )
    class_name = claim_class(pvc)
    node = selected_node(pvc)
    if sc is None:
        return ClaimDecision(
            ClaimAction.WAIT,
            f'storageclass.storage.k8s.io "{class_name}" not found',
            class_name,
            node,
        )
    if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not annotations_of(pvc).get(
        strings.ANN_SELECTED_NODE
    ):
        return ClaimDecision(
            ClaimAction.SKIP,
            f"claim {ref} waits for the scheduler to select a node",
            class_name,
            node,
        )
    if pv_exists:
        return ClaimDecision(
            ClaimAction.SKIP, f"PersistentVolume for claim {ref} already exists", class_name, node
        )
    if sc.get("provisioner") not in known:
        return ClaimDecision(
            ClaimAction.SKIP,
            f"StorageClass {class_name} names unknown provisioner {sc.get('provisioner')!r}",
            class_name,
            node,
        )
    return ClaimDecision(
        ClaimAction.PROVISION,
        f"provisioning claim {ref}",
        class_name,
        node,
        events.provisioning(namespace(pvc), name(pvc)),
    )


def update_claim(
    pvc: Mapping[str, Any],
    change: ClaimChange,
    *,
    missing_ok: bool = False,
    done: a.Outcome = DONE,
    attempts: int = UPDATE_ATTEMPTS,
) -> Plan:
    """The plan of one conflict-safe PVC Update (:func:`~.updates.update_object`).

    The first PUT sends ``change(pvc)`` (the cached copy, whose resourceVersion guards it); on a
    conflict the claim is read again and ``change`` applied to it, up to ``attempts`` PUTs.

    Args:
        pvc: the claim as the caller saw it.
        change: the new object, or None (nothing to change: :class:`Done`).
        missing_ok: a claim that is gone counts as done (else :class:`Retry`).
        done: the outcome once the Update is written.
        attempts: PUTs before the conflict is given up (:class:`Retry`).
    """
    return update_object(
        PERSISTENT_VOLUME_CLAIMS,
        pvc,
        change,
        missing_ok=missing_ok,
        done=done,
        attempts=attempts,
        noun="claim",
    )
