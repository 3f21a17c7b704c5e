"""``csi-sidecars attacher``: a drop-in external-attacher v4.12 (VolumeAttachment -> CSI publish).

The role is written the one way every controller role is: pure decisions return complete plans
(:mod:`csi_sidecars.controller.actions`), performed by the shared
:class:`~csi_sidecars.controller.perform.Performer`.

* :mod:`.names`: finalizer, annotation, Lease, queue, status-field and event-reason strings.
* :mod:`.objects`: the attacher's accessors over raw VA / PV / CSINode dicts (the fields a slim
  cache must keep are listed there); generic readers are :mod:`csi_sidecars.kube.objects`.
* :mod:`.request`: ControllerPublish/Unpublish request builders, access-mode mapping.
* :mod:`.config`: :class:`~.config.AttacherConfig` (the driver's info, flags).
* :mod:`.patches`: the API writes as Patch actions; :mod:`.events`: the events and the pod
  lookup that places them; :mod:`.errors`: final vs transient errors, VolumeError.
* :mod:`.decide`: ``decide_va`` and the attach plan; :mod:`.detach`: the detach plan;
  :mod:`.plans`: what both share (error plans, the Secret read).
* :mod:`.pvs`: ``decide_pv`` and the informer filters; :mod:`.reconcile`: ListVolumes.
* :mod:`.controller`: informers, queues, the thin syncs; :mod:`.setup`: start-up wiring;
  :mod:`.flags`, :mod:`.command`.
"""
