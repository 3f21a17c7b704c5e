"""The provisioner's I/O side: thin executors that read the caches, ask the pure side
(:mod:`csi_sidecars.provisioner.decide`) and do what it says.

* :mod:`.context`: what they share (settings, caches, the performer, CSI calls) and the lookups
  between a plan and its CreateVolumeRequest.
* :mod:`.caches`: the informers, their slim fields and indexes.
* :mod:`.provision`: one sync of one claim, up to the saved PV.
* :mod:`.cleanup`: finishing a recorded CreateVolume whose claim is gone (no leaks).
* :mod:`.volumes`: one sync of one PV: its finalizer, deleting its volume.
* :mod:`.clone_protection`: releasing a clone source once no clone needs it.
* :mod:`.snapshot_protection`: releasing a restored VolumeSnapshot once no restore needs it,
  and the orphan sweep.
* :mod:`.capacity`: the CSIStorageCapacity objects (``--enable-capacity``); :mod:`.owner`
  their owner reference.
* :mod:`.nodes`: node deployment: which claims are this node's, the race for Immediate ones.
"""
