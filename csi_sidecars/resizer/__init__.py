"""``csi-sidecars resizer``: a drop-in for external-resizer v2.2.

Volume expansion (ControllerExpandVolume, or node-only expansion) and volume modification
(ControllerModifyVolume with a VolumeAttributesClass) for the PVCs of one CSI driver. The
decisions are pure (:mod:`.expand`, :mod:`.modify`) and return complete plans that the shared
executor performs; :mod:`.controller` wires caches and the queue; :mod:`.command` is the CLI.
See docs/resizer.md.
"""
