"""``csi-sidecars provisioner``: a drop-in for external-provisioner v6.3.

The package shows the role's three parts, decide purely, act separately, never leak:

* :mod:`.decide` (pure): API objects and driver facts in, decisions out, no I/O: which claims
  to provision, the CreateVolumeRequest, data sources (clones, snapshot restores) and secrets,
  topology, the PV object,
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
provisioner's own), :mod:`.startup` (the environment: capacity tracking's namespace and owner,
the node of a node deployment), :mod:`.command` (``csi-sidecars provisioner`` on the shared
controller runner), :mod:`.controller` (informers, queues, handlers, the lead) and
:mod:`.metrics` (the ``controller_*`` families of sig-storage-lib). Dependencies point one way:
``command -> startup, controller -> execute -> journal -> decide``.

No leaked volumes (external-provisioner #486, #1469): every CreateVolume is recorded in the
journal (a Lease ``<driver>-provisioner-journal`` in the leader election namespace) before it
is sent, so a restart finishes or cleans up any call a crash interrupted, even when the claim
was deleted meanwhile. ``docs/provisioner.md`` has the flags, the behaviour, the journal's
crash-point table, the RBAC and what is better than Go.
"""
