"""``csi-sidecars provisioner``: a drop-in for external-provisioner v6.3.

The package shows the role's three parts, decide purely, act separately, never leak:

* :mod:`.decide` (pure): API objects and driver facts in, decisions out, no I/O: which claims
  to provision, the CreateVolumeRequest, data sources and secrets, topology, the PV object,
  failure handling and events, deletion. Writes come out as complete actions
  (:mod:`csi_sidecars.controller.actions`): the PVC Update, the PV create, the finalizer
  patches, the events, each fully built.
* :mod:`.execute` (I/O): thin executors, one per queue, that read the caches, ask
  :mod:`.decide` and have the one performer (:class:`csi_sidecars.controller.perform.Performer`)
  do the actions; the CSI calls of the claim flow, the lookups (Secret, source PV,
  VolumeAttributesClass) and the informer caches live here too.
* :mod:`.journal` (no leaks): the record of every CreateVolume that may be in flight, on the
  API server before the call, and the decisions that finish or clean up after a crash.

At the top: :mod:`.flags` (every Go flag and default; the shared groups plus the
provisioner's own), :mod:`.command` (``csi-sidecars provisioner`` on the shared controller
runner), :mod:`.controller` (informers, queues, handlers, the lead) and :mod:`.metrics` (the
``controller_*`` families of sig-storage-lib). Dependencies point one way:
``command -> controller -> execute -> journal -> decide``.

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
claim. What a restart finds at each crash point (:func:`.journal.intent.decide` and the
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
provisioner that is not running are lost that way);
writes carry the resourceVersion, and on a conflict the journal is re-read and merged
(unknown records are adopted and their claims synced); only the leader runs the journal, so a
standby never writes; at most 1000 records / 200 KiB (compressed), further records wait.

The record is user-editable, so it is trusted only for cleanup of its own claim UID's volume
name and, for topology, within the StorageClass's allowedTopologies; see :mod:`.journal.intent`.
"""
