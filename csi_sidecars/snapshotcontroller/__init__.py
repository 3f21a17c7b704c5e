"""``csi-sidecars snapshot-controller``: the snapshot controller (external-snapshotter v8.6).

It watches VolumeSnapshots, VolumeSnapshotContents, VolumeSnapshotClasses, claims and PVs (and
the three group snapshot kinds with ``CSIVolumeGroupSnapshot``), creates a content for every
dynamic snapshot, binds pre-provisioned ones, mirrors the contents' status onto the snapshots,
protects source claims while they are snapshotted, and drives deletion (Delete and Retain). It
makes no CSI calls: the csi-snapshotter sidecar next to each driver does.

Layout: one pure decision per kind (:mod:`.snapshot`, :mod:`.content`, :mod:`.group`,
:mod:`.protection`) over the caches (:mod:`.view`), performed by the shared
:class:`~csi_sidecars.controller.perform.Performer`; :mod:`.controller` wires informers,
queues and handlers on the shared runner; :mod:`.command` is the CLI.
"""
