"""csi-sidecars: the Kubernetes CSI sidecar suite as one asyncio Python program."""

__version__ = "0.1.0"
