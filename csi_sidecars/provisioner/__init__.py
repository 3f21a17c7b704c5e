"""The pure core of ``csi-sidecars provisioner`` (drop-in for external-provisioner v6.3).

Decide purely, act separately: the core modules take raw API objects (dicts) and driver facts
and return decisions, CSI requests (``csi_pb2`` messages), PV objects and events, without I/O.

* :mod:`.flags`: every Go flag and default; unbuilt features refused unless at their default.
* :mod:`.claims`: which PVCs to provision (:func:`~.claims.should_provision`).
* :mod:`.request`: the CreateVolumeRequest (plan -> lookups -> build), as Go builds it.
* :mod:`.sources`: data sources (clone validation), VolumeAttributesClass parameters.
* :mod:`.secrets`: StorageClass secret parameters and ``${...}`` templates.
* :mod:`.topology`: accessibility requirements, pins, PV node affinity.
* :mod:`.pv`: CreateVolume response guards and the PV object.
* :mod:`.states` / :mod:`.events`: error classification, follow-up, Go's event texts.
* :mod:`.deletion`: which PVs to delete, finalizers, secrets, DeleteVolumeRequest.
* :mod:`.intent`: the no-leak record (below).

The executors do the I/O the core asks for: :mod:`.provision` (one claim sync), :mod:`.lookups`
(clone source, topology, Secret, VolumeAttributesClass), :mod:`.cleanup` (finishing a recorded
CreateVolume of a deleted claim), :mod:`.delete` (PV finalizer and DeleteVolume),
:mod:`.clone_protection`; they share a :class:`~.context.Context` (caches from :mod:`.caches`,
API writes from :mod:`.kubeio`, metrics from :mod:`.metrics`). :mod:`.controller` wires
informers and queues; :mod:`.command` is ``csi-sidecars provisioner`` on the shared controller
runner (:mod:`csi_sidecars.controller`).

No leaked volumes (external-provisioner #486, #1469). Go remembers an in-flight CreateVolume
only in memory, so a restart during the call plus a PVC deletion leaks the volume. We record
the intent on the API server before the call: one PVC Update adds the annotation
``provisioner.csi-sidecars.io/create-intent`` (volume name, PVC UID, selected node, class,
reclaim policy, request without secrets, digest) and the finalizer
``provisioner.csi-sidecars.io/volume-in-flight``. CreateVolume runs only after that Update
succeeded; the PV carries a claimRef; once the PV is saved both are removed. What a restart
finds at each crash point (:func:`.intent.decide` and the ``after_cleanup_*`` functions):

==============================  ===================  ========================================
crash point                     PVC still there      PVC deleted meanwhile
==============================  ===================  ========================================
before the record Update        RECORD, then create  nothing was sent: object gone, no leak
after record, before/while      CREATE (same name,   finalizer holds the PVC: CLEANUP_CREATE
CreateVolume                    same request)        with the recorded request; success ->
                                                     DeleteVolume (Delete) or adopt as a
                                                     Released PV (Retain); final error ->
                                                     RELEASE; timeout/Unavailable -> retry
after CreateVolume, before PV   CREATE returns the   as above (idempotent CreateVolume
                                same volume; save PV returns the volume ID to delete)
after PV saved, before release  RELEASE              RELEASE (PV goes Released -> deleted)
==============================  ===================  ========================================

The record is user-editable, so it is trusted only for cleanup of this PVC's own volume name
and, for topology, within the StorageClass's allowedTopologies; see :mod:`.intent`.
"""
