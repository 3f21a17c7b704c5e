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
* :mod:`.intent`: the no-leak record and its decisions (below).

The executors do the I/O the core asks for: :mod:`.provision` (one claim sync), :mod:`.lookups`
(clone source, topology, Secret, VolumeAttributesClass), :mod:`.cleanup` (finishing a recorded
CreateVolume of a deleted claim), :mod:`.delete` (PV finalizer and DeleteVolume),
:mod:`.clone_protection`; they share a :class:`~.context.Context` (caches from :mod:`.caches`,
API writes from :mod:`.kubeio`, the journal from :mod:`.journal`, metrics from
:mod:`.metrics`). :mod:`.controller` wires informers and queues; :mod:`.command` is
``csi-sidecars provisioner`` on the shared controller runner (:mod:`csi_sidecars.controller`).

No leaked volumes (external-provisioner #486, #1469). Go remembers an in-flight CreateVolume
only in memory, so a restart during the call plus a PVC deletion leaks the volume. We record
the intent on the API server before the call, in the provisioner's journal: a Lease
``<driver>-provisioner-journal`` in the leader election namespace (Lease create/update is in
the Go RBAC there) holding every in-flight record (claim namespace/name/UID, volume name,
class, reclaim policy, provisioner Secret reference, the request without secrets, digest).
Records that arrive while a journal write is pending or throttled go into the next write, so
at ``--kube-api-qps=5`` provisioning costs one rate-limited write per claim (the PV create),
as in Go, plus a handful of journal writes per burst. CreateVolume runs only after the write
holding its record succeeded; the PV carries a claimRef; once the PV is saved the record is
dropped (with a later write). No PVC finalizer is needed: the record does not depend on the
claim. What a restart finds at each crash point (:func:`.intent.decide` and the
``after_cleanup_*`` functions):

==============================  ===================  ========================================
crash point                     PVC still there      PVC deleted meanwhile
==============================  ===================  ========================================
before the journal write        RECORD, then create  nothing was sent: no record, no leak
after the write, before/while   CREATE (same name,   the record outlives the claim:
CreateVolume                    same request)        CLEANUP_CREATE with the recorded request
                                                     and Secret; success -> DeleteVolume
                                                     (Delete) or adopt as a Released PV
                                                     (Retain); final error -> drop;
                                                     timeout/Unavailable -> retry
after CreateVolume, before PV   CREATE returns the   as above (idempotent CreateVolume
                                same volume; save PV returns the volume ID to delete)
after PV saved, before the      drop (PV exists)     drop (the PV goes Released -> deleted);
drop is written                                      if the PV is already gone too, the
                                                     cleanup re-creates and deletes the
                                                     volume (Delete) or adopts it (Retain)
==============================  ===================  ========================================

Other cases: a write that failed withdraws its records (their CreateVolume was not sent); a
journal deleted by a user is written again from memory on the next write (only records of a
provisioner that is not running are lost that way, as removing our finalizer was before);
writes carry the resourceVersion, and on a conflict the journal is re-read and merged
(unknown records are adopted and their claims synced); only the leader runs the journal, so a
standby never writes; at most 1000 records / 200 KiB (compressed), further records wait.

The record is user-editable, so it is trusted only for cleanup of its own claim UID's volume
name and, for topology, within the StorageClass's allowedTopologies; see :mod:`.intent`.
"""
