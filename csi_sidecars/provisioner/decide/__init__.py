"""The provisioner's pure side: API objects and driver facts in, decisions out; no I/O.

Each function takes raw objects (dicts, as the caches hold them), flags, and answers already
obtained (a CreateVolume reply, a Secret) and returns what to do: a decision with its reason, a
CreateVolumeRequest, a PV object, an event, or a plan of complete actions
(:mod:`csi_sidecars.controller.actions`) for the one executor to perform. Table tests call them
without a cluster or a driver.

* :mod:`.strings`: Go's annotation, finalizer and parameter names; Go's value formatting.
* :mod:`.claims`: which PVCs to provision; the PVC Update plan every claim write uses.
* :mod:`.updates`: the conflict-safe Update plan (PVCs, VolumeSnapshots).
* :mod:`.request`: the CreateVolumeRequest (plan -> lookups -> build); ProvisionerOptions.
* :mod:`.sources`: data sources, clone validation, the clone source's protection finalizer,
  VolumeAttributesClass parameters.
* :mod:`.snapshots`: restore from a VolumeSnapshot (checks, content source) and the
  snapshot's protection finalizer.
* :mod:`.secrets`: StorageClass secret parameters and ``${...}`` templates.
* :mod:`.topology`: accessibility requirements, pins, PV node affinity.
* :mod:`.pv`: CreateVolume response guards, the PV object and the plan that saves it.
* :mod:`.states`: failure classification and follow-up (sig-storage-lib's states).
* :mod:`.events`: Go's event reasons and texts.
* :mod:`.deletion`: which PVs to delete; the plans that delete them and keep their finalizer.
* :mod:`.capacity`: capacity tracking's items (segment x StorageClass) and object writes.
* :mod:`.nodes`: node deployment: this node's claims and volumes, the owner delay.
"""
