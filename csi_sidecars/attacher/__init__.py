"""``csi-sidecars attacher``: a drop-in external-attacher v4.12 (VolumeAttachment -> CSI publish).

This package is the pure core: decisions from objects to actions, with no I/O. An executor (the
kube and CSI wiring) applies the actions.

* :mod:`.names`: finalizer, annotation, Lease, queue, status-field and event-reason strings.
* :mod:`.objects`: accessors over raw VA / PV / CSINode / Secret dicts (the fields a slim
  cache must keep are listed there).
* :mod:`.request`: ControllerPublish/Unpublish request builders, access-mode mapping.
* :mod:`.config`: :class:`~.config.AttacherConfig` (driver, capabilities, flags).
* :mod:`.actions`: the action dataclasses; :mod:`.patches`: the API writes as data;
  :mod:`.events`: events as data.
* :mod:`.decide`: ``decide_va``, ``attach_outcome``, ``detach_outcome``, ``step_failed``.
* :mod:`.pvs`: ``decide_pv`` and the informer filters.
* :mod:`.reconcile`: ListVolumes reconciliation. :mod:`.errors`: final vs transient errors.
* :mod:`.flags`: the command-line flags.
"""
