"""``csi-sidecars doctor``: explains stuck claims, volumes, attachments and snapshots.

A tool above the roles: it reads the cluster (read-only) and says, per object, what is wrong and
what to do next, with the evidence a person would collect by hand.

* :mod:`.snapshot`: the read-only :class:`~.snapshot.ClusterSnapshot` every checker works on;
  :mod:`.gather` fills it from the API server (the only I/O).
* Checkers, pure functions of a snapshot, one module per object kind: :mod:`.pvc` (with
  :mod:`.provisioning`, :mod:`.scheduling`, :mod:`.binding`, :mod:`.placement`,
  :mod:`.resize`), :mod:`.pv`, :mod:`.volumeattachment`, :mod:`.volumesnapshot`,
  :mod:`.node`, :mod:`.driver`; shared pieces in :mod:`.leases` (is a sidecar running; the
  provisioner's journal), :mod:`.common` (events, registration, pods) and :mod:`.finalizers`.
* :mod:`.report` (the findings) and :mod:`.render` (text and ``-o json``); :mod:`.scan` picks
  the checkers for a request; :mod:`.command` is the click command.
"""
