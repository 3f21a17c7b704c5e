"""The strings doctor looks for: Lease names, finalizers and who removes them, annotations.

They are the ones the Go sidecars and ours write (see the reference notes of each role), kept
here instead of imported so that doctor reads a cluster without loading any role's code. A unit
test checks them against the roles' own constants, so a rename in a role cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_sidecars.kube.objects import sanitize_name as sanitize

# -- annotations ---------------------------------------------------------------------------------

ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SNAPSHOT_DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
#: Our provisioner's journal (a Lease): base64 of zlib-compressed JSON ``{"v": 1, "records"}``.
ANN_JOURNAL = "provisioner.csi-sidecars.io/journal"

NO_PROVISIONER = "kubernetes.io/no-provisioner"
#: The kube-controller-manager component that records PV binding events.
PV_CONTROLLER = "persistentvolume-controller"

# -- finalizers ------------------------------------------------------------------------------------

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
PROVISIONER_PV_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
CLONE_SOURCE_FINALIZER = "provisioner.storage.kubernetes.io/cloning-protection"
PROVISIONER_SNAPSHOT_SOURCE = (
    "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection"
)
ATTACHER_FINALIZER_PREFIX = "external-attacher/"
SNAPSHOT_AS_SOURCE = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
SNAPSHOT_BOUND = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
SNAPSHOT_IN_GROUP = "snapshot.storage.kubernetes.io/volumesnapshot-in-group-protection"
CONTENT_BOUND = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
PVC_AS_SNAPSHOT_SOURCE = "snapshot.storage.kubernetes.io/pvc-as-source-protection"

# -- components and their Leases ---------------------------------------------------------------

PROVISIONER = "provisioner"
ATTACHER = "attacher"
RESIZER = "resizer"
SNAPSHOTTER = "snapshotter"
SNAPSHOT_CONTROLLER = "snapshot-controller"
KCM = "kube-controller-manager"


def lease_name(component: str, driver: str) -> str:
    """The leader-election Lease of ``component`` for ``driver``.

    Raises:
        KeyError: unknown component.
    """
    plain = driver.replace("/", "-")
    names = {
        PROVISIONER: plain,
        ATTACHER: "external-attacher-leader-" + driver,
        RESIZER: "external-resizer-" + plain,
        SNAPSHOTTER: "external-snapshotter-leader-" + plain,
        SNAPSHOT_CONTROLLER: "snapshot-controller-leader",
    }
    return sanitize(names[component])


def attacher_finalizer(driver: str) -> str:
    """``external-attacher/<sanitised driver>`` (on VolumeAttachments and PVs)."""
    return ATTACHER_FINALIZER_PREFIX + sanitize(driver)


def journal_name(driver: str, node: str = "") -> str:
    """The Lease holding our provisioner's journal of in-flight CreateVolume calls.

    With ``--node-deployment`` every node's provisioner keeps its own (``node``).
    """

    def clean(text: str) -> str:
        return "".join(c if c.isalnum() or c in ".-" else "-" for c in text.lower()).strip("-.")

    if node:
        return f"{clean(driver)[:100]}-{clean(node)[:100]}-provisioner-journal"
    return f"{clean(driver)[:200]}-provisioner-journal"


# -- who removes a finalizer ---------------------------------------------------------------------


@dataclass(frozen=True)
class FinalizerOwner:
    """Who removes a finalizer and when.

    Attributes:
        component: one of the component names above (or ``kube-controller-manager``).
        when: the condition under which it is removed, as a sentence fragment.
    """

    component: str
    when: str


def finalizer_owner(finalizer: str) -> FinalizerOwner | None:
    """Who removes ``finalizer`` (None for one doctor does not know)."""
    if finalizer.startswith(ATTACHER_FINALIZER_PREFIX):
        return FinalizerOwner(ATTACHER, "once no VolumeAttachment uses the volume")
    return _OWNERS.get(finalizer)


_OWNERS = {
    PVC_PROTECTION: FinalizerOwner(KCM, "once no Pod uses the claim"),
    PV_PROTECTION: FinalizerOwner(KCM, "once the volume is no longer bound to a claim"),
    PROVISIONER_PV_FINALIZER: FinalizerOwner(
        PROVISIONER, "after DeleteVolume succeeded (reclaim policy Delete)"
    ),
    CLONE_SOURCE_FINALIZER: FinalizerOwner(
        PROVISIONER, "once no Pending claim clones from this claim"
    ),
    PROVISIONER_SNAPSHOT_SOURCE: FinalizerOwner(
        PROVISIONER, "once no Pending claim restores from this snapshot"
    ),
    SNAPSHOT_AS_SOURCE: FinalizerOwner(
        SNAPSHOT_CONTROLLER, "once no Pending claim restores from this snapshot"
    ),
    SNAPSHOT_BOUND: FinalizerOwner(
        SNAPSHOT_CONTROLLER, "once its bound VolumeSnapshotContent (policy Delete) is gone"
    ),
    SNAPSHOT_IN_GROUP: FinalizerOwner(
        SNAPSHOT_CONTROLLER, "once its VolumeGroupSnapshot is deleted"
    ),
    CONTENT_BOUND: FinalizerOwner(SNAPSHOTTER, "after DeleteSnapshot succeeded in the driver"),
    PVC_AS_SNAPSHOT_SOURCE: FinalizerOwner(
        SNAPSHOT_CONTROLLER, "once no snapshot is being cut from the claim"
    ),
}

#: Sidecar names as users know them (for messages).
COMPONENT_TITLES = {
    PROVISIONER: "csi-provisioner",
    ATTACHER: "csi-attacher",
    RESIZER: "csi-resizer",
    SNAPSHOTTER: "csi-snapshotter",
    SNAPSHOT_CONTROLLER: "snapshot-controller",
    KCM: "kube-controller-manager",
}
