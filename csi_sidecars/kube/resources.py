"""Names of API resources and the errors the API returns, shared by the client and the fake.

A :class:`Resource` is what a role passes to the port instead of a generated API class: group,
version, plural and whether it is namespaced. :class:`ApiError` carries the HTTP status and the
``Status`` reason so callers can branch on "not found", "conflict" or "gone" without parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource: ``group`` is "" for the core group."""

    group: str
    version: str
    plural: str
    namespaced: bool = False
    kind: str = ""

    @property
    def api_version(self) -> str:
        """``v1`` for core, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection, or of one object when ``name`` is given."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


PERSISTENT_VOLUMES = Resource("", "v1", "persistentvolumes", False, "PersistentVolume")
PERSISTENT_VOLUME_CLAIMS = Resource(
    "", "v1", "persistentvolumeclaims", True, "PersistentVolumeClaim"
)
NODES = Resource("", "v1", "nodes", False, "Node")
SECRETS = Resource("", "v1", "secrets", True, "Secret")
EVENTS = Resource("", "v1", "events", True, "Event")
NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
PODS = Resource("", "v1", "pods", True, "Pod")
VOLUME_ATTACHMENTS = Resource(
    "storage.k8s.io", "v1", "volumeattachments", False, "VolumeAttachment"
)
CSI_NODES = Resource("storage.k8s.io", "v1", "csinodes", False, "CSINode")
CSI_DRIVERS = Resource("storage.k8s.io", "v1", "csidrivers", False, "CSIDriver")
STORAGE_CLASSES = Resource("storage.k8s.io", "v1", "storageclasses", False, "StorageClass")
CSI_STORAGE_CAPACITIES = Resource(
    "storage.k8s.io", "v1", "csistoragecapacities", True, "CSIStorageCapacity"
)
VOLUME_ATTRIBUTES_CLASSES = Resource(
    "storage.k8s.io", "v1", "volumeattributesclasses", False, "VolumeAttributesClass"
)
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")


class ApiError(Exception):
    """An error answer from the API server (or the fake), with its HTTP status."""

    def __init__(
        self, status: int, reason: str = "", message: str = "", body: JsonDict | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @classmethod
    def from_status(cls, status: int, body: Any) -> ApiError:
        """Build from a ``Status`` object (or anything else the server sent)."""
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls(
                int(body.get("code") or status),
                str(body.get("reason", "")),
                str(body.get("message", "")),
                body,
            )
        return cls(status, "", str(body)[:512])

    @property
    def not_found(self) -> bool:
        """404."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409 from an update or a failed JSON-patch ``test`` (not "already exists")."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        """409 AlreadyExists from a create."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        """410: the resourceVersion is too old; re-list."""
        return self.status == 410

    @property
    def invalid(self) -> bool:
        """422: the object or patch was rejected."""
        return self.status == 422


def object_key(obj: JsonDict) -> str:
    """The cache key of an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    name = meta.get("name", "")
    return f"{ns}/{name}" if ns else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    """Split a cache key back into (namespace or None, name)."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)
